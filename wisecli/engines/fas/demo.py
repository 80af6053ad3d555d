"""`wise fas demo`: simulated attacks on scikit-image faces → tiny CDCN → predict → evaluate (spec §3, §9).

Tiny CDCN [reconstructed]: width ×0.125, 64² input, 16² map, scales 16,8,4,2,1, batch 16, Adam at 3e-3,
`--detector none` (the LFW faces are tight crops). Data: `simulate` of scikit-image's faces, seed 0: LFW 0–69
train, 70–84 dev (the EER threshold), 85–99 test (held out: 15 live faces, 15 print, 15 replay), 60 astronaut
crops (cross, reported, not gated).

Quick (`--quick`, the `wise demo` row): the shipped demo weights (`demo_weights.npz` + `.json`, DESIGN.md's
exception, issue 13 point 9), pyramid and binary-mask models trained by this module's `train` call from `RECIPE`
(seeds 0, 1, 2 each). Training them takes about a minute of CPU, over the 15 s a quick demo may take, so the
quick demo scores the shipped six on the held-out test faces (threshold: each model's dev EER threshold) and
gates the paper's claim in direction: pyramid's mean test ACER over the three seeds is below the binary-mask
baseline's, and pyramid's is far from chance (`GATE_QUICK`, chosen from the measured values written beside it:
0.111 against 0.133, a small margin of two test faces). `python -m wisecli.engines.fas.api` regenerates the
files (engine modules never import api, so the entry point is there); the slow test `tests/fas/test_fas_demo.py`
retrains one of them (pyramid, seed 0; the whole recipe is over the suite's budget) and checks its test ACER.

Full (no `--quick`): trains pyramid and binary-mask (`full` adds binary and template-depth depth-map) for 2 seeds ×
13 epochs and holds the §9 claim, pyramid and binary-mask reach a mean test ACER ≤ 10 % (`GATE_ACER`); ~130 s on
2 CPU cores, so its test runs on the GPU. Everything is written into a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

METHOD = "fas"
DEMO_TITLE = "SIMULATED ATTACKS ON SCIKIT-IMAGE FACES: NOT A BENCHMARK"
DEMO_WIDTH = 0.125  # channels 8/16/24/16: about 2 CPU-seconds per epoch of 210 faces at 64² on one core
DEMO_LR = 3e-3      # tiny data and few steps: 30× the paper's rate reaches dev ACER 0 within ~10 epochs
GATE_ACER = 0.10    # spec §9 (full demo)

RECIPE = {"data": "fas simulate (scikit-image lfw_subset + astronaut)", "data_seed": 0, "size": 64,
          "modes": ["pyramid", "binary-mask"], "seeds": [0, 1, 2], "epochs": 4, "width": DEMO_WIDTH,
          "input_size": 64, "map_size": 16, "pyramid_scales": "16,8,4,2,1", "batch_size": 16, "lr": DEMO_LR,
          "detector": "none", "threads": 1}
WEIGHTS = Path(__file__).with_name("demo_weights.npz")
TRAINED_ON = ("simulated print/replay attacks of scikit-image lfw_subset faces 0-84 (train 0-69, dev 70-84; "
              "fas simulate seed 0), tiny CDCN, pyramid and binary-mask, seeds 0, 1, 2, 4 epochs each")
# Quick gates, on the shipped models' mean test ACER over the recipe's 3 seeds: pyramid minus binary-mask below 0
# (pyramid beats the binary-mask baseline: the paper's claim in direction) and pyramid below 0.2 (chance is 0.5).
# Measured (RECIPE, this machine): pyramid 0.100 / 0.133 / 0.100 (mean 0.111), binary-mask 0.100 / 0.167 / 0.133
# (mean 0.133), so the gap is -0.022: one test presentation per seed on two of the three seeds (a live face moves a
# model's ACER by 1/30, so the gap is two such faces); test AUC is level (0.941 against 0.948). A small, honest
# margin: the claim holds in direction on this data, it is not a large effect at this size.
GATE_QUICK = {"acer_gap_below": 0.0, "pyramid_acer_max": 0.2}


def _cfg(mode: str, seed: int, epochs: int) -> dict:
    return {"layout": "manifest", "supervision": mode, "backbone": "cdcn", "width": DEMO_WIDTH, "input_size": 64,
            "map_size": 16, "pyramid_scales": "16,8,4,2,1", "detector": "none", "epochs": epochs, "batch_size": 16,
            "lr": DEMO_LR, "lr_step": 10 ** 6, "frames": 1, "seed": seed, "depth_fallback": "template", "workers": 1}


def _simulated(tmp: Path, quick_subset: bool = False):
    from wisecli.engines.fas.data import load_dataset
    from wisecli.engines.fas.synthetic import simulate

    sim = simulate(None, tmp / "sim", size=RECIPE["size"], seed=RECIPE["data_seed"])
    splits = load_dataset(Path(sim["manifest"]), "manifest")
    if quick_subset:
        splits["train"] = splits["train"][::3]
        splits["dev"] = splits["dev"][::2]
    sub = tmp / "manifest_used.csv"
    _write_manifest(sub, splits)
    return splits, sub


def _evaluate(splits, ckpt: Path, dev_recs, dev) -> dict:
    from wisecli.engines.fas import metrics as M
    from wisecli.engines.fas.predict import predict_samples

    row = {}
    for split in ("test", "cross"):
        recs = list(predict_samples(splits[split], ckpt, device=dev, frames=1, detector="none", with_labels=True,
                                    batch_size=128, workers=1))
        ev = M.evaluate_scores(recs, dev_recs)
        for k in ("acer", "apcer", "bpcer", "auc"):
            row[f"{split}_{k}"] = ev[k]
    return row


def recipe_models(train_defaults: dict, device=None, keys=None) -> dict:
    """{"<mode>-s<seed>": (state dict, config)} trained from `RECIPE` with the method's own `train` (about 10 CPU-s
    per model on one thread), on the simulated faces of `RECIPE["data_seed"]`; `keys` picks some of them (each
    model is trained on its own, so a subset reproduces those entries of the full recipe)."""
    import torch

    from wisecli.engines.fas.train import train
    from wisecli.runtime.device import one_cpu_thread

    dev = torch.device("cpu") if device is None else torch.device(device)
    out = {}
    with tempfile.TemporaryDirectory(prefix="wise_fas_recipe_") as tmp, one_cpu_thread(dev):
        tmp = Path(tmp)
        _, sub = _simulated(tmp)
        for mode in RECIPE["modes"]:
            for seed in RECIPE["seeds"]:
                if keys is not None and f"{mode}-s{seed}" not in keys:
                    continue
                res = train(sub, tmp / f"run_{mode}_{seed}", _cfg(mode, seed, RECIPE["epochs"]),
                            defaults=train_defaults, device=dev, amp=True, progress=False)
                from wisecli.runtime.checkpoints import load_checkpoint

                best = load_checkpoint(tmp / f"run_{mode}_{seed}" / "checkpoints" / "best.pt", method=METHOD)
                out[f"{mode}-s{seed}"] = (best["state_dict"], res["config"])
    return out


def write_demo_weights(train_defaults: dict, path: Path = WEIGHTS) -> Path:
    """Train the demo models from `RECIPE` and write the shipped files (`runtime.demo_weights`);
    `python -m wisecli.engines.fas.api` runs it with the `train` defaults (engine modules never import api)."""
    from wisecli.runtime import demo_weights

    models = recipe_models(train_defaults)
    return demo_weights.save(path, {k: sd for k, (sd, _) in models.items()},
                             {"recipe": RECIPE, "trained_on": TRAINED_ON,
                              "configs": {k: cfg for k, (_, cfg) in models.items()}})


def load_demo_models(path: Path = WEIGHTS) -> dict | None:
    """{"<mode>-s<seed>": (state dict, config)} from the shipped files, or None when they are missing."""
    from wisecli.runtime import demo_weights

    shipped = demo_weights.load(path)
    if shipped is None:
        return None
    meta, groups = shipped
    try:
        return {k: (groups[k], cfg) for k, cfg in meta["configs"].items()}
    except KeyError:
        return None


def _score_models(models: dict, splits, tmp: Path, dev) -> list[dict]:
    """Rows (mode, seed, test/cross ACER, APCER, BPCER, AUC) of trained models given as state dicts: each is
    written as a `wisecli/1` checkpoint and scored by `predict` on dev (its EER threshold), test and cross."""
    from wisecli.engines.fas.model import build_model, check_config
    from wisecli.engines.fas.predict import predict_samples
    from wisecli.runtime.checkpoints import save_checkpoint
    from wisecli.runtime.demo_weights import load_into

    rows = []
    for key, (state, cfg) in models.items():
        cfg = check_config(dict(cfg))
        model = load_into(build_model(cfg), state)  # strict: a stale file fails here, not silently
        ckpt = save_checkpoint(tmp / f"{key}.pt", method=METHOD, arch="cdcn", config=cfg,
                               state_dict=model.state_dict())
        dev_recs = list(predict_samples(splits["dev"], ckpt, device=dev, frames=1, detector="none",
                                        with_labels=True, batch_size=128, workers=1))
        mode, _, seed = key.rpartition("-s")
        rows.append({"mode": mode, "seed": int(seed), "best_epoch": None, **_evaluate(splits, ckpt, dev_recs, dev)})
    return rows


def _means(rows: list[dict], modes) -> dict:
    mean = {}
    for mode in modes:
        rs = [r for r in rows if r["mode"] == mode]
        mean[mode] = {k: float(np.mean([r[k] for r in rs])) for k in ("test_acer", "cross_acer", "test_auc")}
    return mean


def quick_gates(mean: dict):
    """The quick demo's gates on the shipped models' means: pyramid's test ACER minus binary-mask's below 0
    (pyramid beats the baseline: the paper's claim in direction) and pyramid's test ACER far from chance (0.5)."""
    from wisecli.runtime.results import Gate

    p, b = mean["pyramid"]["test_acer"], mean["binary-mask"]["test_acer"]
    n = len(RECIPE["seeds"])
    return [Gate(f"pyramid - binary-mask mean test ACER ({n} seeds)", p - b, "<", GATE_QUICK["acer_gap_below"]),
            Gate(f"pyramid mean test ACER ({n} seeds)", p, "<=", GATE_QUICK["pyramid_acer_max"])]


def demo(train_defaults: dict, *, quick: bool = False, device="cpu", full: bool = False, seeds: int | None = None,
         epochs: int | None = None, sink=None, progress: bool = False):
    """Run the demo (quick: the shipped pyramid and binary-mask models; otherwise train pyramid and binary-mask,
    `full` adds binary and template-depth depth-map) and return a `runtime.results.DemoResult` whose details hold
    the table rows, the per-mode means, the title and the run time."""
    from wisecli.engines.fas.predict import read_scores
    from wisecli.engines.fas.train import train
    from wisecli.runtime.device import as_device, one_cpu_thread
    from wisecli.runtime.results import DemoResult, Gate

    t0 = time.perf_counter()
    dev = as_device(device, sink=sink)
    modes = ["pyramid", "binary-mask"] + (["binary", "depth-map"] if full and not quick else [])
    n_seeds = len(RECIPE["seeds"]) if quick else seeds or 2
    n_epochs = RECIPE["epochs"] if quick else epochs or 13
    rows = []
    with tempfile.TemporaryDirectory(prefix="wise_fas_demo_") as tmp, one_cpu_thread(dev, enabled=quick):
        tmp = Path(tmp)
        splits, sub = _simulated(tmp)
        if quick:
            shipped = load_demo_models()
            if shipped is None:
                if sink is not None:
                    sink.info("the shipped demo weights are missing: training them from the recipe (about a minute)")
                shipped = recipe_models(train_defaults, dev)
            rows = _score_models(shipped, splits, tmp, dev)
        else:
            for mode in modes:
                for seed in range(n_seeds):
                    run = tmp / f"run_{mode}_{seed}"
                    res = train(sub, run, _cfg(mode, seed, n_epochs), defaults=train_defaults, device=dev, amp=True,
                                progress=progress)
                    dev_recs = read_scores(run / "dev_scores.jsonl")
                    rows.append({"mode": mode, "seed": seed, "best_epoch": res["best_epoch"],
                                 **_evaluate(splits, run / "checkpoints" / "best.pt", dev_recs, dev)})
    mean = _means(rows, modes)
    if quick:
        gates = quick_gates(mean)
        rule = (f"shipped models: pyramid mean test ACER - binary-mask's < {GATE_QUICK['acer_gap_below']} and "
                f"pyramid's <= {GATE_QUICK['pyramid_acer_max']}")
    else:
        gates = [Gate(f"{m} mean test ACER ({n_seeds} seeds)", mean[m]["test_acer"], "<=", GATE_ACER)
                 for m in ("pyramid", "binary-mask")]
        rule = "pyramid and binary-mask mean test ACER <= 10 %"
    headline = {f"{m}_test_acer": mean[m]["test_acer"] for m in modes}
    headline.update({f"{m}_cross_acer": mean[m]["cross_acer"] for m in modes})
    details = {"title": DEMO_TITLE, "seconds": time.perf_counter() - t0, "rows": rows, "mean": mean,
               "simulated": True, "epochs": n_epochs, "seeds": n_seeds, "device": str(dev),
               "gate": {"rule": rule, "passed": all(g.ok for g in gates)},
               "note": "simulated print/replay attacks on scikit-image LFW faces (test: LFW 85-99) and astronaut "
                       "crops (cross); not a benchmark"}
    if quick:
        from wisecli.runtime import demo_weights

        details["weights"] = demo_weights.describe(WEIGHTS)
    return DemoResult(method=METHOD, gates=gates, headline=headline, details=details)


def _write_manifest(path: Path, splits: dict) -> None:
    import csv
    import io

    from wisecli.runtime.io.atomic import write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "attack_type", "subject", "split", "depth"])
    for split, items in splits.items():
        for s in items:
            w.writerow([s.path, s.label, s.attack_type or "", s.subject, split, s.depth or ""])
    write_text(path, buf.getvalue())
