"""A value of the right type for any column: the retention and workspace-deletion tests plant
a row in every table from the metadata, so a table added later is covered without a change."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

_n = itertools.count()


def column_value(column: sa.Column[Any], tag: str) -> object:
    """A fresh value for ``column``; strings start with ``tag`` (cut to the column's length)."""
    t = column.type
    if isinstance(t, sa.JSON):
        return {}
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, sa.Integer):
        return next(_n)
    if isinstance(t, sa.Float):
        return 1.0
    if isinstance(t, sa.LargeBinary):
        return b"x"
    length = getattr(t, "length", None) or 40
    return f"{tag}-{next(_n)}"[-length:]
