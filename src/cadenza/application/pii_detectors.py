"""Finding PII in text: the built-in detectors and a workspace's custom rules, all on RE2.

Every pattern here, and every custom pattern, is compiled by RE2, whose matching time is
linear in the text whatever the pattern (no backtracking), and a candidate found by a pattern
is confirmed by a linear check of ``domain/pii.py`` (Luhn, mod-97, phone shape, entropy). A
candidate that fails its check may be retried shorter, dropping a trailing group, at most
``MAX_SHRINK`` times, and a failed card candidate (at most 37 characters) is retried from
each of its later groups (``12 4111 1111 1111 1111``), so the work stays linear.
``Scanner.work`` counts the characters handed to the checks (tests bound it).

Order: e-mail, API keys (known prefixes, then generic tokens), IBAN, phone, card, then the
workspace's custom rules; each runs on the text the ones before it produced, so a match that
was replaced (``[email]``) is not matched again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import re2

from cadenza.domain.pii import (
    API_KEY,
    CARD,
    EMAIL,
    IBAN,
    PHONE,
    REPLACEMENT,
    CustomRule,
    RedactionRules,
    RulesInvalid,
    card_ok,
    iban_ok,
    phone_ok,
    phone_viable,
    token_ok,
)

RE2_MAX_MEM = 1 << 20  # bytes for one compiled custom pattern: a larger one is refused
MAX_SHRINK = 8  # retries of a failed candidate without its last group
MIN_TEXT = 6  # shorter strings hold none of the built-in kinds (a@b.co): not scanned


def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEM
    return re2.compile(pattern, options)


def compile_custom(rule: CustomRule) -> Any:
    """The rule's pattern on RE2. Raises RulesInvalid (not RE2 syntax, too large, or matching
    the empty string, which would match everywhere)."""
    try:
        compiled = _compile(rule.pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise RulesInvalid(f"rule {rule.name!r}: not an RE2 pattern: {text[:200]}") from exc
    if compiled.search("") is not None:
        raise RulesInvalid(f"rule {rule.name!r}: the pattern matches the empty string")
    return compiled


_EMAIL = _compile(r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}")
_KEYS = _compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[A-Za-z0-9_-]{35})"
)
_TOKEN = _compile(r"[A-Za-z0-9_-]{32,}")
_IBAN = _compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = _compile(r"\b[0-9](?:[ -]?[0-9]){12,18}\b")
_PHONE = _compile(r"[+(]?\(?[0-9][0-9 ().-]{6,22}[0-9]")
# what every built-in match contains: an @, a run of digits (with separators) of 7, or a run
# of 16 word characters (keys, tokens, IBANs without spaces); text without any is skipped
_ANY = _compile(r"@|[0-9][0-9 ().+-]{6}|[A-Za-z0-9_-]{16}")
_PHONE_BEFORE = frozenset("+-./_")  # a character before a candidate that makes it part of more


@dataclass(frozen=True)
class _Pass:
    name: str
    regex: Any
    replacement: str
    check: Callable[[str], bool] | None = None
    shrink: str = ""  # retry a failed candidate without its last group after this separator
    standalone: bool = False  # the characters around a match may not be alphanumeric
    # retry a failed candidate from each of its later groups (bounded candidates only)
    restart: bool = False
    viable: Callable[[str], bool] | None = None  # False: no shorter candidate can pass either


_BUILTIN = {
    EMAIL: [_Pass(EMAIL, _EMAIL, REPLACEMENT[EMAIL])],
    API_KEY: [
        _Pass(API_KEY, _KEYS, REPLACEMENT[API_KEY]),
        _Pass(API_KEY, _TOKEN, REPLACEMENT[API_KEY], token_ok, standalone=True),
    ],
    IBAN: [_Pass(IBAN, _IBAN, REPLACEMENT[IBAN], iban_ok, shrink=" ")],
    CARD: [_Pass(CARD, _CARD, REPLACEMENT[CARD], card_ok, shrink=" ", restart=True)],
    PHONE: [
        _Pass(
            PHONE,
            _PHONE,
            REPLACEMENT[PHONE],
            phone_ok,
            shrink=" ",
            standalone=True,
            viable=phone_viable,
        )
    ],
}
_ORDER = (EMAIL, API_KEY, IBAN, PHONE, CARD)


class Scanner:
    """The passes one workspace's rules make; ``text`` redacts one string."""

    def __init__(self, rules: RedactionRules, custom: Iterable[tuple[CustomRule, Any]] = ()):
        self._passes = [p for name in _ORDER if name in rules.detectors for p in _BUILTIN[name]]
        self._builtin = len(self._passes)
        own = [_Pass(r.name, regex, r.replacement or f"[{r.name}]") for r, regex in custom]
        self._passes += own
        self._scan_short = bool(own)  # a custom pattern may match fewer than MIN_TEXT chars
        self.work = 0  # characters handed to the confirming checks

    @classmethod
    def of(cls, rules: RedactionRules) -> Scanner:
        """Compile the custom rules too (raises RulesInvalid)."""
        return cls(rules, [(r, compile_custom(r)) for r in rules.custom])

    def text(self, text: str) -> tuple[str, list[str]]:
        """``text`` with every match replaced, and the names of the detectors that matched
        (in the order they ran, each once)."""
        hits: list[str] = []
        if len(text) < MIN_TEXT and not self._scan_short:
            return text, hits
        passes = self._passes
        if self._builtin and _ANY.search(text) is None:
            passes = passes[self._builtin :]  # no built-in detector can match: one search
        for p in passes:
            text, hit = self._run(p, text)
            if hit and p.name not in hits:
                hits.append(p.name)
        return text, hits

    def _run(self, p: _Pass, text: str) -> tuple[str, bool]:
        """One pass over ``text``: RE2 walks it once (``finditer``); a failed candidate of a
        ``restart`` pass is searched again from its next groups within a window of
        ``RESTART_WINDOW`` characters (a phone number before a card number)."""
        out: list[str] = []
        at = 0
        for m in p.regex.finditer(text):
            start, end = m.start(), m.end()
            if start < at or start == end:
                continue  # inside a match a restart already took
            found = self._confirmed(p, text, start, end)
            if found is None and p.restart:
                found = self._restart(p, text, start, end)
            if found is None:
                continue
            start, stop = found
            out.append(text[at:start])
            out.append(p.replacement)
            at = stop
        if not out:
            return text, False
        out.append(text[at:])
        return "".join(out), True

    def _restart(self, p: _Pass, text: str, start: int, end: int) -> tuple[int, int] | None:
        """The first suffix of a failed candidate, from one of its later groups, that passes
        (``12 4111 1111 1111 1111``): at most one check per group, no new search."""
        g = _next_group(text, start, end)
        while g < end:
            candidate = text[g:end]
            self.work += len(candidate)
            if p.check is not None and p.check(candidate):
                return g, end
            g = _next_group(text, g, end)
        return None

    def _confirmed(self, p: _Pass, text: str, start: int, end: int) -> tuple[int, int] | None:
        """The confirmed match starting at ``start`` (maybe shorter), or None."""
        if p.standalone and start > 0:
            before = text[start - 1]
            if before.isalnum() or (before in _PHONE_BEFORE and text[start] != "+"):
                return None
        if p.viable is not None and not p.viable(text[start:end]):
            return None
        for _ in range(MAX_SHRINK + 1):
            candidate = text[start:end]
            self.work += len(candidate)
            after_ok = not p.standalone or end >= len(text) or not text[end].isalnum()
            if after_ok and (p.check is None or p.check(candidate)):
                return start, end
            cut = candidate.rfind(p.shrink) if p.shrink else -1
            if cut <= 0:
                return None
            end = start + len(candidate[:cut].rstrip(" ().-"))
        return None


def _next_group(text: str, start: int, end: int) -> int:
    """Where the group after the first one of ``text[start:end]`` starts (``end`` if none)."""
    i = start + 1
    while i < end and text[i].isalnum():
        i += 1
    while i < end and not text[i].isalnum():
        i += 1
    return i if i < end else end
