"""Settings that would stall the worker are refused at start-up, naming the variable (issue 15)."""

from __future__ import annotations

import os

import pytest

from rci.core.errors import ConfigError
from rci.core.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("RCI_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("value", ["0", "-1"])
def test_batch_max_wait_of_zero_is_refused(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("RCI_BATCH_MAX_WAIT_MS", value)  # 0 means "wait forever" to faust's take()
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "RCI_BATCH_MAX_WAIT_MS" in str(caught.value)
    assert "greater than or equal to 1" in str(caught.value)


def test_batch_max_wait_of_one_ms_is_fine(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RCI_BATCH_MAX_WAIT_MS", "1")
    assert load_settings().batch_max_wait_ms == 1
