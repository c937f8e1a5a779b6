"""The bandit agents step one small batch at a time (a [20, 71] x [71, 71] product per user): torch's intra-op
threads only add overhead there, and on a loaded machine two threads made a 1,000-step LinUCB run 20x slower
(18 s against 0.8 s). The tests here run on one thread and give the setting back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
