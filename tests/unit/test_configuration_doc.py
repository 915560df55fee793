"""docs/configuration.md names every setting: a setting added without a line there fails."""

from __future__ import annotations

from pathlib import Path

from cadenza.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented_in_configuration_md() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"`CADENZA_{n.upper()}`" not in text]
    assert missing == []
