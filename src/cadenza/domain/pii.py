"""PII redaction rules of a workspace and the checks that confirm a candidate match, as pure
values and functions.

The regular expressions that find candidates run on RE2 (``application/pii_detectors.py``,
linear time); what is here decides whether a candidate really is a card number (Luhn), an
IBAN (ISO 13616 mod-97), a phone number (digit count and shape, so dates, versions, IP
addresses and plain numbers are not taken) or a high-entropy token. Every function here is
linear in its argument.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from cadenza.domain.errors import DomainError

EMAIL, PHONE, CARD, IBAN, API_KEY = "email", "phone", "card", "iban", "api_key"
BUILTIN = (EMAIL, PHONE, CARD, IBAN, API_KEY)
REPLACEMENT = {
    EMAIL: "[email]",
    PHONE: "[phone]",
    CARD: "[card]",
    IBAN: "[iban]",
    API_KEY: "[secret]",
}
MAX_CUSTOM_RULES = 20  # custom rules per workspace
MAX_PATTERN_CHARS = 500  # one custom pattern
MAX_REPLACEMENT_CHARS = 64
MAX_NAME_CHARS = 40
TOKEN_MIN_CHARS = 32  # a generic secret-looking token is at least this long...
TOKEN_MIN_ENTROPY = 3.5  # ...carries this many bits per character (Shannon, by frequency)...
TOKEN_MIN_DIGIT_RUNS = 2  # ...and has digits in at least this many places


class RulesInvalid(DomainError):
    """A redaction configuration that cannot be stored (422); the message says why."""


@dataclass(frozen=True)
class CustomRule:
    """A workspace's own pattern (RE2 syntax) and what replaces its matches."""

    name: str
    pattern: str
    replacement: str

    def __post_init__(self) -> None:
        n = self.name
        if not (0 < len(n) <= MAX_NAME_CHARS and n[0].isalpha() and _ident(n)):
            raise RulesInvalid(
                f"a rule name is 1 to {MAX_NAME_CHARS} characters: a letter, then letters, "
                f"digits, '_' or '-' (got {n[:MAX_NAME_CHARS]!r})"
            )
        if not 0 < len(self.pattern) <= MAX_PATTERN_CHARS:
            raise RulesInvalid(f"rule {n!r}: a pattern has 1 to {MAX_PATTERN_CHARS} characters")
        if len(self.replacement) > MAX_REPLACEMENT_CHARS:
            raise RulesInvalid(
                f"rule {n!r}: a replacement has at most {MAX_REPLACEMENT_CHARS} characters"
            )


def _ident(name: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


@dataclass(frozen=True)
class RedactionRules:
    """What a workspace redacts: nothing unless ``enabled`` (the one switch); then the named
    built-in detectors (all of them by default) and its custom rules."""

    enabled: bool = False
    detectors: frozenset[str] = field(default_factory=lambda: frozenset(BUILTIN))
    custom: tuple[CustomRule, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(self.detectors - set(BUILTIN))
        if unknown:
            raise RulesInvalid(f"unknown detector {unknown[0]!r}; known: {', '.join(BUILTIN)}")
        if len(self.custom) > MAX_CUSTOM_RULES:
            raise RulesInvalid(f"a workspace has at most {MAX_CUSTOM_RULES} custom rules")
        names = [r.name for r in self.custom]
        if len(set(names)) != len(names):
            raise RulesInvalid("custom rule names are unique")
        clash = sorted(set(names) & set(BUILTIN))
        if clash:
            raise RulesInvalid(f"{clash[0]!r} is a built-in detector's name")


# ---- confirming candidates ------------------------------------------------------------------
def luhn_ok(digits: str) -> bool:
    """The Luhn check of a payment card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_ok(candidate: str) -> bool:
    """13 to 19 digits (spaces or dashes between them allowed) passing Luhn, not all one digit."""
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_ok(digits)


def iban_ok(candidate: str) -> bool:
    """An IBAN (spaces allowed): 15 to 34 characters, country letters, check digits, and
    the ISO 7064 mod-97 remainder 1, computed digit by digit (no big integer)."""
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34 or not (s[:2].isalpha() and s[2:4].isdigit()):
        return False
    remainder = 0
    for ch in s[4:] + s[:4]:
        if ch.isdigit():
            remainder = (remainder * 10 + ord(ch) - 48) % 97
        elif "A" <= ch <= "Z":
            remainder = (remainder * 100 + ord(ch) - 55) % 97
        else:
            return False
    return remainder == 1


def phone_ok(candidate: str) -> bool:
    """A phone number: ``+`` (or ``00``) and 8 to 15 digits (E.164); or a national number
    written with separators: North American ``(415) 555-0132`` / ``415-555-0132``, or a trunk
    ``0`` and 9 to 11 digits in groups of at least two (``030 1234567``, ``06 12 34 56 78``).
    A bare run of digits, a date (``2026-12-02``, ``02/12/2026``), a version or an IP address
    (dots between groups of at most three digits) is not one."""
    s = candidate.strip()
    digits = sum(c.isdigit() for c in s)
    groups = [g for g in _split(s) if g]
    if s.startswith("00") and (len(groups) < 2 or s[2:3] == "0"):
        return False  # 00 and a country code, written in groups (a bare 00... run is a number)
    if s.startswith(("+", "00")):
        if s.count("+") > 1 or not 8 <= digits - (2 if s.startswith("00") else 0) <= 15:
            return False
        return not _dotted_quad(groups, s)
    if len(groups) < 2 or "/" in s:
        return False
    if _dotted_quad(groups, s):
        return False
    if digits == 10 and [len(g) for g in groups][-2:] == [3, 4] and s.lstrip("(")[0] in "23456789":
        return True  # NANP: (NXX) NXX-XXXX
    lead = s.lstrip("(")
    return lead.startswith("0") and 9 <= digits <= 11 and all(len(g) >= 2 for g in groups)


def phone_viable(candidate: str) -> bool:
    """Whether any prefix of ``candidate`` can be a phone number (``phone_ok``): how it
    starts decides (``+`` or ``00`` and a country code from 1, ``(``, a trunk ``0`` or a
    North American area code from 2), so a failed candidate is not retried shorter in vain."""
    s = candidate.lstrip("(")
    if s.startswith("+"):
        return s[1:2] in _NON_ZERO
    if s.startswith("00"):
        return s[2:3] in _NON_ZERO or s[2:3] == " "
    first = len(s) - len(s.lstrip("0123456789"))  # digits of the first group
    if s[:1] == "0":
        return first >= 2  # a trunk 0 starts a group of at least two digits
    return s[:1] in _AREA and first == 3  # a North American area code


_NON_ZERO = frozenset("123456789")
_AREA = frozenset("23456789")


def _split(s: str) -> list[str]:
    out, cur = [], []
    for c in s:
        if c.isdigit():
            cur.append(c)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def _dotted_quad(groups: list[str], s: str) -> bool:
    return "." in s and all(len(g) <= 3 for g in groups) and len(groups) >= 3


def token_ok(candidate: str) -> bool:
    """A generic secret-looking token: at least ``TOKEN_MIN_CHARS`` characters from
    ``[A-Za-z0-9_-]`` with upper case, lower case and digits all present, digits in at least
    ``TOKEN_MIN_DIGIT_RUNS`` separate runs (a random base-62 string of 32 has ~5 digits,
    scattered; ``CamelCaseIdentifierName2024`` has one run), and a Shannon entropy of at least
    ``TOKEN_MIN_ENTROPY`` bits per character. Hex ids and UUIDs (no upper case), words,
    ``snake_case`` and ``CamelCase`` names are not taken; a random 32-character token with
    fewer than two runs of digits is missed (about 1 in 25; longer tokens less often)."""
    if len(candidate) < TOKEN_MIN_CHARS:
        return False
    if not (
        any(c.isupper() for c in candidate)
        and any(c.islower() for c in candidate)
        and any(c.isdigit() for c in candidate)
    ):
        return False
    runs = sum(
        b.isdigit() and not a.isdigit() for a, b in zip(" " + candidate, candidate, strict=False)
    )
    return runs >= TOKEN_MIN_DIGIT_RUNS and entropy(candidate) >= TOKEN_MIN_ENTROPY


def entropy(text: str) -> float:
    n = len(text)
    return -sum(k / n * math.log2(k / n) for k in Counter(text).values()) if n else 0.0


@dataclass(frozen=True)
class Redacted:
    """One place a stored value was redacted: a JSON path (``$.customer.email``; ``(key)``
    when a mapping key was) and the detectors that matched there."""

    path: str
    detectors: tuple[str, ...]
