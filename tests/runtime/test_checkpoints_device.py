import numpy as np
import pytest
import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.checkpoints import load_checkpoint, save_checkpoint
from wisecli.runtime.device import autocast, init_distributed, resolve_device


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "ck" / "best.pt", method="nnls", arch="linear",
                           config={"width": np.int64(3), "spacing": np.array([0.5, 0.5])},
                           state_dict=model.state_dict(), metrics={"dsc": np.float32(0.5)}, epoch=4)
    raw = torch.load(path, weights_only=True)  # plain types only, so the safe loader accepts it
    assert raw["format"] == "wisecli/1" and raw["epoch"] == 4 and raw["config"]["width"] == 3
    doc = load_checkpoint(path, method="nnls")
    other = torch.nn.Linear(3, 2)
    other.load_state_dict(doc["state_dict"])
    assert torch.equal(other.weight, model.weight)
    assert doc["metrics"]["dsc"] == pytest.approx(0.5) and doc["versions"]["torch"]
    assert load_checkpoint(tmp_path / "ck", method="nnls")["arch"] == "linear"  # a folder holding best.pt


def test_foreign_corrupt_and_missing_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", method="fas", arch="cdcn", config={}, state_dict={})
    with pytest.raises(InputError, match="'fas' checkpoint, not 'reid'"):
        load_checkpoint(path, method="reid")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="cannot load"):
        load_checkpoint(tmp_path / "junk.pt", method="fas")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(InputError, match="not a wisecli checkpoint"):
        load_checkpoint(tmp_path / "plain.pt", method="fas")
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "none.pt", method="fas")
    import argparse

    torch.save({"format": "wisecli/1", "method": "fas", "x": argparse.Namespace(a=1)}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="cannot load"):  # arbitrary objects never unpickle
        load_checkpoint(tmp_path / "evil.pt", method="fas")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InputError, match="unknown --device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        for spec in ("cuda", "cuda:0"):
            with pytest.raises(InputError) as exc:
                resolve_device(spec)
            assert exc.value.exit_code == 2 and "--device cpu" in exc.value.hint
    x = torch.ones(2, 2)
    with autocast(torch.device("cpu")):
        assert (x @ x).dtype == torch.float32  # no autocast on CPU
    info, dev = init_distributed("cpu")
    assert (info.world_size, info.is_main, info.enabled, dev.type) == (1, True, False, "cpu")


@pytest.mark.gpu
def test_autocast_uses_bf16_on_cuda():
    dev = resolve_device("cuda")
    x = torch.ones(4, 4, device=dev)
    with autocast(dev):
        assert (x @ x).dtype in (torch.bfloat16, torch.float16)


def test_one_cpu_thread_restores_the_thread_count():
    from wisecli.runtime.device import one_cpu_thread

    before = torch.get_num_threads()
    with one_cpu_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with one_cpu_thread(torch.device("cpu"), enabled=False):
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with one_cpu_thread(torch.device("cpu")):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_timed_is_the_median_after_untimed_warmups(monkeypatch):
    import time

    from wisecli.runtime import device as devmod

    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 22.0])  # three timed calls: 5 s, 1 s, 2 s
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    calls = []
    out, seconds = devmod.timed(lambda: calls.append(1) or len(calls), torch.device("cpu"), repeats=3, warmup=2)
    assert seconds == 2.0 and out == 5 and len(calls) == 5  # 2 warm-ups untimed, median of 5, 1, 2
    clock = iter([0.0, 3.0, 10.0, 11.0])
    assert devmod.timed(lambda: None, torch.device("cpu"), repeats=2)[1] == 2.0  # even count: mean of the middle two


def test_versions_are_looked_up_once_and_returned_fresh(monkeypatch):
    """`bench.versions()` (written into every checkpoint, one a training epoch) looks the packages up once a process
    (≈ 14 ms of importlib.metadata each time before) and hands out a new dict, so a caller's change stays local."""
    from importlib import metadata

    from wisecli.runtime import bench

    bench._versions_once.cache_clear()
    first = bench.versions()
    looked = []
    monkeypatch.setattr(metadata, "version", lambda d: looked.append(d) or "0")
    second = bench.versions()
    assert second == first and looked == []
    second["torch"] = "changed"
    assert bench.versions()["torch"] == first["torch"]
    assert set(first) == {"python", "wisecli", *bench._STACK}


def test_flush_denormals_flushes_inside_and_restores_the_mode():
    from wisecli.runtime.device import _flushing_denormals, flush_denormals

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    tiny = torch.tensor([1e-38], dtype=torch.float32)
    assert float(tiny * 1e-3) != 0.0 and not _flushing_denormals()  # 1e-41: a subnormal float32
    with flush_denormals(torch.device("cpu")):
        assert float(tiny * 1e-3) == 0.0 and _flushing_denormals()
        assert float(tiny * 10) == pytest.approx(1e-37, rel=1e-6)  # normal numbers are untouched
    assert not _flushing_denormals()
    with flush_denormals(torch.device("cpu"), enabled=False):
        assert not _flushing_denormals()
    with pytest.raises(RuntimeError):
        with flush_denormals(torch.device("cpu")):
            raise RuntimeError("boom")
    assert not _flushing_denormals()
    torch.set_flush_denormal(True)  # already on: left on afterwards
    try:
        with flush_denormals(torch.device("cpu")):
            assert _flushing_denormals()
        assert _flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
