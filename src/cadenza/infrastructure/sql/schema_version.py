"""Is a SQLite database already at the newest schema? Answered without importing Alembic.

Every ``cadenza worker`` / ``serve`` start runs the migrations to head; when there is nothing
to do, importing Alembic and running its environment was ≈ 0.1-0.2 s of a ≈ 1.5 s start
(issue 10, start-up). This reads the head revision from the migration files and the
database's ``alembic_version`` row with the stdlib only. Any doubt (a file it cannot read
as one plain ``revision`` / ``down_revision`` pair, several heads, no file, no table, a
database other than a SQLite file) answers False, and Alembic runs as before.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

from cadenza.infrastructure.sql.database import MIGRATIONS, sqlite_path

VERSIONS = MIGRATIONS / "versions"
_REVISION = re.compile(r'^revision = "([^"\n]+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision = (?:None|"([^"\n]+)")$', re.MULTILINE)


def migration_head(versions: Path = VERSIONS) -> str | None:
    """The single head revision of the migration files, or None when unsure."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for file in sorted(versions.glob("*.py")):
        text = file.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(down) != 1 or revision[0] in revisions:
            return None
        revisions.add(revision[0])
        if down[0]:
            downs.add(down[0])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 and downs <= revisions else None


def sqlite_at_head(url: str, versions: Path = VERSIONS) -> bool:
    """True only when ``url`` is an existing SQLite file whose schema is at the head."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return False
    head = migration_head(versions)
    if head is None:
        return False
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    return rows == [(head,)]
