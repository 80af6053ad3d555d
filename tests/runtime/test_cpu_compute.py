"""runtime.device.cpu_compute / usable_cpus and the progress line's time left (issue 13 point 7)."""

import os

import pytest
import torch

import wisecli.runtime.device as D
from wisecli.runtime.progress import eta_text


def test_cpu_compute_caps_threads_and_restores(monkeypatch):
    old = torch.get_num_threads()
    monkeypatch.setattr(D, "usable_cpus", lambda: 1)
    try:
        torch.set_num_threads(2)
        with D.cpu_compute(torch.device("cpu")) as n:
            assert n == 1 == torch.get_num_threads()
        assert torch.get_num_threads() == 2
        with D.cpu_compute(torch.device("cpu"), threads=2) as n:  # an explicit count wins
            assert n == 2 == torch.get_num_threads()
        torch.set_num_threads(1)
        monkeypatch.setattr(D, "usable_cpus", lambda: 8)
        with D.cpu_compute(torch.device("cpu")) as n:  # never more threads than the user asked for
            assert n == 1
        with pytest.raises(ValueError), D.cpu_compute(torch.device("cpu"), threads=2):
            raise ValueError("restored on error too")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_cpu_compute_no_op_on_cuda_device():
    old = torch.get_num_threads()
    with D.cpu_compute(torch.device("cuda"), threads=old + 1) as n:
        assert n == old == torch.get_num_threads()


def test_usable_cpus_within_affinity():
    n = D.usable_cpus()
    assert 1 <= n <= len(os.sched_getaffinity(0))


@pytest.mark.skipif(D._glibc_mallopt() is None, reason="not glibc")
def test_glibc_mallopt_accepts_the_thresholds():
    mallopt = D._glibc_mallopt()
    assert mallopt(D._M_MMAP_THRESHOLD, D._KEEP_MMAP_THRESHOLD) == 1
    assert mallopt(D._M_TRIM_THRESHOLD, D._KEEP_TRIM_THRESHOLD) == 1
    assert mallopt(D._M_MMAP_THRESHOLD, D._RESTORE_MMAP_THRESHOLD) == 1
    assert mallopt(D._M_TRIM_THRESHOLD, D._RESTORE_TRIM_THRESHOLD) == 1


def test_eta_text():
    assert eta_text(3, 12, 90.0) == ", 1 min 30 s elapsed, about 4 min 30 s left"
    assert eta_text(12, 12, 7300.0) == ", 2 h 1 min elapsed"
    assert eta_text(0, 12, 5.0) == ", 5 s elapsed"



def test_cpu_compute_turns_heap_trimming_off_and_restores(monkeypatch):
    """Issue 13 point 7: a 128³ WingsNet window frees ≈ 2.7 GB of activations at its end. With the trim threshold at
    1 GiB glibc handed the heap top back and the next window faulted it in again: 0.95–1.07 s of system time a
    window of 13.6–13.8 CPU-s; with trimming off 0.00 s and 12.6 CPU-s (2-core EPYC, 2 threads, random weights,
    `folded_forward` timed inside `cpu_compute`; `bench.cpu_window_row` gives the same split) [measured]. Inside
    `cpu_compute` trimming is off (-1, mallopt(3)) and blocks under 2 GiB come from the heap; afterwards the
    thresholds are restored and `malloc_trim` returns the memory. (A direct page-fault check needs a > 1 GiB
    model pass, 27 CPU-s: too slow for this suite; glibc's reuse of freed blocks of a synthetic tensor chain
    does not reproduce the model's pattern.)"""
    calls = []
    monkeypatch.setattr(D, "_glibc_mallopt", lambda: (lambda p, v: calls.append((p, v)) or 1))
    with D.cpu_compute(torch.device("cpu"), threads=torch.get_num_threads()):
        inside = dict(calls)
    assert inside == {D._M_MMAP_THRESHOLD: 2**31 - 1, D._M_TRIM_THRESHOLD: -1}
    assert dict(calls[2:]) == {D._M_MMAP_THRESHOLD: D._RESTORE_MMAP_THRESHOLD,
                               D._M_TRIM_THRESHOLD: D._RESTORE_TRIM_THRESHOLD}
