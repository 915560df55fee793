"""A small reader of the repository's Dockerfile and .dockerignore for the deploy tests:
instructions grouped by build stage, and the context paths .dockerignore leaves out.
Enough for our Dockerfile (no heredocs, no parser directives besides ``syntax``); hadolint
does the full parse."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined
    line: int  # where it starts (1-based)

    def exec_form(self) -> list[str] | None:
        """The JSON array form (``["cadenza", "serve"]``) as a list; None for shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list), self
        assert all(isinstance(v, str) for v in value), self
        return [str(v) for v in value]

    def flags(self) -> dict[str, list[str]]:
        """Leading ``--name=value`` flags (``--from=console``, ``--mount=...``) by name."""
        found: dict[str, list[str]] = {}
        for word in shlex.split(self.args):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found.setdefault(name, []).append(value)
        return found

    def operands(self) -> list[str]:
        """The words after the leading flags (for COPY: the sources, then the target)."""
        words = shlex.split(self.args)
        while words and words[0].startswith("--"):
            words.pop(0)
        return words


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """The last ``keyword`` instruction's exec form (it must exist and be one)."""
        found = self.last(keyword)
        assert found is not None, f"stage {self.name} has no {keyword}"
        argv = found.exec_form()
        assert argv is not None, f"line {found.line}: {keyword} in exec (JSON array) form"
        return argv

    def healthcheck(self) -> list[str]:
        """The HEALTHCHECK's command (exec form: it needs no shell), options left out."""
        check = self.last("HEALTHCHECK")
        assert check is not None, f"stage {self.name} has no HEALTHCHECK"
        _options, sep, command = check.args.partition(" CMD ")
        assert sep, f"line {check.line}: HEALTHCHECK without CMD"
        argv = Instruction("CMD", command, check.line).exec_form()
        assert argv is not None, f"line {check.line}: HEALTHCHECK CMD in exec form"
        return argv

    def env(self) -> dict[str, str]:
        """The stage's ENV settings (``ENV K=V K2=V2`` form), later ones winning."""
        values: dict[str, str] = {}
        for i in self.all("ENV"):
            for word in shlex.split(i.args):
                key, sep, value = word.partition("=")
                assert sep, f"line {i.line}: use ENV KEY=VALUE"
                values[key] = value
        return values


def instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, args = " ".join(p for p in pending if p).partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    result: list[Stage] = []
    for i in instructions(path.read_text()):
        if i.keyword == "FROM":
            words = i.operands()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(result))
            result.append(Stage(words[0], name))
        else:
            assert result or i.keyword == "ARG", f"line {i.line}: {i.keyword} before FROM"
            if result:
                result[-1].instructions.append(i)
    return result


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex over a path."""
    out = ""
    k = 0
    while k < len(glob):
        if glob.startswith("**/", k):
            out += "(?:.*/)?"
            k += 3
        elif glob.startswith("**", k):
            out += ".*"
            k += 2
        elif glob[k] == "*":
            out += "[^/]*"
            k += 1
        elif glob[k] == "?":
            out += "[^/]"
            k += 1
        else:
            out += re.escape(glob[k])
            k += 1
    return re.compile(out)


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[re.Pattern[str]]:
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    globs = [ln for ln in lines if ln and not ln.startswith("#")]
    assert not [g for g in globs if g.startswith("!")], "re-inclusion is not read by this helper"
    return [_pattern(g.strip("/")) for g in globs]


def ignored(relative: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether the build context leaves out ``relative`` (or a directory holding it)."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)
