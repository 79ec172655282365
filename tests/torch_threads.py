"""One intra-op torch thread for the tests of tiny models: on 2 shared cores more threads make them slower,
not faster. A conftest that wants it imports `one_torch_thread` (an autouse, session-scoped fixture)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
