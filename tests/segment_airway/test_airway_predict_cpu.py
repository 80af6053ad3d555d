"""Issue 13 point 7: CPU predict. Thread count capped to the usable cores and restored, NCDHW model with the
same output as the channels_last_3d path, sw batch 1 on the CPU by default (same output), and the progress
counting windows done of MONAI's window count."""

import io
import sys

import numpy as np
import pytest
import torch

from wisecli.engines.segment_airway import api
from wisecli.engines.segment_airway import predict as P
from wisecli.engines.segment_airway.model import WingsNet, cpu_layout
from wisecli.engines.segment_airway.synthetic import make_phantom
from wisecli.runtime.checkpoints import save_checkpoint

# one torch and one BLAS thread per module (conftest): a 2-core machine's second core runs the recipe retrain
# beside this folder (test_airway_demo.py), and two spinning OpenMP threads here cost ~28 CPU-s more [measured]
pytestmark = pytest.mark.usefixtures("one_thread_module")

EYE = (1, 0, 0, 0, 1, 0, 0, 0, 1)


@pytest.fixture(scope="module")
def ph():
    return make_phantom("tiny", seed=0, size=(48, 40, 40), spacing=(4.0, 4.0, 4.0))


class Probe(torch.nn.Module):
    """A 'model' recording the torch thread count and batch of every window forward."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def folded_forward(self, x):
        self.calls.append((torch.get_num_threads(), x.shape[0]))
        return (0.08 - x) * 200.0


@pytest.mark.parametrize("shape,roi,overlap", [((40, 40, 48), 32, 0.5), ((40, 40, 48), 32, 0.25),
                                               ((20, 40, 72), 32, 0.0), ((64, 48, 40), 40, 0.6)])
def test_window_count_is_monai_count_and_progress_reaches_it(shape, roi, overlap):
    """`window_count` equals the number of windows MONAI runs (an axis under the window is padded), and the
    `advance` calls add up to it."""
    m, done = Probe(), []
    x = torch.rand(1, 1, *shape)
    opts = P.PredictOptions(roi=roi, overlap=overlap, sw_batch=3, amp=False)
    P.window_pass(m, x, opts, torch.device("cpu"), advance=done.append)
    n = sum(b for _, b in m.calls)
    assert n == P.window_count(shape, roi, overlap) == sum(done)
    assert P.window_count((388, 512, 512), 128, 0.5) == 294 and P.window_count((388, 512, 512), 128, 0.25) == 100


def test_window_threads_capped_to_usable_cores_and_restored(ph, monkeypatch):
    """Inside the window pass torch runs no more threads than `usable_cpus()` (here made 1, as on a 1-core cgroup
    of a bigger host); the count is restored afterwards."""
    import wisecli.runtime.device as D

    monkeypatch.setattr(D, "usable_cpus", lambda: 1)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = Probe()
        P.segment(m, ph.image.astype(np.float32), EYE, ph.spacing,
                  P.PredictOptions(roi=32, overlap=0.0, sw_batch=2, crop=False), torch.device("cpu"))
        assert m.calls and {t for t, _ in m.calls} == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_cpu_predict_model_is_ncdhw_and_equals_channels_last_path(ph, tmp_path):
    """`load_model` keeps the CPU model NCDHW (the channels_last_3d weights of training were 30 % slower per
    window); its probabilities equal the channels_last path's and sw batch 1 equals sw batch 4, to fp32 rounding
    (atol 1e-5 on probabilities: different oneDNN kernels sum in another order)."""
    torch.manual_seed(0)
    net = WingsNet(width=0.25)
    w = tmp_path / "w.pt"
    save_checkpoint(w, method="segment-airway", arch="wingsnet", config={"in_channels": 1, "width": 0.25},
                    state_dict=net.state_dict(), train_spacing_median=[4.0, 4.0, 4.0])
    model, _ = P.load_model(w, torch.device("cpu"))
    conv = model.enc[1].conv.weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last_3d)
    old_path = cpu_layout(WingsNet(width=0.25), "cpu").eval()
    old_path.load_state_dict(net.state_dict())
    hu = np.ascontiguousarray(ph.image[4:36, 4:36, :].astype(np.float32))  # 32×32×48: two blended windows
    cpu = torch.device("cpu")
    probs = {}
    for name, mdl, batch in [("new", model, 1), ("old", old_path, 4), ("new4", model, 4)]:
        opts = P.PredictOptions(roi=32, overlap=0.5, sw_batch=batch, crop=False, probabilities=True, amp=False)
        seg = P.segment(mdl, hu, EYE, ph.spacing, opts, cpu)
        probs[name] = seg.prob
        assert seg.windows == P.window_count(hu.shape, 32, 0.5) == 2
    assert probs["new"].std() > 1e-3
    np.testing.assert_allclose(probs["new"], probs["old"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(probs["new"], probs["new4"], atol=1e-5, rtol=0)


def test_cpu_sw_batch_default_becomes_one_explicit_kept(monkeypatch, tmp_path, ph):
    """Spec §7 'CPU: fp32, sw batch 1': an sw batch left at its default becomes 1 on the CPU (said on stderr); a
    given one is kept."""
    from wisecli.runtime.io.volumes import write_volume

    seen = []
    monkeypatch.setattr(P, "run_predict", lambda items, out, w, opts, dev, **kw: seen.append(opts.sw_batch) or [])
    torch.manual_seed(0)
    w = tmp_path / "w.pt"
    save_checkpoint(w, method="segment-airway", arch="wingsnet", config={"in_channels": 1, "width": 0.25},
                    state_dict=WingsNet(width=0.25).state_dict())
    src = tmp_path / "a.nii.gz"
    write_volume(src, ph.image, spacing=ph.spacing)
    api.predict([src], tmp_path / "o", w, device="cpu")
    api.predict([src], tmp_path / "o", w, device="cpu", sw_batch=3)
    assert seen == [1, 3]


def test_cpu_overlap_default_becomes_a_quarter_said_on_stderr_gpu_and_explicit_kept(monkeypatch, tmp_path, ph):
    """Issue 13 point 7 (lead's decision): on the CPU an --overlap left at its default becomes 0.25 (a third of
    the windows: 100 instead of 294 on a 512×512×388 volume at roi 128) and stderr says so; `--overlap 0.5`
    given is kept, and the GPU keeps the default 0.5 without a word."""
    from wisecli.runtime.io.volumes import write_volume

    class Said:
        def __init__(self):
            self.lines = []

        def info(self, msg):
            self.lines.append(msg)

        def __getattr__(self, name):  # anything else a Sink does: nothing
            return lambda *a, **k: None

    import wisecli.runtime.device as D

    seen = []
    monkeypatch.setattr(P, "run_predict", lambda items, out, w, opts, dev, **kw: seen.append(opts.overlap) or [])
    monkeypatch.setattr(D, "device_name", str)  # the run record's name of a GPU this machine may not have
    w = tmp_path / "w.pt"
    save_checkpoint(w, method="segment-airway", arch="wingsnet", config={"in_channels": 1, "width": 0.25},
                    state_dict=WingsNet(width=0.25).state_dict())
    src = tmp_path / "a.nii.gz"
    write_volume(src, ph.image, spacing=ph.spacing)
    said = {}
    for name, kw in (("cpu", dict(device="cpu")), ("cpu 0.5", dict(device="cpu", overlap=0.5)),
                     ("gpu", dict(device=torch.device("cuda")))):
        s = Said()
        api.predict([src], tmp_path / "o", w, sink=s, **kw)
        said[name] = [x for x in s.lines if "overlap" in x]
    assert seen == [0.25, 0.5, 0.5] and api.DEFAULTS["predict"]["overlap"] == 0.5
    assert len(said["cpu"]) == 1 and "0.25" in said["cpu"][0] and "--overlap 0.5" in said["cpu"][0]
    assert said["cpu 0.5"] == [] and said["gpu"] == []
    assert P.window_count((388, 302, 406), 128, 0.25) == 48 and P.window_count((388, 302, 406), 128, 0.5) == 144


def test_segment_progress_line_counts_windows_and_time_left(ph, monkeypatch):
    """Off a terminal the progress line gives windows done/total and the time left."""
    import wisecli.runtime.progress as R

    monkeypatch.setattr(R, "LOG_EVERY_S", 0.0)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    opts = P.PredictOptions(roi=32, overlap=0.0, sw_batch=1, crop=False)
    seg = P.segment(Probe(), ph.image.astype(np.float32), EYE, ph.spacing, opts, torch.device("cpu"),
                    progress_label="a.nii.gz")
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("a.nii.gz: windows")]
    n = P.window_count(ph.image.shape, 32, 0.0)
    assert n == 8 and seg.windows == n and len(lines) == n
    assert lines[0].startswith(f"a.nii.gz: windows: 1/{n},") and "left" in lines[0]
    assert lines[-1].startswith(f"a.nii.gz: windows: {n}/{n},") and "elapsed" in lines[-1]


@pytest.mark.gpu
def test_gpu_window_pass_counts_windows_and_keeps_cpu_threads(ph):
    """On CUDA `cpu_compute` leaves the CPU settings alone, the window batch stays as given and the progress
    counts every window; the probabilities agree with the CPU path (fp32, TF32 off)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    m = WingsNet(width=0.25).eval()
    x = torch.rand(1, 1, 40, 40, 48)
    opts = P.PredictOptions(roi=32, overlap=0.5, sw_batch=4, amp=False)
    threads, done = torch.get_num_threads(), []
    cpu = P.window_pass(m, x, opts, torch.device("cpu"))
    gpu = P.window_pass(m.cuda(), x.cuda(), opts, torch.device("cuda"), advance=done.append)
    assert sum(done) == P.window_count(x.shape[2:], 32, 0.5) and max(done) == 4
    assert torch.get_num_threads() == threads
    assert (cpu - gpu.cpu()).abs().max() < 1e-4
