"""The size and depth check of stored values: the fast bound never lets a value over the limit
through, and the answers are those of measuring the encoded JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.domain.json import JSON
from cadenza.domain.limits import Limits, _depth_and_bound, json_size, too_deep, value_problem

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_the_bound_is_never_below_the_encoded_size(value: JSON) -> None:
    _, bound = _depth_and_bound(value)
    assert json_size(value) <= bound


@settings(max_examples=300, deadline=None)
@given(_VALUES, st.integers(min_value=1, max_value=6), st.integers(min_value=2, max_value=400))
def test_the_answer_is_that_of_measuring_the_json(value: JSON, depth: int, size: int) -> None:
    limits = Limits(max_depth=depth, max_value_bytes=size)
    deep = too_deep(value, depth)
    expected: tuple[str, str] | None
    if deep is not None:
        expected = (deep, f"v nested deeper than {depth} levels")
    else:
        n = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        expected = ("", f"v is {n} bytes as JSON; the limit is {size}") if n > size else None
    assert value_problem(value, limits, "v") == expected
