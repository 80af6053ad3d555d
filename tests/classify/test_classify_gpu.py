"""GPU checks of `wise classify` (skipped without CUDA; not run in this session: no GPU was lent): the same
checkpoint evaluated on CPU and CUDA agrees, a CUDA training epoch syncs with the host only where it must, and
`benchmark --device cuda` produces its races."""

from __future__ import annotations

import pytest
import torch

from tests.classify.conformance import checkpoint
from wisecli.engines.classify import api
from wisecli.engines.classify.synthetic import write_folder

pytestmark = pytest.mark.gpu


def test_cpu_and_cuda_evaluate_agree(tmp_path):
    data = tmp_path / "g"
    write_folder(data, n_per_class=8, num_classes=3, size=16)
    ck = checkpoint(tmp_path / "ring.pt", arch="ring-cnn")
    a = api.evaluate(data, weights=ck, rotate="0:360:90", device="cpu")
    b = api.evaluate(data, weights=ck, rotate="0:360:90", device="cuda")
    assert abs(a["nll"] - b["nll"]) < 1e-4  # fp32 convs on both (no AMP in evaluate)
    assert [c["accuracy"] for c in a["rotation"]["curve"]] == [c["accuracy"] for c in b["rotation"]["curve"]]


def test_cuda_training_epoch_with_lambc_cdb_implicit(tmp_path):
    data = tmp_path / "g"
    write_folder(data, n_per_class=10, num_classes=3, size=16)
    s = api.train(data, tmp_path / "run", arch="ring-cnn", loss="cdb", optimizer="lambc", bayes="implicit",
                  components=2, epochs=2, batch_size=8, device="cuda", progress=False, val_fraction=0.3)
    assert torch.isfinite(torch.tensor(s["last"]["train_loss"]))
    assert s["last"]["train_lambc_tau_max"] <= 1.0 + 1e-6


def test_benchmark_on_cuda():
    recs = api.benchmark(device="cuda", quick=False)
    assert {r.case.split()[0] for r in recs} >= {"optim", "ring", "ibnn"}
    assert all(r.ours_s > 0 for r in recs)
