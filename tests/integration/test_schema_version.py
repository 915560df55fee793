"""The start-up check "is this SQLite file at the newest schema?" that skips Alembic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from cadenza.infrastructure.sql.database import MIGRATIONS, upgrade
from cadenza.infrastructure.sql.schema_version import VERSIONS, migration_head, sqlite_at_head


def _alembic_head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_head_read_from_the_files_is_alembics_head() -> None:
    assert migration_head() == _alembic_head()


def test_upgraded_file_is_at_head_and_an_older_one_is_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    assert sqlite_at_head(url) is False  # no file yet
    (tmp_path / "c.db").touch()
    assert sqlite_at_head(url) is False  # empty file: no alembic_version table
    upgrade(url)  # the check said no: Alembic creates the schema
    assert sqlite_at_head(url) is True
    upgrade(url)  # at head: returns without Alembic, the schema unchanged
    assert sqlite_at_head(url) is True
    with sqlite3.connect(tmp_path / "c.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert sqlite_at_head(url) is False


def test_other_databases_always_run_alembic() -> None:
    assert sqlite_at_head("sqlite://") is False
    assert sqlite_at_head("postgresql://u@localhost/cadenza") is False


def _write(versions: Path, name: str, revision: str, down: str) -> None:
    body = f'"""m"""\n\nrevision = "{revision}"\ndown_revision = {down}\n'
    (versions / name).write_text(body, encoding="utf-8")


def test_any_doubt_about_the_files_means_no_head(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", "a", "None")
    _write(tmp_path, "b.py", "b", '"a"')
    assert migration_head(tmp_path) == "b"
    _write(tmp_path, "c.py", "c", '"a"')  # two heads (an unmerged branch)
    assert migration_head(tmp_path) is None
    (tmp_path / "c.py").write_text('revision: str = "c"\ndown_revision = "b"\n', "utf-8")
    assert migration_head(tmp_path) is None  # a form it does not read
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = ("a", "b")\n', "utf-8")
    assert migration_head(tmp_path) is None  # a merge migration
    assert migration_head(tmp_path / "missing") is None  # no files at all
    assert VERSIONS.is_dir()
