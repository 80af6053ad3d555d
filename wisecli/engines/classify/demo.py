"""`wise classify demo`: the four papers together on real data, end to end through the verbs' own code.

`ring-cnn` (width 1/4) trained with the CDB loss (`--tau dynamic`), LAMBC and an implicit BNN (K = 2) on
long-tailed (rho = 10) `builtin:digits` at 16x16 for 6 epochs (`quick`: 1 epoch on a stratified 300-image subset
of the training part, 100 test images, 2 samples per component); then `predict` on its test images and `evaluate` at 0/90/180/270° and under
`gaussian_noise` (severities 1-5). The data is written as an .npz into a temporary folder (removed afterwards) so
`train` reads it with the real reader.

Finding (recorded, not tuned away): on the 515 long-tailed training images the full demo reached only 0.28 test
accuracy in 6 epochs (0.60 with `bayes="none"`, 0.63 with SGD + CE and no iBNN; 0.20-0.22 with the iBNN under SGD
or CE too), while on the whole digits set ring-cnn learns faster WITH the iBNN (3 epochs: 0.85 implicit vs 0.67
none): the iBNN on this tiny long-tailed set is the slow part. The demo's gates are about invariance and
finiteness, which hold.

Gates (spec §3: `ok` = finite, exactly invariant): balanced accuracy, NLL under noise finite; the accuracy at 90°,
180° and 270° equals the upright accuracy within 0.5 pt and the logits' invariance error is at most 1e-3 (exact
`rot90` and the ring conv's max over orientations make it exact up to float rounding; the iBNN noise is shared
between the passes, see `predict.Runner.logp`). The invariance is the architecture's (the radial paper's claim):
an untrained ring-cnn has it too, a plain-cnn does not.

Finding (measured 2026-12-06, CPU): `ok` claims invariance and finiteness only, never accuracy. `--quick` (1
epoch, 256 long-tailed images) does not learn: balanced accuracy 0.10 = chance (one class for every image; batch
16/32 with lr 0.05/0.1 gave 0.09-0.10), which the headline `bal_acc` shows. A learning gate (e.g. balanced
accuracy >= 0.5) would make the quick demo exit 1, which the conformance suite's example check refuses; a quick
demo that shows the CDB/iBNN claims needs shipped demo weights (`runtime.demo_weights`) from a recipe that
learns (the 6-epoch preset does not either, above) and a retrain test that fits the 60 CPU-s budget.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def _subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = max(1, n // len(classes))
    out = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        out.append(rng.permutation(idx)[:per])
    return np.sort(np.concatenate(out))


def run_demo(quick: bool = False, device="auto", sink=None, *, train_defaults: dict, **overrides):
    """The demo (see the module docstring); `train_defaults` is `api.DEFAULTS["train"]`, `overrides` change the
    preset (epochs, subset, seed, ...). Returns a `DemoResult`."""
    from wisecli.runtime.device import as_device, device_name
    from wisecli.runtime.io.atomic import save_npz
    from wisecli.runtime.io.labeled import read_labeled
    from wisecli.runtime.results import DemoResult, Gate

    from .predict import evaluate_model, predict_inputs
    from .train import run_training

    t0 = time.perf_counter()
    device = as_device(device, sink=sink)
    preset = {"epochs": 1 if quick else 6, "subset": 300 if quick else None, "test_subset": 100 if quick else None,
              "samples": 2 if quick else None, "seed": 0, "batch_size": 64, "lr": 0.01, "optimizer": "lambc",
              "loss": "cdb", "bayes": "implicit", **overrides}
    seed = int(preset["seed"])
    lab = read_labeled("builtin:digits", image_size=16, seed=seed, imbalance=10.0)
    tr, te = np.asarray(lab.split["train"]), np.asarray(lab.split["test"])
    va = np.asarray(lab.split["val"]) if "val" in lab.split else None
    if preset["subset"]:
        tr = tr[_subset(lab.y[tr], int(preset["subset"]), seed)]
    if preset["test_subset"]:
        te = te[_subset(lab.y[te], int(preset["test_subset"]), seed)]
    cfg = {**train_defaults, "arch": "ring-cnn", "width": 0.25, "loss": preset["loss"], "tau": "dynamic",
           "optimizer": preset["optimizer"], "bayes": preset["bayes"], "components": 2, "epochs": int(preset["epochs"]),
           "batch_size": int(preset["batch_size"]), "lr": float(preset["lr"]), "threads": 1}
    for k in ("device", "amp", "seed"):
        cfg.pop(k, None)
    with tempfile.TemporaryDirectory(prefix="wise-classify-demo-") as tmp:
        tmp = Path(tmp)
        arrays = {"X": lab.X[tr], "y": lab.y[tr], "X_test": lab.X[te], "y_test": lab.y[te],
                  "classes": np.array(lab.classes)}
        if va is not None:
            arrays.update(X_val=lab.X[va], y_val=lab.y[va])
        save_npz(tmp / "digits_lt.npz", **arrays)
        run = tmp / "run"
        summary = run_training(tmp / "digits_lt.npz", run, cfg=cfg, config_record={}, device=device, amp=True,
                               seed=seed, progress=False, sink=None)
        best = run / "checkpoints" / "best.pt"
        img_dir = tmp / "images"
        from wisecli.runtime.io.images import write_image

        for i in range(min(5, len(te))):
            write_image(img_dir / f"test{i}.png", lab.X[te[i]].transpose(1, 2, 0) if lab.X.shape[1] == 3
                        else lab.X[te[i]][0])
        from .data import cpu_threads

        with cpu_threads(device, 1):
            pred = predict_inputs([img_dir], best, None, top_k=3, samples=preset["samples"], device=device)
            ev = evaluate_model(None, best, arrays=(lab.X[te], lab.y[te], lab.kind), rotate="0:360:90",
                                corrupt="gaussian_noise", samples=preset["samples"], device=device, seed=seed)
    curve = ev["rotation"]["curve"]
    up = curve[0]["accuracy"]
    spread = max(abs(c["accuracy"] - up) for c in curve[1:])
    inv = max(c["invariance_error"] for c in curve[1:])
    nll_noise = float(np.mean([r["nll"] for r in ev["corruptions"]]))
    gates = [Gate("balanced accuracy (finite)", ev["balanced_accuracy"], ">=", 0.0),
             Gate("NLL under gaussian noise (finite)", nll_noise, ">=", 0.0),
             Gate("|acc(90/180/270°) - acc(0°)|", spread, "<=", 0.005),
             Gate("invariance error of the logits", inv, "<=", 1e-3),
             Gate("predict records", float(sum(r["status"] == "ok" for r in pred["records"])), ">=", 1.0)]
    rows = [{"degrees": c["degrees"], "accuracy": c["accuracy"], "nll": c["nll"],
             "invariance_error": c["invariance_error"]} for c in curve]
    headline = {"bal_acc": ev["balanced_accuracy"], "rot90_acc": curve[1]["accuracy"], "nll_noise": nll_noise}
    return DemoResult("classify", gates, headline=headline,
                      details={"title": "wise classify demo: ring-cnn + CDB + LAMBC + iBNN (K=2), digits rho=10",
                               "quick": quick, "rows": rows, "epochs": int(preset["epochs"]),
                               "train_images": int(len(tr)), "test_images": int(len(te)),
                               "accuracy": ev["accuracy"], "nll": ev["nll"], "ece_top15": ev["ece_top15"],
                               "best_epoch": summary["best_epoch"], "device": device_name(device),
                               "seconds": time.perf_counter() - t0})
