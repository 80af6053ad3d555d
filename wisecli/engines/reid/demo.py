"""The `demo` verb: synthetic vehicles (SYNTHETIC VEHICLES: NOT A BENCHMARK), a small VCAM model and its
--no-vcam baseline trained in memory from the same initial weights, both evaluated in both AP modes.

Quick (`--quick`, the `wise demo` row): the shipped demo weights (`demo_weights.npz` + `.json`, 2.1 MB, DESIGN.md's
exception, issue 13 point 9): a VCAM model and its baseline trained by this module's training code (the `train`
verb's `prepare_training`, `make_step` and loss, `fit_in_memory`) from `RECIPE` on the synthetic set of seed 0.
Training the pair takes about 40 CPU-s, beyond the 15 s of a quick demo, so the quick demo renders the recipe's
held-out test identities (query and gallery; none was seen in training) and evaluates the shipped pair.
`python -m wisecli.engines.reid.api` regenerates the files; the slow test retrains them and checks their metrics.

Finding (issue 13 point 9): the paper's claim, VCAM beats --no-vcam in mAP, does not separate at a size that trains
on CPU. Measured with `RECIPE` (width 0.125, 48², 8 epochs, this machine): seed 0 (the recipe's seed, fixed before
measuring) VCAM 0.1436 against 0.1179 (+0.026), seed 1 0.1067 against 0.1072 (-0.0005); at width 0.25 the
full CPU demo's 2 seeds did not separate either. One seed's gain is seed noise, so the quick demo does not gate
it: the gain is shown in the headline and gated only on the GPU demo (spec §9). The quick gates are what the
shipped pair does show: VCAM's viewpoint head, the part VCAM adds, classifies the held-out queries' 5 viewpoints
(`GATE_QUICK["vp_acc_min"]`, chance 0.2, measured 0.667), and VCAM ranks far above chance (`mAP_vcam_min`;
random ranking gives 0.035-0.040 here over 5 draws, measured 0.144).

Full (no `--quick`): trains the pair per seed; on CPU a quarter-width ResNet-18 at 48² for 8 epochs and 2 seeds
(the gain is reported, not gated: 2 shared cores cannot separate the two beyond seed noise at that size in 5
minutes, spec §9 allows the GPU check); on CUDA the full-width ResNet-18 at 64² for 30 epochs, gated: VCAM's
mean mAP over the seeds beats the baseline's (spec §9).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from wisecli.runtime.results import DemoResult, Gate

TITLE = "SYNTHETIC VEHICLES: NOT A BENCHMARK"

DEMO_CPU = {"train_ids": 80, "test_ids": 30, "images_per_id": 16, "size": 48, "epochs": 8, "p": 16, "k": 4,
            "seeds": (0, 1), "lr": 1e-3, "warmup": 1, "width": 0.25}
DEMO_GPU = {**DEMO_CPU, "size": 64, "epochs": 30, "width": 1.0}
RECIPE = {**DEMO_CPU, "width": 0.125, "seeds": [0], "epochs": 8, "arch": "resnet18", "data_seed": 0}
WEIGHTS = Path(__file__).with_name("demo_weights.npz")
TRAINED_ON = ("synthetic vehicles (reid write_veri seed 0: 80 train ids x 16 images at 48^2), ResNet-18 at width "
              "0.125, VCAM and --no-vcam from the same initial weights, seed 0, 8 epochs")
# quick gates on the shipped pair (held-out identities); the VCAM gain is reported, not gated (see the docstring)
GATE_QUICK = {"vp_acc_min": 0.4, "mAP_vcam_min": 0.08}


def _quiet_sink(sink):
    if sink is not None:
        return sink
    from wisecli.cli.output import Sink

    return Sink(quiet=True)


def _render(root: Path, p: dict, *, with_train: bool = True) -> dict:
    from .synthetic import write_veri

    return write_veri(root, train_ids=p["train_ids"], test_ids=p["test_ids"], images_per_id=p["images_per_id"],
                      size=p["size"], seed=p.get("data_seed", 0), with_train=with_train)


def _train_pair(root: Path, p: dict, seed: int, dev: torch.device, sink, arch: str, train_defaults: dict,
                variants=("vcam", "baseline")) -> dict:
    """{variant: (model in eval mode, model config, train seconds, final loss)} for "vcam" and "baseline", trained
    with the `train` verb's pieces from the same initial weights, the same seed and schedule. `variants` picks
    which are trained (VCAM's model is always built first: the baseline starts from its initial weights)."""
    from wisecli.runtime.device import seed_everything
    from wisecli.runtime.trainer import fit_in_memory

    from .train import CachedPKLoader, lr_at, make_step, prepare_training

    out, init = {}, None
    for variant in ("vcam", "baseline"):
        cfg = {**train_defaults, "arch": arch, "input_size": p["size"], "p": p["p"], "k": p["k"], "width": p["width"],
               "epochs": p["epochs"], "viewpoints": str(root / "viewpoints.csv"), "no_vcam": variant == "baseline"}
        seed_everything(seed)
        _, sampler, images, labels, vps, model, mc, _, _ = prepare_training(root, cfg, dev, sink, seed)
        if init is None:
            init = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            model.load_state_dict(init, strict=False)  # the baseline starts from VCAM's weights
        if variant not in variants:
            continue
        model.to(dev)
        step = make_step(mc["viewpoint_classes"], vp_weight=1.0, amp=True, device=dev, seed=seed)
        t0 = time.perf_counter()
        opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=p["lr"], weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_at(e, 1.0, p["warmup"], ()))
        fitted = fit_in_memory(model, opt, CachedPKLoader(images, labels, vps, sampler), step, epochs=p["epochs"],
                               device=dev, scheduler=sched)
        out[variant] = (model.eval(), mc, time.perf_counter() - t0, fitted.last_metrics["train_loss"])
    return out


class _TestSet:
    """The query and gallery of a rendered set, decoded once."""

    def __init__(self, root: Path, size: int):
        from .data import decode_images, load_veri, read_viewpoints

        self.splits = load_veri(root)
        vp = read_viewpoints(root / "viewpoints_test.csv", "span")
        self.qi, _ = decode_images(self.splits["query"].paths, size)
        self.gi, _ = decode_images(self.splits["gallery"].paths, size)
        self.q_true = torch.tensor([vp[x.name] for x in self.splits["query"].paths])

    def evaluate(self, model, dev) -> dict:
        from .metrics import evaluate_ranking
        from .predict import embed_uint8

        q, g = self.splits["query"], self.splits["gallery"]
        qf, qp, _ = embed_uint8(model, self.qi, dev)
        gf, _, _ = embed_uint8(model, self.gi, dev)
        r = evaluate_ranking(q.ids, g.ids, q.cams, g.cams, qf=qf, gf=gf, device=dev)
        run = {"mAP_standard": r["mAP_standard"], "mAP_official": r["mAP_official"], "R1": r["cmc"][0],
               "R5": r["cmc"][4], "mINP": r["mINP"]}
        if qp is not None:
            run["vp_acc"] = float((qp.argmax(1) == self.q_true).float().mean())
        return run


def _demo_runs(p: dict, dev: torch.device, sink, arch: str, work_dir: Path | None, train_defaults: dict) -> tuple[list[dict], dict]:
    """Render the set, then per seed train and evaluate VCAM and the baseline from the same initial weights."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wise-reid-demo-", dir=work_dir) as tmp:
        root = Path(tmp) / "synthetic_veri"
        counts = _render(root, p)
        test = _TestSet(root, p["size"])
        runs = []
        for seed in p["seeds"]:
            for variant, (model, _, train_s, loss) in _train_pair(root, p, seed, dev, sink, arch,
                                                                   train_defaults).items():
                run = {"variant": variant, "seed": seed, **test.evaluate(model, dev), "train_s": train_s,
                       "final_loss": loss}
                runs.append(run)
                sink.info(f"[seed {seed}] {variant}: mAP {run['mAP_standard']:.4f} (official "
                          f"{run['mAP_official']:.4f}), R1 {run['R1']:.4f}, trained in {train_s:.1f}s")
    return runs, counts


def recipe_models(train_defaults: dict, device=None, variants=("vcam", "baseline")) -> dict:
    """{variant: (model, model config)} trained from `RECIPE` (about 40 CPU-s on one thread, a third of it the
    baseline); `variants` picks some of the pair (the same models as in the whole recipe)."""
    import tempfile

    from wisecli.runtime.device import one_cpu_thread

    dev = torch.device("cpu") if device is None else torch.device(device)
    with tempfile.TemporaryDirectory(prefix="wise-reid-recipe-") as tmp, one_cpu_thread(dev):
        root = Path(tmp) / "synthetic_veri"
        _render(root, RECIPE)
        pair = _train_pair(root, RECIPE, RECIPE["seeds"][0], dev, _quiet_sink(None), RECIPE["arch"],
                           train_defaults, variants)
    return {v: (m, mc) for v, (m, mc, _, _) in pair.items()}


def write_demo_weights(train_defaults: dict, path: Path = WEIGHTS) -> Path:
    """Train the demo pair from `RECIPE` and write the shipped files (`runtime.demo_weights`);
    `python -m wisecli.engines.reid.api` runs it with the `train` defaults (engine modules never import api)."""
    from wisecli.runtime import demo_weights

    models = recipe_models(train_defaults)
    return demo_weights.save(path, {v: m.state_dict() for v, (m, _) in models.items()},
                             {"recipe": RECIPE, "trained_on": TRAINED_ON,
                              "configs": {v: mc for v, (_, mc) in models.items()}})


def load_demo_models(dev: torch.device, path: Path = WEIGHTS) -> dict | None:
    """{variant: (model, model config)} from the shipped files on `dev`, or None when they are missing."""
    from wisecli.runtime import demo_weights

    from .predict import build_model

    shipped = demo_weights.load(path)
    if shipped is None:
        return None
    meta, groups = shipped
    try:
        return {v: (demo_weights.load_into(build_model(mc), groups[v]).to(dev), mc)
                for v, mc in meta["configs"].items()}
    except (KeyError, RuntimeError):
        return None


def evaluate_pair(models: dict, dev: torch.device, p: dict = RECIPE) -> list[dict]:
    """Runs (variant, seed, mAP both modes, R1, R5, mINP, vp_acc) of a trained pair on the held-out identities of
    the set `p` describes (only its query and gallery are rendered)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wise-reid-demo-") as tmp:
        root = Path(tmp) / "synthetic_veri"
        _render(root, p, with_train=False)
        test = _TestSet(root, p["size"])
        return [{"variant": v, "seed": p["seeds"][0], **test.evaluate(m, dev)} for v, (m, _) in models.items()]


def run_demo(quick: bool = False, device="auto", *, sink=None, work_dir: Path | None = None,
             arch: str = "resnet18", train_defaults: dict, **overrides) -> DemoResult:
    """Render synthetic vehicles, train a small VCAM model and its --no-vcam baseline from the same initial
    weights (same seed, same schedule), evaluate both in both AP modes.  SYNTHETIC VEHICLES: NOT A BENCHMARK.

    Settings: `quick` evaluates the shipped pair (`RECIPE`) on the held-out identities (gates: `GATE_QUICK`; the
    mAP gain is reported); on CPU a quarter-width ResNet-18 at 48^2 for 8 epochs and 2 seeds, so it fits 5 minutes
    on 2 cores (the gain is reported, not gated: 2 shared cores cannot separate the two beyond seed noise in that
    time); on CUDA the full-width ResNet-18 at 64^2 for 30 epochs, gated: VCAM's mean mAP over the seeds must beat
    the baseline's (spec §9)."""
    from wisecli.runtime.device import as_device, device_name, one_cpu_thread

    sink = _quiet_sink(sink)
    t_start = time.perf_counter()
    dev = as_device(device, sink=sink)
    p = {**(RECIPE if quick else DEMO_GPU if dev.type == "cuda" else DEMO_CPU), **overrides}
    with one_cpu_thread(dev):
        if quick:
            models = load_demo_models(dev)
            if models is None:
                sink.info("the shipped demo weights are missing: training them from the recipe (about a minute)")
                models = {v: (m.to(dev), mc) for v, (m, mc) in recipe_models(train_defaults, dev).items()}
            runs = evaluate_pair(models, dev, p)
            counts = {"train_ids": p["train_ids"], "test_ids": p["test_ids"], "size": p["size"],
                      "rendered": "query and gallery only (the shipped pair was trained on the rest)"}
        else:
            runs, counts = _demo_runs(p, dev, sink, arch, work_dir, train_defaults)
    rows = []
    for variant in ("vcam", "baseline"):
        rs = [r for r in runs if r["variant"] == variant]
        row = {"model": "VCAM" if variant == "vcam" else "baseline (--no-vcam)"}
        for key in ("mAP_standard", "mAP_official", "R1", "R5", "mINP"):
            row[key] = float(np.mean([r[key] for r in rs]))
        if variant == "vcam":
            row["vp_acc"] = float(np.mean([r["vp_acc"] for r in rs]))
        rows.append(row)
    gain = rows[0]["mAP_standard"] - rows[1]["mAP_standard"]
    gates = [Gate("mAP VCAM (finite, >= 0)", rows[0]["mAP_standard"], ">=", 0.0),
             Gate("mAP baseline (finite, >= 0)", rows[1]["mAP_standard"], ">=", 0.0)]
    gate = None
    if quick:  # the shipped pair: what it shows (the gain is reported: one seed does not separate it on CPU)
        gates = [Gate("VCAM viewpoint accuracy, held-out queries (chance 0.2)", rows[0]["vp_acc"], ">=",
                      GATE_QUICK["vp_acc_min"]),
                 Gate("mAP VCAM, held-out ids (random ranking ~0.04)", rows[0]["mAP_standard"], ">=",
                      GATE_QUICK["mAP_vcam_min"])]
        gate = ("shipped pair: VCAM's viewpoint head and ranking work; the mAP gain over --no-vcam is reported, not "
                "gated (one CPU-sized seed does not separate it: a finding, see the module docstring)")
    elif dev.type == "cuda":  # spec §9: VCAM beats --no-vcam in mAP, mean of the seeds
        gates.append(Gate("mAP gain VCAM - baseline (mean of seeds)", gain, ">", 0.0))
        gate = "VCAM mAP > baseline mAP (mean of seeds)"
    details = {"title": TITLE, "synthetic": True, "quick": quick, "gate": gate, "rows": rows, "runs": runs,
               "data": counts, "arch": arch, "width": p["width"], "epochs": p["epochs"], "seeds": list(p["seeds"]),
               "device": device_name(dev), "seconds": time.perf_counter() - t_start}
    if quick:
        from wisecli.runtime import demo_weights

        details["weights"] = demo_weights.describe(WEIGHTS)
    return DemoResult(
        method="reid", gates=gates,
        headline={"mAP_vcam": rows[0]["mAP_standard"], "mAP_baseline": rows[1]["mAP_standard"], "mAP_gain": gain},
        details=details)
