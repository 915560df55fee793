"""The one redaction function: revealed values and their simple transforms become ``***``."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from cadenza.application.redaction import MASK, Redactor
from cadenza.domain.json import JSON

VALUE = "tok/en+with=odd&chars-123"


def redactor(*values: str) -> Redactor:
    r = Redactor()
    for v in values:
        r.add(v)
    return r


@pytest.mark.parametrize(
    "form",
    [
        VALUE,
        VALUE[::-1],
        quote(VALUE, safe=""),
        quote_plus(VALUE),
        json.dumps(VALUE)[1:-1],
        base64.b64encode(VALUE.encode()).decode(),
        base64.urlsafe_b64encode(VALUE.encode()).decode(),
    ],
    ids=["exact", "reversed", "url", "url-plus", "json", "base64", "base64url"],
)
def test_each_form_of_the_value_is_masked(form: str) -> None:
    out = redactor(VALUE).text(f"before {form} after")
    assert out.startswith("before ")
    assert out.endswith(" after")
    assert form not in out
    assert MASK in out


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "user:"])
def test_base64_of_a_longer_string_holding_the_value_is_masked(prefix: str) -> None:
    """``Authorization: Basic base64(user:value)`` echoed back: found at every alignment."""
    encoded = base64.b64encode(f"{prefix}{VALUE}".encode()).decode()
    out = redactor(VALUE).text(encoded)
    assert MASK in out
    decoded_core = out.replace(MASK, "")
    assert len(decoded_core) <= 8  # only the characters that mix in the prefix or the end


def test_strings_lists_mapping_keys_and_values_are_redacted() -> None:
    out = redactor(VALUE).json({"a": [VALUE, 1, None], VALUE: {"b": f"x{VALUE}"}})
    assert out == {"a": [MASK, 1, None], MASK: {"b": f"x{MASK}"}}


def test_short_values_are_masked_verbatim_only() -> None:
    r = redactor("abc")
    assert r.text("abc cba YWJj") == "*** cba YWJj"


def test_nothing_revealed_leaves_everything_as_is() -> None:
    r = Redactor()
    value: JSON = {"k": ["v"]}
    assert not r
    assert r.json(value) is value
    assert r.text("x") == "x"
