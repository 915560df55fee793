"""``cadenza.bootstrap`` re-exports its builders lazily (PEP 562): each name is the object of
the module that defines it, and a name it does not export is an AttributeError."""

from __future__ import annotations

import importlib

import pytest

import cadenza.bootstrap


def test_every_exported_name_is_the_object_of_its_module() -> None:
    homes = {
        name: importlib.import_module(f"cadenza.bootstrap.{home}")
        for name, home in cadenza.bootstrap._HOME.items()
    }
    assert sorted(homes) == sorted(cadenza.bootstrap.__all__)
    for name, module in homes.items():
        assert getattr(cadenza.bootstrap, name) is getattr(module, name), name


def test_from_import_of_an_exported_name_works() -> None:
    from cadenza.bootstrap import build
    from cadenza.bootstrap.runtime import build as defined

    assert build is defined


def test_a_name_not_exported_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'SqlStore'"):
        _ = cadenza.bootstrap.SqlStore
