"""Training: run folder, resume, sampler invariants and the invalid-pairs contract (spec §9 Train, Sampler)."""

import json

import numpy as np
import pytest
import torch
from conftest import run_wise

from wisecli.engines.segment_airway.data import ArrayVolume as _ArrayVolume
from wisecli.engines.segment_airway.data import PatchSampler, augment, build_case
from wisecli.engines.segment_airway.synthetic import make_phantom
from wisecli.runtime.io.volumes import write_volume

# one torch and one BLAS thread per module (conftest): a 2-core machine's second core runs the recipe retrain
# beside this folder (test_airway_demo.py), and two spinning OpenMP threads here cost ~28 CPU-s more [measured]
pytestmark = pytest.mark.usefixtures("one_thread_module")

SMALL = dict(size=(48, 40, 40), spacing=(4.0, 4.0, 4.0))
TINY_RUN = ["--set", "data.crop=32", "--set", "data.patch=40", "--set", "model.width=0.25", "--set",
            "val.roi=32", "--set", "val.sw_batch=2", "--set", "data.workers=0", "--batch-size", "1",
            "--patches-per-case", "2", "--device", "cpu", "--no-progress", "--optimizer", "adamw"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("d")
    for i in range(2):
        ph = make_phantom("tiny", seed=i, **SMALL)
        write_volume(root / "images" / f"c{i}.nii.gz", ph.image, spacing=ph.spacing, origin=ph.origin)
        write_volume(root / "labels" / f"c{i}.nii.gz", ph.label, spacing=ph.spacing, origin=ph.origin)
    return root


def test_train_two_cpu_steps_then_resume(tmp_path, data):
    run = tmp_path / "run"
    code, out, err = run_wise("segment-airway", "train", str(data), "-o", str(run), "--epochs1", "1", "--epochs2",
                              "0", *TINY_RUN, "--json")
    assert code == 0, err
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["train_stage"] == 1 and lines[0]["train_alpha"] == pytest.approx(0.1)
    for f in ("config.json", "checkpoints/last.pt", "checkpoints/best.pt", "checkpoints/stage1.pt"):
        assert (run / f).is_file(), f
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ck["method"] == "segment-airway" and ck["arch"] == "wingsnet" and ck["stage"] == 1
    assert ck["config"]["width"] == 0.25 and len(ck["train_spacing_median"]) == 3
    # existing run folder is refused without --resume
    code, out, err = run_wise("segment-airway", "train", str(data), "-o", str(run), *TINY_RUN)
    assert code == 2 and out == "" and "--resume" in err
    # resume continues into stage 2 (α 0.2)
    code, out, err = run_wise("segment-airway", "train", str(data), "-o", str(run), "--epochs1", "1", "--epochs2",
                              "1", *TINY_RUN, "--resume")
    assert code == 0, err
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert lines[1]["train_stage"] == 2 and lines[1]["train_alpha"] == pytest.approx(0.2)
    # the run's checkpoint describes itself and drives predict
    code, out, err = run_wise("segment-airway", "info", "--weights", str(run / "checkpoints" / "best.pt"), "--json")
    assert code == 0, err
    ck = json.loads(out)["checkpoint"]
    assert ck["arch"] == "wingsnet" and ck["config"]["width"] == 0.25 and ck["params"] > 0
    code, out, err = run_wise("segment-airway", "predict", str(data / "images" / "c0.nii.gz"), "-o",
                              str(tmp_path / "pred"), "--weights", str(run), "--roi", "48", "--overlap", "0",
                              "--device", "cpu", "--no-crop", "--no-tree", "--jsonl")  # one window, no parse
    assert code == 0, err
    assert json.loads(out)["status"] == "ok"


def test_invalid_pairs_all_listed_exit_2(tmp_path, data):
    bad = tmp_path / "bad"
    ph = make_phantom("tiny", seed=3, **SMALL)
    write_volume(bad / "images" / "a.nii.gz", ph.image, spacing=ph.spacing)
    write_volume(bad / "labels" / "a.nii.gz", ph.label[:, :, :-1], spacing=ph.spacing)       # size
    write_volume(bad / "images" / "b.nii.gz", ph.image, spacing=ph.spacing)
    write_volume(bad / "labels" / "b.nii.gz", ph.label, spacing=(1.0, 1.0, 1.0))              # spacing
    write_volume(bad / "images" / "c.nii.gz", ph.image, spacing=ph.spacing)                   # no label
    code, out, err = run_wise("segment-airway", "train", str(bad), "-o", str(tmp_path / "r"), *TINY_RUN)
    assert code == 2 and out == ""
    assert "c.nii.gz" in err and "no label" in err
    # with the unmatched image removed, the two geometry problems are listed together
    (bad / "images" / "c.nii.gz").unlink()
    code, out, err = run_wise("segment-airway", "train", str(bad), "-o", str(tmp_path / "r"), *TINY_RUN)
    assert code == 2 and "a.nii.gz" in err and "b.nii.gz" in err and "2 invalid" in err
    assert not (tmp_path / "r").exists()


def test_unknown_set_key_suggests(tmp_path, data):
    code, out, err = run_wise("segment-airway", "train", str(data), "-o", str(tmp_path / "r"), "--set",
                              "schedule.epoch1=3")
    assert code == 2 and out == "" and "schedule.epochs1" in err


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ph = make_phantom("tiny", seed=0)
    v = _ArrayVolume(ph.image, ph.spacing, ph.origin, None)
    lv = _ArrayVolume(ph.label, ph.spacing, ph.origin, None)
    return build_case("c", v, lv, tmp_path_factory.mktemp("cache"))


def test_sampler_hard_crops_hold_target_and_draws_bounded(case):
    s = PatchSampler([case], patch=32, patches_per_case=8, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        st, target = s.hard_start(rng, case)
        assert np.all((target >= st) & (target < st + 32))
    _, lab, _ = case.arrays()
    draws = [s.small_airway_start(rng, case, lab)[1] for _ in range(40)]
    assert max(draws) <= s.max_draws + 1


def test_sampler_seed_reproduces_and_workers_differ(case):
    def patches(seed, worker=None):
        s = PatchSampler([case], patch=32, patches_per_case=4, seed=seed)
        s.set_epoch(1)
        return [p[0].numpy().copy() for p in s]

    a, b, c = patches(5), patches(5), patches(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # two workers split the jobs and draw from different streams
    loader = torch.utils.data.DataLoader(PatchSampler([case], patch=32, patches_per_case=8, seed=5),
                                         batch_size=None, num_workers=2)
    got = [p[0].numpy() for p in loader]
    assert len(got) == 8
    # no crop repeats across the two workers (the public loader's import-time seed repeated them)
    assert all(not np.array_equal(got[i], got[j]) for i in range(8) for j in range(i + 1, 8))


def test_augment_rotation_keeps_centre_and_binarises(case):
    img, lab, q = (torch.from_numpy(np.asarray(a[:40, :40, :40], np.float32))[None] for a in case.arrays())
    x, g, qq = augment(img, lab, q, crop=32, binarise=0.7)
    assert x.shape == (1, 1, 32, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(torch.unique(g).tolist()) <= {0.0, 1.0}
    assert torch.all(qq[g == 0] == 0)


def test_nearest_dist_mode_case_and_step(tmp_path):
    """`loss.dist_mode=nearest`: the case cache holds e (not q) and the step normalises it per patch."""
    from wisecli.engines.segment_airway.loss import nearest_e
    from wisecli.engines.segment_airway.train import make_step

    ph = make_phantom("tiny", seed=1)
    v = _ArrayVolume(ph.image, ph.spacing, ph.origin, None)
    lv = _ArrayVolume(ph.label, ph.spacing, ph.origin, None)
    c_sk = build_case("c", v, lv, tmp_path)
    c_ne = build_case("c", v, lv, tmp_path, "nearest")  # same folder: adds the second map
    assert c_ne.weight_file == "e_nearest.npy" and (tmp_path / "c" / "q.npy").is_file()
    _, lab, e = c_ne.arrays()
    sk = np.zeros(lab.shape, bool)
    sk[tuple(c_ne.skeleton.T)] = True
    assert np.array_equal(np.asarray(e), nearest_e(np.asarray(lab), sk, c_ne.spacing_zyx))
    assert float(np.asarray(c_sk.arrays()[2]).max()) <= 1.0 < float(np.asarray(e).max())
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x[:, :1], requires_grad=True)

    import wisecli.engines.segment_airway.loss as L

    real = L.group_loss

    def spy(enc, dec, g, q, **kw):
        seen["q"], seen["g"] = q, g
        return real(enc, dec, g, q, **kw)

    L.group_loss = spy
    try:
        s = PatchSampler([c_ne], patch=32, patches_per_case=2, seed=0)
        batch = tuple(torch.stack([x[k] for x in list(s)[:2]]) for k in range(3))
        step = make_step(crop=24, binarise=0.5, alpha=0.1, loss_name="gul", enc_weight=0.0, reduce="batch",
                         windows=((-1000.0, 400.0),), dist_mode="nearest")
        step(Probe(), batch)
    finally:
        L.group_loss = real
    q, g = seen["q"], seen["g"]
    for i in range(q.shape[0]):
        if g[i].any():  # each patch's largest q is exactly 1 (its own e_max)
            assert float(q[i][g[i] > 0].max()) == pytest.approx(1.0, abs=1e-6)
        assert torch.all(q[i][g[i] == 0] == 0)


def test_unknown_dist_mode_is_exit_2(tmp_path, data):
    code, out, err = run_wise("segment-airway", "train", str(data), "-o", str(tmp_path / "run"),
                              "--set", "loss.dist_mode=wall")
    assert code == 2 and out == "" and "loss.dist_mode" in err
