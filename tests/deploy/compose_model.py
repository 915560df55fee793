"""Read deploy/compose/: the Compose file, its ``.env.example``, the variable interpolation
Compose applies, and the Cadenza services as processes (command, replicas, role port).

Shared by tests/deploy/test_compose*.py (static checks) and test_compose_rehearsal.py (the same
processes started natively), so both read the topology the same way.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
CADENZA_IMAGE = "cadenza:latest"
# `cadenza serve` listens on 8080 unless told otherwise (cadenza.settings.Settings.port)
SERVE_DEFAULT_PORT = 8080

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ${NAME followed by an operator, not preceded by the $$ escape
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(Exception):
    """A required variable is missing (``${VAR:?message}``), or the syntax is wrong."""


def compose_files() -> list[Path]:
    """compose.yaml and any override file beside it (compose.*.yaml)."""
    return sorted(COMPOSE_DIR.glob("compose*.yaml"))


def load(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The YAML document (anchors and ``<<`` merge keys resolved, as Compose does)."""
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path}: not a mapping"
    return doc


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments and blank lines skipped), in order."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}:{number}: not KEY=VALUE: {line!r}"
        assert _NAME.fullmatch(key), f"{path}:{number}: not a variable name: {key!r}"
        assert key not in out, f"{path}:{number}: {key} given twice"
        out[key] = value
    return out


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one string: ``$$`` is ``$``; ``$VAR``, ``${VAR}``;
    ``${VAR:-default}`` / ``${VAR-default}`` (unset or empty / unset); ``${VAR:?message}`` /
    ``${VAR?message}`` (an error); ``${VAR:+other}`` / ``${VAR+other}``. Defaults may nest."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
        elif m := _NAME.match(text, i + 1):
            out.append(env.get(m.group(), ""))
            i = m.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _expand(body: str, env: Mapping[str, str]) -> str:
    m = _NAME.match(body)
    if m is None:
        raise InterpolationError(f"bad variable ${{{body}}}")
    name, rest = m.group(), body[m.end() :]
    op = next((o for o in _OPERATORS if rest.startswith(o)), "")
    if rest and not op:
        raise InterpolationError(f"bad variable ${{{body}}}")
    word = rest[len(op) :]
    is_set, value = name in env, env.get(name, "")
    if op == "":
        return value
    if op in (":-", "-"):
        use_default = not value if op == ":-" else not is_set
        return interpolate(word, env) if use_default else value
    if op in (":?", "?"):
        if (not value) if op == ":?" else (not is_set):
            raise InterpolationError(f"{name}: {interpolate(word, env) or 'required'}")
        return value
    use_other = bool(value) if op == ":+" else is_set
    return interpolate(word, env) if use_other else ""


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Every string of a parsed Compose document interpolated (keys stay as they are)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


@dataclass(frozen=True)
class Reference:
    name: str
    operator: str  # "" for ${VAR}

    @property
    def required(self) -> bool:
        return "?" in self.operator


def references(text: str) -> set[Reference]:
    """The ``${...}`` variables a text refers to (nested defaults included)."""
    return {Reference(name, op or "") for name, op in _REFERENCE.findall(text)}


def strings(node: Any) -> list[str]:
    """Every string value of a parsed document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    return []


def required_variables(doc: Any) -> set[str]:
    """The variables a document requires (``${VAR:?...}`` / ``${VAR?...}``)."""
    return {r.name for text in strings(doc) for r in references(text) if r.required}


def filled_env(doc: Any, example: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``.env.example`` as a user fills it in: each required variable a fresh random value
    (URL-safe, 43 characters: also a valid CADENZA_SECRETS_KEY), the optional ones left
    empty so that the Compose file's defaults apply."""
    required = required_variables(doc)
    return {
        k: (v or secrets.token_urlsafe(32)) if k in required else v
        for k, v in read_env_file(example).items()
    }


# ---- the Cadenza services ---------------------------------------------------------------------
@dataclass(frozen=True)
class Service:
    """One Compose service of the Cadenza image."""

    name: str
    spec: dict[str, Any]

    @property
    def command(self) -> list[str]:
        command = self.spec.get("command")
        assert isinstance(command, list), f"{self.name}: command must be a list (exec form)"
        return [str(a) for a in command]

    @property
    def replicas(self) -> int:
        return int(self.spec.get("deploy", {}).get("replicas", 1))

    @property
    def one_shot(self) -> bool:
        """A job that runs to its end (the migration), not a server."""
        return self.spec.get("restart") == "no"

    @property
    def port(self) -> int:
        """The port the process listens on (its ``--port``; ``serve``'s default)."""
        given = option(self.command, "--port")
        if given is not None:
            return int(given)
        assert self.command[0] == "serve", f"{self.name}: no --port"
        return SERVE_DEFAULT_PORT

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment", {})
        assert isinstance(env, dict), f"{self.name}: environment must be a mapping"
        return {str(k): "" if v is None else str(v) for k, v in env.items()}

    @property
    def health_url(self) -> str:
        """The URL of the service's healthcheck (``python -c ... urlopen('URL' ...)``)."""
        test = " ".join(self.spec["healthcheck"]["test"])
        m = re.search(r"'(http://[^']+)'", test)
        assert m is not None, f"{self.name}: no URL in its healthcheck {test!r}"
        return m.group(1)

    def depends_on(self) -> dict[str, str]:
        """Dependency -> condition (a list means service_started)."""
        deps = self.spec.get("depends_on", {})
        if isinstance(deps, list):
            return dict.fromkeys(deps, "service_started")
        return {name: str(d.get("condition", "service_started")) for name, d in deps.items()}

    def requires(self, dep: str) -> bool:
        """Whether ``dep`` must exist (``required: false`` lets Compose ignore it)."""
        deps = self.spec.get("depends_on", {})
        return isinstance(deps, list) or bool(deps[dep].get("required", True))

    @property
    def stop_grace_s(self) -> float:
        """``stop_grace_period`` in seconds (Compose's default: 10 s)."""
        text = str(self.spec.get("stop_grace_period", "10s"))
        m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
        assert text, f"{self.name}: empty stop_grace_period"
        assert m is not None, f"{self.name}: stop_grace_period {text!r} not understood"
        return 60.0 * int(m.group(1) or 0) + int(m.group(2) or 0)

    def member_names(self) -> list[str]:
        """``cadenza-worker-1``, ``cadenza-worker-2`` for replicas; the service name alone."""
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.replicas + 1)]


def cadenza_services(doc: Mapping[str, Any]) -> list[Service]:
    """The services that run the Cadenza image, in file order."""
    return [
        Service(name, spec)
        for name, spec in doc["services"].items()
        if spec.get("image") == CADENZA_IMAGE
    ]


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None


def with_option(argv: list[str], name: str, value: str) -> list[str]:
    """``argv`` with the value of ``--name`` replaced (it must be there)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == name:
            out[i + 1] = value
            return out
        if arg.startswith(name + "="):
            out[i] = f"{name}={value}"
            return out
    raise AssertionError(f"{name} not in {argv}")


def fixed_addresses(doc: Mapping[str, Any]) -> dict[str, str]:
    """Fixed container address (a network's ``ipv4_address``) -> the service that has it."""
    found: dict[str, str] = {}
    for name, spec in doc["services"].items():
        networks = spec.get("networks", [])
        for net in networks.values() if isinstance(networks, dict) else []:
            if net and net.get("ipv4_address"):
                found[str(net["ipv4_address"])] = name
    return found
