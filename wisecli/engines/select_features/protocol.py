"""The comparison protocol of spec §5, behind `evaluate` and `demo`: one fixed split, a ranking per
(method, seed) from FM (`train.train_selector`) or a peer (`peers.RANKERS`), a refit per k (`metrics.refit_logreg`,
or every refit as one stacked MLP, `refit.py`), accuracy curves and stability over seeds.

Choices where the spec is silent (all kept as options):
- `evaluate --skip-existing` also keeps each (method, seed) ranking in DIR/rankings.jsonl, so the stability
  of skipped cells can still be computed.
- `evaluate --shard I/N` splits the work units round-robin: one unit is a (method, seed) ranking with all its
  k refits (a ranking is never computed twice), plus the "all features" refit as one more unit. The union
  of the shards' records equals an unsharded run; each shard's table, curves and stability cover its own
  units only. Shards may share one `-o DIR` (each record is one appended line).
- The demo's gates are the spec's claims at the demo's size: FM's curve mean at least the random ranking's
  − 0.02 on every data set; on digits (full demo) FM ≥ 0.78 at k = 8 and ≥ 0.92 at k = 16 (§9); on the synthetic
  set FM's recall@8 of the informative columns ≥ 0.75 (§9).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from wisecli.cli.errors import InputError
from wisecli.cli.output import dumps
from wisecli.runtime.io.atomic import append_line

from . import selection as sel
from .config import FMConfig
from .data import bundled, check_finite, impute, load_dataset, split_arrays, split_dataset
from .train import Scaler, fit_scaled, train_selector

METHOD = "select-features"


def evaluate_arrays(x_train, y_train, x_test, y_test, *, n_classes: int, feature_names: list[str],
                    methods: list[str], ks: list[int] | None, seeds: list[int], cfg: FMConfig, device,
                    selections: list[dict] | None = None, out_dir: Path | None = None, skip_existing=False,
                    refit: str = "logreg", record: Callable[[dict], None] | None = None, warn=None,
                    shard: tuple[int, int] | None = None) -> dict:
    """The §5 protocol on a fixed split: rankings per (method, seed), a refit per k (`logreg`, or every
    refit as one stacked `mlp`), curves, stability. `shard` (I, N) keeps units I, I+N, ... of the
    (method, seed) cells followed by the "all" refit."""
    d = x_train.shape[1]
    ks = sorted({min(int(k), d) for k in ks}) if ks else None
    from .metrics import default_k_grid, refit_logreg
    from .peers import RANKERS

    ks = ks or default_k_grid(d)
    for k in ks:
        sel.check_k(k, d)
    done: dict = {}
    saved_rankings: dict = {}
    if out_dir is not None:
        out_dir = Path(out_dir)
        if skip_existing:
            for line in _read_jsonl(out_dir / "evaluate.jsonl"):
                if line.get("status", "ok") == "ok":
                    done[(line["method"], line.get("seed"), line.get("k"))] = line
            for line in _read_jsonl(out_dir / "rankings.jsonl"):
                saved_rankings[(line["method"], line["seed"])] = np.array(line["ranking"])
    scaler = Scaler.fit(x_train)
    xs_train = scaler.transform(x_train)
    records, rankings, errors = [], {}, []

    def emit(rec):
        rec = {"n_train": int(len(y_train)), "n_test": int(len(y_test)), **rec}
        if out_dir is not None:
            append_line(out_dir / "evaluate.jsonl", dumps(rec))
        records.append(rec)
        if record:
            record(rec)

    cells: list[tuple[str, int, Callable]] = []
    if selections:
        name_to_idx = {n: j for j, n in enumerate(feature_names)}
        for i, doc in enumerate(selections):
            missing = [f["name"] for f in doc["features"] if f["name"] not in name_to_idx]
            if missing:
                raise InputError(f"selection {i + 1}: column(s) missing from DATA: {', '.join(missing[:10])}",
                                 hint="score a selection on the table it was trained on")
            ranking = np.array([name_to_idx[f["name"]] for f in doc["features"]])
            cells.append(("fm", int(doc.get("seed", i)), lambda s, r=ranking: (r, 0.0)))
    elif "fm" in methods:
        def fm_rank(s):
            from dataclasses import replace

            res = train_selector(xs_train, y_train, n_classes, replace(cfg, seed=s), device, warn=warn)
            return res.ranking, res.seconds
        for s in seeds:
            cells.append(("fm", s, fm_rank))
    for m in methods:
        if m in RANKERS:
            for s in seeds:
                def base_rank(s, f=RANKERS[m]):
                    t0 = time.perf_counter()
                    r = f(xs_train, y_train, s)
                    return r, time.perf_counter() - t0
                cells.append((m, s, base_rank))
    do_all = "all" in methods
    if shard is not None:
        from wisecli.cli.inputs import apply_shard

        units = apply_shard(cells + ([("all", None, None)] if do_all else []), shard)
        cells = [u for u in units if u[0] != "all" or u[2] is not None]
        do_all = len(units) > len(cells)

    ranked = []  # (method, seed, ranking, select_seconds) of the cells that still need refits
    for method, seed, fn in cells:
        todo = [k for k in ks if (method, seed, k) not in done]
        if not todo and (method, seed) in saved_rankings:
            rankings.setdefault(method, []).append(saved_rankings[(method, seed)])
            records.extend(done[(method, seed, k)] for k in ks)
            continue
        try:
            ranking, secs = fn(seed)
        except Exception as exc:  # a crashing selector is recorded; the others go on (spec §8)
            msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            errors.append({"method": method, "seed": seed, "error": msg})
            emit({"method": method, "seed": seed, "k": None, "status": "error", "error": msg})
            if warn:
                warn(f"{method} (seed {seed}) failed: {msg}")
            continue
        ranking = np.asarray(ranking)
        rankings.setdefault(method, []).append(ranking)
        if out_dir is not None:
            append_line(out_dir / "rankings.jsonl", dumps({"method": method, "seed": seed, "ranking": ranking}))
        ranked.append((method, seed, ranking, secs))
    jobs = [(m, s, k, r, secs) for m, s, r, secs in ranked for k in ks if (m, s, k) not in done]
    records.extend(done[(m, s, k)] for m, s, r, _ in ranked for k in ks if (m, s, k) in done)
    if refit == "mlp" and jobs:
        from .refit import refit_mlp_stacked

        results = refit_mlp_stacked(x_train, y_train, x_test, y_test, [r[:k] for _, _, k, r, _ in jobs],
                                    n_classes=n_classes, device=device,
                                    init_seeds=[10007 * s + k for _, s, k, _, _ in jobs])
    else:
        results = [refit_logreg(x_train, y_train, x_test, y_test, r[:k]) for _, _, k, r, _ in jobs]
    for (method, seed, k, _, secs), r in zip(jobs, results):
        emit({"method": method, "seed": seed, "k": k, "accuracy": r["accuracy"],
              "balanced_accuracy": r["balanced_accuracy"], "select_seconds": secs,
              "refit_seconds": r["refit_seconds"], "status": "ok"})
    all_acc = None
    if do_all:
        if ("all", None, d) in done:
            all_acc = done[("all", None, d)]["accuracy"]
            records.append(done[("all", None, d)])
        else:
            if refit == "mlp":
                from .refit import refit_mlp_stacked

                r = refit_mlp_stacked(x_train, y_train, x_test, y_test, [np.arange(d)], n_classes=n_classes,
                                      device=device)[0]
            else:
                r = refit_logreg(x_train, y_train, x_test, y_test, np.arange(d))
            all_acc = r["accuracy"]
            emit({"method": "all", "seed": None, "k": d, "accuracy": r["accuracy"],
                  "balanced_accuracy": r["balanced_accuracy"], "select_seconds": 0.0,
                  "refit_seconds": r["refit_seconds"], "status": "ok"})
    return summarise(records, rankings, ks, d, all_acc, errors)


def summarise(records, rankings, ks, d, all_acc, errors) -> dict:
    from .metrics import stability

    curves: dict = {}
    for rec in records:
        if rec.get("status", "ok") != "ok" or rec["method"] == "all":
            continue
        curves.setdefault(rec["method"], {}).setdefault(rec["k"], []).append(rec["accuracy"])
    curves = {m: {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in sorted(c.items())}
              for m, c in curves.items()}
    stab = {m: {k: stability(rs, k, d) for k in ks} for m, rs in rankings.items()}
    best = {}
    for k in ks:
        cands = [(c[k]["mean"], m) for m, c in curves.items() if m != "fm" and k in c]
        if cands:
            acc, m = max(cands)
            best[k] = {"method": m, "accuracy": acc}
    return {"ks": ks, "curves": curves, "curve_mean": {m: float(np.mean([v["mean"] for v in c.values()]))
                                                      for m, c in curves.items()},
            "stability": stab, "all_features_accuracy": all_acc,
            "rankings": {m: [np.asarray(r).tolist() for r in rs] for m, rs in rankings.items()}, "best_baseline_per_k": best, "errors": errors,
            "n_features": d}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interrupt
    return out


def evaluate_files(data, target: str, *, test=None, test_fraction=0.2, split_seed=0, selections=None,
                   methods=("fm",), ks=None, seeds=(0,), cfg: FMConfig, device, load_opts: dict, impute_how="none",
                   out_dir: Path | None = None, skip_existing=False, refit="logreg", record=None, plot=None,
                   mask_image: str | None = None, shard: tuple[int, int] | None = None, sink=None) -> dict:
    """Load DATA (and --test), split once, run the protocol (or shard I/N of it); the summary, plus the
    curve plot and the mask image when asked. Every input is read and checked before any work."""
    from wisecli.runtime.rundir import made_dir

    from .plots import mask_image as draw_mask, mask_shape, plot_curves

    warn = sink.warn if sink else None
    ds = load_dataset(data, target, warn=warn, **load_opts)
    check_finite(ds, impute_how)
    tds = None
    if test is not None:
        tds = load_dataset(test, target, **load_opts)
        check_finite(tds, impute_how)
    shape = mask_shape(mask_image, ds.x.shape[1]) if mask_image is not None else None
    docs = [sel.load(p) for p in selections] if selections else None
    x_tr, y_tr, x_te, y_te = split_dataset(ds, tds, test_fraction, split_seed)
    x_tr, x_te = impute(x_tr, x_te, how=impute_how)

    def run() -> dict:
        return evaluate_arrays(x_tr, y_tr, x_te, y_te, n_classes=ds.n_classes, feature_names=ds.feature_names,
                               methods=list(methods), ks=ks, seeds=list(seeds), cfg=cfg, device=device,
                               selections=docs, out_dir=out_dir, skip_existing=skip_existing, refit=refit,
                               record=record, warn=warn, shard=shard)

    if out_dir is not None:
        with made_dir(out_dir):
            summary = run()
    else:
        summary = run()
    summary["refit"] = refit
    if plot is not None:
        plot_curves(summary, plot, title=Path(str(data)).name, refit=refit)
    if shape is not None:
        res, _ = fit_scaled(x_tr, y_tr, ds.n_classes, cfg, device)
        path = Path(plot).with_name(Path(plot).stem + "_mask.png") if plot else Path(out_dir or ".") / "mask.png"
        draw_mask(res.scores, shape, path)
    return summary


DEMO_PLAN = {  # data set -> (baselines, k grid); rfe-lr and l1 only where they are fast; k = d is the "all" column
    "breast-cancer": (["mi", "rfe-lr", "l1", "random", "all"], [1, 2, 5, 10]),
    "digits": (["mi", "random", "all"], [4, 8, 16, 32]),
    "synthetic": (["mi", "l1", "random", "all"], [4, 8, 16]),
}


def run_demo(names: list[str], *, quick: bool, device, epochs: int, seeds: list[int], plot: Path | None = None):
    """FM against the baselines on bundled data (spec §3); a `DemoResult` whose gates are the spec's claims
    (module docstring) and whose details hold the per-k rows of the accuracy table."""
    from wisecli.runtime.results import DemoResult, Gate

    from .metrics import recall_at_k
    from .plots import plot_curves

    t0 = time.perf_counter()
    cfg = FMConfig(epochs=epochs)
    rows, gates, headline = [], [], {}
    for name in names:
        x, y, fnames, label, informative = bundled(name)
        methods, ks = DEMO_PLAN.get(name, (["mi", "random", "all"], [10, 25, 50, 100]))
        if quick:
            methods, ks = ["mi", "random", "all"], [2, 5, 10]
        x_tr, y_tr, x_te, y_te = split_arrays(x, y)
        summary = evaluate_arrays(x_tr, y_tr, x_te, y_te, n_classes=int(y.max()) + 1, feature_names=fnames,
                                  methods=["fm"] + methods, ks=ks, seeds=seeds, cfg=cfg, device=device)
        curves, means = summary["curves"], summary["curve_mean"]
        for k in summary["ks"]:
            row = {"dataset": label, "k": k}
            for m, c in curves.items():
                row[m] = c[k]["mean"] if k in c else None
            row["all"] = summary["all_features_accuracy"]
            rows.append(row)
        headline[f"{name}_fm_curve_mean"] = means.get("fm")
        gates.append(Gate(f"{name}: fm curve mean - random's", means.get("fm", float("nan"))
                          - means.get("random", 0.0), ">=", -0.02))
        if name == "digits" and not quick:  # spec §9's digits reproduction (3 seeds, logreg refit, split seed 0)
            gates += [Gate(f"digits: fm accuracy at k={k}", curves["fm"][k]["mean"], ">=", need)
                      for k, need in ((8, 0.78), (16, 0.92)) if k in curves.get("fm", {})]
            gates += [Gate(f"digits: fm accuracy - mi's at k={k}", curves["fm"][k]["mean"] - curves["mi"][k]["mean"],
                           ">=", 0.0) for k in (8, 16) if k in curves.get("fm", {}) and k in curves.get("mi", {})]
            jac = summary["stability"].get("fm", {}).get(16, {}).get("jaccard_mean")
            if jac is not None:
                gates.append(Gate("digits: fm Jaccard@16 over seeds", jac, ">=", 0.5))
        if informative is not None:
            n_inf = len(informative)
            fm_r = float(np.mean([recall_at_k(r, informative, n_inf) for r in summary["rankings"].get("fm", [])]
                                 or [float("nan")]))
            headline[f"{name}_fm_recall@{n_inf}"] = fm_r
            gates.append(Gate(f"{name}: fm recall@{n_inf} of the informative columns", fm_r, ">=", 0.75))
            if summary["rankings"].get("mi"):  # spec §9's recovery: FM at least MI's recall (3 seeds each)
                mi_r = float(np.mean([recall_at_k(r, informative, n_inf) for r in summary["rankings"]["mi"]]))
                gates.append(Gate(f"{name}: fm recall@{n_inf} - mi's", fm_r - mi_r, ">=", 0.0))
        if plot is not None:
            p = Path(plot) if len(names) == 1 else Path(plot).with_name(f"{Path(plot).stem}_{name}.png")
            plot_curves(summary, p, title=label)
    return DemoResult(method=METHOD, gates=gates, headline=headline,
                      details={"seconds": time.perf_counter() - t0, "device": str(device), "rows": rows,
                               "datasets": names, "epochs": cfg.epochs, "seeds": seeds})
