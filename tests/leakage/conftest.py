"""Shared fixtures of the leakage tests: every test runs on one torch CPU thread (restored afterwards): the
batched small problems lose 5-30x to thread hand-offs on shared cores."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device("cpu")):
        yield
