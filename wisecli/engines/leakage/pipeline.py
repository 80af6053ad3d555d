"""`run` end to end (spec §3): check everything, read the data, build the model, optional FedAvg with a
checkpoint per round (`fedavg/round_<r>.pt`, `--resume` restarts at the next round), audits at the chosen rounds
(each round's records appended to `leakage.jsonl` as it finishes), then `leakage.json`, `leakage.png`,
`run.json` and with `save_features` `features/round_<r>.npz`.

Choices [reconstructed]: without `-o` nothing is written (no checkpoints, so no `--resume`) except `--plot`;
`audit_rounds` defaults to the last round (0 without FedAvg: the given or freshly initialised weights);
round 0 is the initial model. The report's `rankings` hold, per audited round, `metrics.rank_layers` (the best
family's V-information per layer against the attribute-directed sensitivity S_s: Spearman ρ, the argmax layer of
each metric, top-3 overlap; spec §5); `ranking` is the last round's. A CPU run is one torch thread (`runtime.device.one_cpu_thread`: the batched
small problems lose 5–30× to thread hand-offs on shared cores).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

FAMILY_CHOICES = ("linear", "quadratic", "mlp", "forest", "best")


def parse_rounds(text, fl_rounds: int) -> list[int]:
    """`0,5,10` -> sorted unique ints within 0..fl_rounds (default: [fl_rounds])."""
    if text in (None, ""):
        return [int(fl_rounds)]
    out = []
    for part in str(text).split(","):
        try:
            r = int(part.strip())
        except ValueError:
            raise InputError(f"--audit-rounds {text!r}: {part!r} is not a round number", hint="e.g. --audit-rounds 0,5,10") from None
        if not 0 <= r <= fl_rounds:
            raise InputError(f"--audit-rounds: round {r} is outside 0..{fl_rounds} (--fl-rounds {fl_rounds})",
                             hint="audit rounds lie between 0 and --fl-rounds")
        out.append(r)
    return sorted(set(out))


def parse_families(text) -> tuple[list[str], bool]:
    fams = [f.strip() for f in str(text).split(",") if f.strip()]
    for f in fams:
        if f not in FAMILY_CHOICES:
            import difflib

            close = difflib.get_close_matches(f, FAMILY_CHOICES, n=1)
            raise InputError(f"--families: unknown family {f!r}", hint=f"did you mean '{close[0]}'?" if close else
                             "choose from " + ", ".join(FAMILY_CHOICES))
    best = "best" in fams
    fams = [f for f in fams if f != "best"] or ["linear"]
    return list(dict.fromkeys(fams)), best


def check_options(cfg: dict) -> None:
    """Options that are wrong whatever the data (spec §8), before anything is read."""
    def at_least(key, lo, flag):
        v = cfg[key]
        if v is None or not np.isfinite(float(v)) or int(v) != float(v) or int(v) < lo:
            raise InputError(f"--{flag} must be an integer >= {lo}, got {v}", hint="see --help")

    at_least("sketch", 2, "sketch")
    at_least("folds", 2, "folds")
    at_least("batch_size", 1, "batch-size")
    at_least("probes", 1, "probes")
    at_least("n_obs", 2, "n-obs")
    at_least("n_sens", 1, "n-sens")
    at_least("clients", 1, "clients")
    at_least("local_steps", 1, "local-steps")
    at_least("fl_rounds", 0, "fl-rounds")
    at_least("train_batch", 1, "train-batch")
    at_least("chunk", 1, "chunk")
    lr = float(cfg["lr"])
    if not (np.isfinite(lr) and lr > 0):
        raise InputError(f"--lr must be a positive number, got {cfg['lr']}", hint="e.g. --lr 0.2")
    for key, allowed in (("observe", ("grad", "update")), ("property_level", ("client", "sample")),
                         ("sensitivity", ("hutchinson", "exact", "ones-vjp", "none")), ("layers", ("tensors", "modules")),
                         ("arch", ("mlp", "small-cnn", "cnn-32")), ("planted", ("thick", "patch", "gain"))):
        from wisecli.cli.config import one_of

        one_of("--" + key.replace("_", "-"), cfg[key], allowed)


def _check_latent(model, name: str | None) -> None:
    if not name:
        return
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        raise InputError(f"--latent-layer {name!r} is not a module of the model",
                         hint=f"did you mean '{close[0]}'?" if close else "modules: " + ", ".join(names[:12]))


def _check_exact(model, x_shape, cfg) -> None:
    if cfg["sensitivity"] != "exact":
        return
    nx = int(np.prod(x_shape))
    biggest = max(p.numel() for p in model.parameters() if p.requires_grad)
    if biggest * nx * int(cfg["chunk"]) * 4 > 8 * 2 ** 30:
        raise InputError(f"exact sensitivity needs |θ_l|·|x|·chunk = {biggest * nx * int(cfg['chunk']):.3g} floats at once",
                         hint="use --sensitivity hutchinson (or lower --chunk)")


def run(source, out_dir: Path | None, cfg: dict, *, device, resume: bool = False, overwrite: bool = False,
        plot: Path | None = None, progress: bool = True, sink=None, argv=None) -> dict:
    """The `run` verb (see the module docstring). Returns {records, rounds, accuracy, best_layer, ...}."""
    import torch

    from wisecli.runtime.device import as_device, device_name, one_cpu_thread
    from wisecli.runtime.io.atomic import append_line, save_npz, write_json
    from wisecli.runtime.rundir import prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord

    from . import data as data_mod
    from .algorithm import params_of
    from .audit import audit_round
    from .model import build_model, check_outputs, prepare_inputs
    from .plots import plot_report
    from .train import accuracy, run_fedavg

    t0 = time.perf_counter()
    cfg = dict(cfg)
    check_options(cfg)
    cfg["_fams"], cfg["_best"] = parse_families(cfg["families"])
    rounds = int(cfg["fl_rounds"])
    audit_rounds = parse_rounds(cfg["audit_rounds"], rounds)
    if resume and out_dir is None:
        raise InputError("--resume needs -o (the run folder with the FedAvg checkpoints)", hint="add -o RUN")
    data = data_mod.load(source, dataset=cfg.get("dataset"), attribute=cfg.get("attribute"),
                         task_label=cfg.get("task_label"), client=cfg.get("client"), image_size=cfg.get("image_size"),
                         planted=cfg["planted"], clients=int(cfg["clients"]), seed=int(cfg["seed"]))
    smallest = int(np.bincount(data.client).min())
    if int(cfg["batch_size"]) > smallest:
        raise InputError(f"--batch-size {cfg['batch_size']} is larger than the smallest client ({smallest} samples)",
                         hint="lower --batch-size or use fewer --clients")
    device = as_device(device, sink=sink)
    model, info = build_model(arch=cfg["arch"], data=data, model_factory=cfg.get("model_factory"),
                              weights=cfg.get("weights"), seed=int(cfg["seed"]), width=float(cfg["width"]))
    X = prepare_inputs(data.X, info)
    check_outputs(model, X, max(data.n_classes, int(data.y.max()) + 1))
    _check_latent(model, cfg.get("latent_layer"))
    _check_exact(model, X.shape[1:], cfg)
    from .metrics import check_folds

    # the attribute balance is known before any gradient: refuse impossible cross-fitting now
    from .audit import design

    plan = design(data, {**cfg, "n_obs": cfg["n_obs"]}, audit_rounds[0])
    check_folds(plan["labels"], plan["groups"], int(cfg["folds"]))
    if out_dir is not None:
        out_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    record = RunRecord("leakage run", config={k: v for k, v in cfg.items() if not k.startswith("_")},
                       device=device_name(device), seed=int(cfg["seed"]),
                       inputs=[str(source or f"builtin:{cfg.get('dataset')}")], argv=argv)
    model = model.to(device)
    Xd = X.to(device)
    yd = torch.as_tensor(data.y, device=device)
    params = params_of(model)
    done: set[int] = set()
    old_records: list[dict] = []
    start = 0
    jsonl = out_dir / "leakage.jsonl" if out_dir is not None else None
    if resume:
        from wisecli.runtime.checkpoints import load_checkpoint

        ck = sorted((out_dir / "fedavg").glob("round_*.pt"), key=lambda p: int(p.stem.split("_")[1])) \
            if (out_dir / "fedavg").is_dir() else []
        if ck:
            doc = load_checkpoint(ck[-1], method="leakage")
            start = int(doc.get("round", 0))
            params = {k: v.to(device) for k, v in doc["state_dict"].items()}
        if jsonl.is_file():
            old_records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
            done = {int(r["round"]) for r in old_records}
    cfg_rec = {k: v for k, v in cfg.items() if not k.startswith("_")}
    results: dict[int, dict] = {}
    with one_cpu_thread(device):
        def audit(r: int, p: dict) -> None:
            if r not in audit_rounds or r in done:
                return
            from wisecli.runtime.device import oom_guard

            res = oom_guard(lambda: audit_round(model, p, Xd, yd, data, cfg, r, device), option_hint="--chunk")
            results[r] = res
            if out_dir is not None:
                for rec in res["records"]:
                    append_line(jsonl, json.dumps(rec))
                if cfg["save_features"]:
                    arrays = {f"X_{k.replace('.', '_')}": v for k, v in res["features"].items()}
                    arrays.update({f"pw_{k.replace('.', '_').replace('|', '__')}": v for k, v in res["pointwise"].items()})
                    save_npz(out_dir / "features" / f"round_{r}.npz", labels=res["labels"], groups=res["groups"],
                             control=res["control"], layers=np.array(list(res["features"])), **arrays)

        def on_round(r: int, p: dict) -> None:
            if out_dir is not None:
                from wisecli.runtime.checkpoints import save_checkpoint

                save_checkpoint(out_dir / "fedavg" / f"round_{r}.pt", method="leakage", arch=str(info.get("arch")),
                                config=cfg_rec, state_dict=p, round=r)
            audit(r, p)

        if start == 0:
            audit(0, params)
        if rounds > start:
            params = run_fedavg(model, params, Xd, yd, data.client, rounds=rounds, start=start,
                                local_steps=int(cfg["local_steps"]), batch=int(cfg["train_batch"]), lr=float(cfg["lr"]),
                                seed=int(cfg["seed"]), on_round=on_round)
        if data.X_test is not None:
            acc = accuracy(model, params, prepare_inputs(data.X_test, info).to(device),
                           torch.as_tensor(data.y_test, device=device))
            acc_on = "test"
        else:
            acc, acc_on = accuracy(model, params, Xd, yd), "train"
    records = old_records + [rec for r in sorted(results) for rec in results[r]["records"]]
    last = max(r["round"] for r in records)
    rankings = _rankings(records)
    fam_for_best = [r for r in records if r["round"] == last and r["family"] != "best"]
    top = max(fam_for_best, key=lambda r: r["vinfo_bits"])
    ctl = [abs(r["control_bits"]) for r in fam_for_best if r.get("control_bits") is not None]
    doc = {"method": "leakage", "source": data.source, "model": info.get("arch"), "model_source": info.get("source"),
           "device": device_name(device), "rounds": rounds, "audit_rounds": audit_rounds, "accuracy": acc,
           "accuracy_on": acc_on, "best_layer": top["layer"], "best_family": top["family"], "best_bits": top["vinfo_bits"],
           "best_ci95": top["ci95"], "control_max_abs": max(ctl) if ctl else None, "n_clients": data.n_clients,
           "clients_dealt": data.dealt, "attribute_values": data.attr_values,
           "ranking": rankings[last], "rankings": list(rankings.values()), "config": cfg_rec, "records": records,
           "seconds": time.perf_counter() - t0}
    if out_dir is not None:
        write_json(out_dir / "leakage.json", doc)
        record.add_output(out_dir / "leakage.json")
        record.add_output(jsonl)
        plot_report(records, out_dir / "leakage.png", title=f"wise leakage: {data.source}")
        record.add_output(out_dir / "leakage.png")
    if plot is not None:
        plot_report(records, plot, title=f"wise leakage: {data.source}")
        record.add_output(plot)
    if out_dir is not None:
        record.set("accuracy", acc)
        record.write(out_dir)
    doc["out_dir"] = str(out_dir) if out_dir is not None else None
    return doc


def _rankings(records: list[dict]) -> dict[int, dict]:
    """Per audited round: `metrics.rank_layers` (best family per layer vs S_s: Spearman ρ, argmax layers, top-3
    overlap), keyed by round."""
    from .metrics import rank_layers

    out = {}
    for r in sorted({int(rec["round"]) for rec in records}):
        out[r] = rank_layers([rec for rec in records if int(rec["round"]) == r])
    return out
