"""What the AppTests share: page files, the quick legacy preset and small element helpers
(``tests/test_app_*.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from hpmkd_app import configform

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
QUICK_LEGACY = configform.apply_preset(configform.default_form(), configform.QUICK_PRESET)


def button(at: AppTest, label: str) -> Any:
    """The button labelled ``label`` (fails listing the buttons there are)."""
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]


def texts(elements: Any) -> str:
    """The values of ``elements`` (markdown, captions, alerts ...) as one text."""
    return "\n".join(str(e.value) for e in elements)


def ok(at: AppTest) -> AppTest:
    """``at`` after checking that its script raised nothing."""
    assert not at.exception, [e.value for e in at.exception]
    return at
