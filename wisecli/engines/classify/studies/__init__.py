"""`wise classify study lambc|cdb|radial|ibnn`: one paper's experiment (spec §5), rerun with the `train` and
`evaluate` code of this engine, reported as mean ± std over seeds beside the paper's anchors (spec §6).

Every run trains into `OUT/runs/<setting>-s<seed>` and appends one line to `OUT/results.jsonl` when it has been
evaluated; a rerun skips the (setting, seed) pairs already there, so an interrupted study resumes without repeats.
`summary.json` and `summary.md` are rewritten at the end; `--plot` draws the study's figure.

Profiles [reconstructed]: `quick` is CPU-sized (small nets, `builtin:digits` at 16 px, a few epochs); `paper`
follows the spec's §5 settings (mnist5k / CIFAR-10 via `--data`, the paper's epochs; GPU). The setting
`epochs` (`--set epochs=N`) overrides the profile's epochs (the conformance example uses 1). Each run is evaluated
on the data's test part, or on its validation part when it has none (never on training rows; `part` in each
result line says which).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError
from wisecli.runtime.results import finished_runs

STUDIES = ("lambc", "cdb", "radial", "ibnn")

ANCHORS = {
    "lambc": "CIFAR-10 ResNet-18 80 ep (jeffrey-fong/LAMBC figures): LAMBC/LAMB 87.6/85.7 (bs 1000), 87.2/86.5 (2000), "
             "86.0/85.3 (3000); clip sweep at 1000: c=1 88.0, 3 87.7, 5 87.8, 10 87.0, none 85.7",
    "cdb": "CIFAR-100-LT top-1 error 41.26 (rho 10), 57.43 (rho 100); ImageNet-LT ResNet-10 top-1 38.5 %",
    "radial": "no numbers in the abstract; claim: invariant nets flat over 0-345 degrees, plain-cnn < 50 % at 90",
    "ibnn": "CIFAR-100 300 ep: VGG16 K=48 NLL 0.9378, 75.57 %; WRN-28-10 K=32 NLL 0.6298, 83.02 %",
}


def _settings(name: str, profile: str, data: str | None, epochs: int | None) -> list[dict]:
    """[{setting, data, train: {...}, eval: {...}}] of one study."""
    quick = profile == "quick"
    d16 = {"image_size": 16}
    if name == "cdb":
        src = data or ("builtin:digits" if quick else "builtin:mnist5k")
        ep = epochs or (10 if quick else 30)
        base = {"arch": "small-cnn", "epochs": ep, "width": 0.5 if quick else 1.0, **(d16 if quick else {})}
        out = []
        for rho in (10, 100):
            for setting, kw in (("ce", {"loss": "ce"}), ("focal", {"loss": "focal"}),
                                ("class-balanced", {"loss": "class-balanced"}),
                                ("cdb-dynamic", {"loss": "cdb", "tau": "dynamic"}),
                                ("cdb-dynamic-sigmoid", {"loss": "cdb", "tau": "dynamic-sigmoid"})):
                out.append({"setting": f"rho{rho}-{setting}", "data": src,
                            "train": {**base, **kw, "data.imbalance": float(rho)}, "eval": {}})
        return out
    if name == "radial":
        src = data or ("builtin:digits" if quick else "builtin:mnist5k")
        ep = epochs or (5 if quick else 20)
        base = {"epochs": ep, "width": 0.25 if quick else 1.0, **(d16 if quick else {})}
        ev = {"rotate": "0:360:15"}
        return [{"setting": "plain-cnn", "data": src, "train": {**base, "arch": "plain-cnn"}, "eval": ev},
                {"setting": "plain-cnn+rotate", "data": src, "train": {**base, "arch": "plain-cnn", "augment": "rotate"},
                 "eval": ev},
                *({"setting": a, "data": src, "train": {**base, "arch": a}, "eval": ev}
                  for a in ("ring-cnn", "radial-cnn", "dwsep-radial-cnn"))]
    if name == "ibnn":
        src = data or ("builtin:digits" if quick else "builtin:mnist5k")
        ep = epochs or (8 if quick else 30)
        base = {"arch": "small-cnn", "epochs": ep, **(d16 if quick else {})}
        ev = {"corrupt": "all" if not quick else "gaussian_noise,gaussian_blur,contrast", "severity": "1-5",
              "rotate": "0,30,60,90", "ood": "builtin:lfw"}
        return [{"setting": "none", "data": src, "train": {**base, "bayes": "none"}, "eval": ev},
                {"setting": "mc-dropout", "data": src, "train": {**base, "bayes": "mc-dropout"}, "eval": ev},
                {"setting": "ensemble", "data": src, "train": {**base, "bayes": "ensemble", "members": 5}, "eval": ev},
                *({"setting": f"implicit-K{k}", "data": src, "train": {**base, "bayes": "implicit", "components": k},
                   "eval": ev} for k in (4, 8))]
    if name == "lambc":
        src = data or ("builtin:mnist5k" if not quick else "builtin:digits")
        if quick:
            ep = epochs or 10
            base = {"arch": "small-cnn", "epochs": ep, **d16}
            batches = (250, 1000)
            clips = ()
        else:
            ep = epochs or 80
            base = {"arch": "monai-resnet18", "epochs": ep, "lr": 0.01, "weight_decay": 0.0, "augment": "basic",
                    "faithful": False}
            batches = (1000, 2000, 3000)
            clips = (3.0, 5.0, 10.0)
        out = []
        for bs in batches:
            out.append({"setting": f"bs{bs}-lamb", "data": src, "train": {**base, "optimizer": "lamb", "batch_size": bs},
                        "eval": {}})
            out.append({"setting": f"bs{bs}-lambc", "data": src,
                        "train": {**base, "optimizer": "lambc", "batch_size": bs, "faithful": not quick}, "eval": {}})
        for c in clips:
            out.append({"setting": f"bs1000-lambc-c{c:g}", "data": src,
                        "train": {**base, "optimizer": "lambc", "batch_size": 1000, "optim.clip": c,
                                  "faithful": True}, "eval": {}})
        return out
    raise InputError(f"unknown study {name!r}", hint=f"choose one of {', '.join(STUDIES)}")


def _metrics(ev: dict) -> dict:
    out = {k: ev[k] for k in ("accuracy", "balanced_accuracy", "nll", "ece_top15", "brier")}
    if ev.get("shot_groups"):
        out.update({f"shot_{k}": v for k, v in ev["shot_groups"].items()})
    if "rotation" in ev:
        out.update({"rot_mean": ev["rotation"]["mean"], "rot_worst": ev["rotation"]["worst"],
                    "rot_span": max(c["accuracy"] for c in ev["rotation"]["curve"]) - ev["rotation"]["worst"]})
        for c in ev["rotation"]["curve"]:
            out[f"rot{c['degrees']:g}"] = c["accuracy"]
    if "corruptions" in ev:
        out.update({"corr_nll": float(np.mean([c["nll"] for c in ev["corruptions"]])),
                    "corr_ece": float(np.mean([c["ece_top15"] for c in ev["corruptions"]])),
                    "corr_acc": float(np.mean([c["accuracy"] for c in ev["corruptions"]]))})
    if "ood_auroc" in ev:
        out["ood_auroc"] = ev["ood_auroc"]
    return out


def _mean_std(vals: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in vals if v is not None and math.isfinite(v)], dtype=float)
    if not len(a):
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def run_study(name: str, out_dir: Path | None, *, data: str | None, seeds: int, profile: str, plot: Path | None,
              device, sink=None, train_defaults: dict, epochs: int | None = None) -> dict:
    """The `study` verb (see the module docstring); returns {study, profile, rows, anchor, ...}."""
    from wisecli.cli.config import one_of
    from wisecli.runtime.device import as_device
    from wisecli.runtime.io.atomic import append_line, write_json, write_text

    from ..predict import evaluate_model
    from ..train import run_training

    one_of("study", name, STUDIES)
    one_of("--profile", profile, ("quick", "paper"))
    if out_dir is None:
        raise InputError("study needs an output folder", hint="pass -o STUDY_DIR (results.jsonl, summary.json/md)")
    if epochs is not None and int(epochs) < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}", hint="leave it out for the profile's epochs")
    settings = _settings(name, profile, data, epochs)
    device = as_device(device, sink=sink)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"study folder is a file: {out_dir}", hint="give a folder for -o")
    # check the data once before any run (a bad --data is exit 2, nothing written)
    from ..data import load_data

    from ..train import check_config

    for s in settings:  # every setting's configuration and data, before the first run
        cfg = {**train_defaults, **s["train"]}
        check_config(cfg)
        lab = load_data(s["data"], cfg, 0)
        if cfg["loss"] == "cdb":
            counts = np.bincount(lab.y[lab.split["val"]], minlength=len(lab.classes)) if "val" in lab.split else [0]
            if min(counts) < 2:
                raise InputError(f"study {name}: {s['data']} gives fewer than 2 validation images of a class, which "
                                 "--loss cdb needs", hint="give --data with more images per class (a val part, or "
                                 ">= 20 images a class)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from wisecli.cli.errors import OutputError

        raise OutputError(f"cannot create study folder {out_dir}: {exc.strerror or exc}",
                          hint="check that it is writable, or choose another -o") from None
    results = out_dir / "results.jsonl"
    done = finished_runs(results)
    t0 = time.perf_counter()
    for s in settings:
        for seed in range(seeds):
            if (s["setting"], seed) in done:
                continue
            cfg = {**train_defaults, **s["train"], "threads": train_defaults.get("threads", 0) or
                   (1 if device.type == "cpu" else 0)}
            for k in ("device", "amp", "seed"):
                cfg.pop(k, None)
            run_dir = out_dir / "runs" / f"{s['setting']}-s{seed}"
            summ = run_training(s["data"], run_dir, cfg=cfg, config_record={}, device=device, amp=True, seed=seed,
                                overwrite=True, progress=False, sink=None)
            ev_kw = dict(s["eval"])
            from ..data import cpu_threads

            with cpu_threads(device, int(cfg["threads"])):
                read = {"image_size": cfg.get("image_size")}
                lab = load_data(s["data"], {**read, "val_fraction": cfg.get("val_fraction", 0.1)}, seed)
                part = "test" if len(lab.split.get("test", ())) else "val"  # never the training rows
                idx = np.asarray(lab.split[part])
                ev = evaluate_model(None, run_dir / "checkpoints" / "best.pt", arrays=(lab.X[idx], lab.y[idx], lab.kind),
                                    cfg_read=read, device=device, seed=seed, **ev_kw)
            rec = {"study": name, "profile": profile, "setting": s["setting"], "seed": seed, "part": part, **_metrics(ev),
                   "train_seconds": summ["seconds"], "best_epoch": summ["best_epoch"]}
            append_line(results, json.dumps(rec))
            done[(s["setting"], seed)] = rec
            if sink is not None:
                sink.info(f"study {name}: {s['setting']} seed {seed}: bal_acc {rec['balanced_accuracy']:.4f}")
    rows = []
    keys = [k for k in next(iter(done.values())) if k not in ("study", "profile", "setting", "seed", "best_epoch", "part")]
    for s in settings:
        recs = [done[(s["setting"], seed)] for seed in range(seeds) if (s["setting"], seed) in done]
        row = {"setting": s["setting"], "seeds": len(recs)}
        for k in keys:
            m, sd = _mean_std([r.get(k) for r in recs])
            row[k] = m
            row[f"{k}_std"] = sd
        rows.append(row)
    doc = {"study": name, "profile": profile, "seeds": seeds, "data": data, "device": str(device), "rows": rows,
           "anchor": ANCHORS[name], "seconds": time.perf_counter() - t0}
    show = [k for k in ("balanced_accuracy", "accuracy", "nll", "ece_top15", "rot_worst", "rot_span", "corr_nll",
                        "corr_ece", "ood_auroc", "shot_few") if k in keys]
    doc["table"] = [{"setting": r["setting"], "seeds": r["seeds"],
                     **{k: f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in show}} for r in rows]
    write_json(out_dir / "summary.json", doc)
    md = [f"# study {name} ({profile}, {seeds} seed(s), mean ± std)", "", f"Paper anchor: {ANCHORS[name]}", "",
          "| setting | " + " | ".join(show) + " |", "|---|" + "---|" * len(show)]
    for r in rows:
        md.append(f"| {r['setting']} | " + " | ".join(f"{r[k]:.4f} ± {r[k + '_std']:.4f}" for k in show) + " |")
    write_text(out_dir / "summary.md", "\n".join(md) + "\n")
    if plot is not None:
        _plot(name, rows, show, Path(plot))
    return doc


def _plot(name: str, rows: list[dict], show: list[str], path: Path) -> None:
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if name == "radial":
        for r in rows:
            degs = sorted(float(k[3:]) for k in r if k.startswith("rot") and k[3:].replace(".", "").isdigit()
                          and not k.endswith("_std"))
            ax.plot(degs, [r[f"rot{d:g}"] for d in degs], marker="o", label=r["setting"])
        ax.set_xlabel("rotation (degrees)")
        ax.set_ylabel("accuracy")
    else:
        key = show[0]
        ax.bar([r["setting"] for r in rows], [r[key] for r in rows], yerr=[r[key + "_std"] for r in rows])
        ax.set_ylabel(key)
        ax.tick_params(axis="x", rotation=45)
    ax.set_title(f"wise classify study {name}")
    ax.legend() if name == "radial" else None
    save_figure(fig, path)
