"""`conftest.beside_worker`, the forked worker that slow gate modules (translate, select-features) run their
independent work in: it runs on one torch and one BLAS thread, returns results, and raises the worker's error
in the test that fetches it."""

from __future__ import annotations

import pytest
from conftest import beside_worker


def _threads():
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})


def _fails():
    raise ValueError("in the worker")


def test_worker_runs_one_thread_and_raises_its_errors_here():
    with beside_worker() as submit:
        threads, err = submit(_threads), submit(_fails)
        torch_threads, blas = threads.get(timeout=60)
        assert torch_threads == 1
        assert blas in ([], [1])  # [] only where numpy has no threadpoolctl-visible BLAS
        with pytest.raises(ValueError, match="in the worker"):
            err.get(timeout=60)
