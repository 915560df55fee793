"""The PII detectors: what each finds, what none of them takes (dates, ids, plain numbers,
versions, addresses, identifiers), custom rules and their limits, and linear work on hostile
input (counted, not timed)."""

from __future__ import annotations

import pytest

from cadenza.application.pii_detectors import MAX_SHRINK, Scanner
from cadenza.domain.pii import (
    BUILTIN,
    MAX_CUSTOM_RULES,
    CustomRule,
    RedactionRules,
    RulesInvalid,
    card_ok,
    iban_ok,
    luhn_ok,
)

ALL = Scanner.of(RedactionRules(True))


@pytest.mark.parametrize(
    ("text", "want", "detector"),
    [
        ("mail alice.smith+x@example.co.uk now", "mail [email] now", "email"),
        ("call +33 6 12 34 56 78 today", "call [phone] today", "phone"),
        ("(415) 555-0132", "[phone]", "phone"),
        ("415-555-0132", "[phone]", "phone"),
        ("030 1234567", "[phone]", "phone"),
        ("0044 20 7946 0958", "[phone]", "phone"),
        ("tel:+14155550132", "tel:[phone]", "phone"),
        ("card 4111 1111 1111 1111 ok", "card [card] ok", "card"),
        ("4111-1111-1111-1111", "[card]", "card"),
        ("378282246310005", "[card]", "card"),
        ("iban DE89 3704 0044 0532 0130 00 AND more", "iban [iban] AND more", "iban"),
        ("GB82WEST12345698765432", "[iban]", "iban"),
        ("key sk-abcdefghijklmnop1234 x", "key [secret] x", "api_key"),
        ("AKIAIOSFODNN7EXAMPLE", "[secret]", "api_key"),
        ("ghp_" + "a1B2" * 9, "[secret]", "api_key"),
        ("xoxb-1234567890-abcdef", "[secret]", "api_key"),
        ("tok Zx8Kq2Lm9Pw4Rt7Yv1Nb6Hc3Jd5Fg0Ss end", "tok [secret] end", "api_key"),
    ],
)
def test_each_detector_finds_its_kind(text: str, want: str, detector: str) -> None:
    assert ALL.text(text) == (want, [detector])


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-02",
        "02/12/2026",
        "2026-12-02T10:30:00Z",
        "12345678901",
        "price 100000000",
        "timestamp 1733140000.123",
        "192.168.100.200",
        "version 1.2.3.4",
        "order 1234567890123 amount 12.50",  # 13 digits, not Luhn-valid
        "4111 1111 1111 1112",  # a card's shape, Luhn fails
        "GB82 WEST 1234 5698 7654 31",  # an IBAN's shape, mod-97 fails
        "id 0193ab45cd67ef8901234567890abcdef1",  # our ids: lower-case hex
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "ThisIsAVeryLongIdentifierName2024",
        "snake_case_identifier_name_that_is_long_1",
        "task-0123456789abcdef0123456789abcdef0123",
        "0000000000000000",  # one digit repeated passes Luhn: not a card
        "not an email: a@b",
        "sk-short",
    ],
)
def test_nothing_is_taken_from_dates_ids_numbers_and_names(text: str) -> None:
    assert ALL.text(text) == (text, [])


def test_checksums() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert card_ok("5500 0000 0000 0004")
    assert not card_ok("5500 0000 0000 0005")
    assert iban_ok("FR14 2004 1010 0505 0001 3M02 606")
    assert not iban_ok("FR14 2004 1010")


def test_only_the_chosen_detectors_run_and_custom_rules_follow() -> None:
    rules = RedactionRules(
        True,
        frozenset({"email"}),
        (CustomRule("employee", "EMP-[0-9]{6}", ""), CustomRule("ticket", "T#[0-9]+", "[t]")),
    )
    s = Scanner.of(rules)
    text = "a@example.com 4111 1111 1111 1111 EMP-123456 T#9"
    assert s.text(text) == (
        "[email] 4111 1111 1111 1111 [employee] [t]",
        ["email", "employee", "ticket"],
    )


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (CustomRule("bad", "(unclosed", ""), "not an RE2 pattern"),
        (CustomRule("backref", r"(a)\1", ""), "not an RE2 pattern"),
        (CustomRule("lookahead", r"a(?=b)", ""), "not an RE2 pattern"),
        (CustomRule("empty", "x*", ""), "matches the empty string"),
        (CustomRule("huge", "(((a{100}){100}){100})", ""), "not an RE2 pattern"),
    ],
)
def test_a_custom_pattern_re2_cannot_run_is_refused(rule: CustomRule, reason: str) -> None:
    with pytest.raises(RulesInvalid, match=reason):
        Scanner.of(RedactionRules(True, custom=(rule,)))


def test_rules_limits() -> None:
    with pytest.raises(RulesInvalid, match="unknown detector"):
        RedactionRules(True, frozenset({"ssn"}))
    with pytest.raises(RulesInvalid, match="at most"):
        RedactionRules(True, custom=tuple(CustomRule(f"r{i}", "x", "") for i in range(21)))
    with pytest.raises(RulesInvalid, match="unique"):
        RedactionRules(True, custom=(CustomRule("a", "x", ""), CustomRule("a", "y", "")))
    with pytest.raises(RulesInvalid, match="built-in"):
        RedactionRules(True, custom=(CustomRule("email", "x", ""),))
    with pytest.raises(RulesInvalid, match="rule name"):
        CustomRule("1bad name", "x", "")
    with pytest.raises(RulesInvalid, match="pattern"):
        CustomRule("long", "x" * 501, "")
    assert RedactionRules().enabled is False  # off by default
    assert RedactionRules(True).detectors == frozenset(BUILTIN)  # all by default
    assert MAX_CUSTOM_RULES == 20


MIB = 1 << 20


@pytest.mark.parametrize(
    "hostile",
    [
        "1 " * (MIB // 2),  # one long phone/card candidate after another
        "4" * MIB,  # a digit run longer than any card
        ("4111 " * 4 + "x") * (MIB // 21),  # near-cards, none valid
        "DE89 " * (MIB // 5),  # an IBAN-looking run that never checks
        "a" * MIB + "@",  # an e-mail's local part without a domain
        ("aB3" * 11 + " ") * (MIB // 34),  # token candidates of 33 characters
        "+" + "0 " * (MIB // 2),
        "(" * MIB,
    ],
    ids=[
        "spaced-digits",
        "digits",
        "near-cards",
        "iban-run",
        "no-domain",
        "tokens",
        "plus",
        "paren",
    ],
)
def test_work_on_a_mebibyte_of_hostile_text_stays_linear(hostile: str) -> None:
    rules = RedactionRules(True, custom=(CustomRule("nested", "(a+)+b", ""),))
    s = Scanner.of(rules)  # RE2 runs even ``(a+)+b`` in linear time
    s.text(hostile)
    # every confirming check sees each character at most once per retry, per pass
    assert s.work <= (MAX_SHRINK + 1) * 6 * len(hostile)
