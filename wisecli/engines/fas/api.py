"""The Python API of `wise fas` (what the command calls): one function per verb with the CLI's defaults, and the
`DEFAULTS` table of each verb. Settings left at None come from `DEFAULTS[verb]` through `cli.config.resolve`
(which also reads `--config`, `--set` and `WISE_*`). Only the standard library is imported here; the engine
(`train`, `predict`, `synthetic`, `demo`, `bench`) is imported inside the functions.

    from wisecli.engines.fas import api
    api.train("sim/manifest.csv", "runs/t", epochs=5, width=0.25, input_size=64, map_size=16, device="cpu")
    recs = api.predict(["face.png"], weights="runs/t/checkpoints/best.pt")
    api.evaluate(scores="test.jsonl", dev_scores="runs/t/dev_scores.jsonl")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "fas"
_TRAIN: dict[str, Any] = {
    "layout": "manifest", "protocol": "", "fold": 0, "allow_partial": False,
    "supervision": "pyramid", "pyramid_base": "binary-mask", "pyramid_scales": "32,16,8,4,2,1",
    "pyramid_weights": "", "mask_label": "face", "aux_binary": 0.0, "depth_root": "", "depth_fallback": "none",
    "backbone": "cdcn", "resnet_depth": 18, "theta": 0.7, "width": 1.0, "input_size": 256, "map_size": 32,
    "pretrained": "", "epochs": 1400, "batch_size": 32, "lr": 1e-4, "weight_decay": 5e-5, "lr_step": 500,
    "lr_gamma": 0.5, "detector": "haar", "frames": 8, "agg": "mean", "cache": "", "workers": 2, "seed": 0,
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": _TRAIN,
    "predict": {"layout": None, "protocol": "", "fold": 0, "allow_partial": False, "split": None, "frames": 8,
                "agg": None, "detector": None, "threshold": None, "batch_size": 128, "workers": 2, "seed": 0},
    "evaluate": {"layout": "manifest", "dev_layout": None, "protocol": "", "fold": 0, "allow_partial": False,
                 "threshold": "dev-eer", "level": "video", "species": "type", "bootstrap": 0, "frames": 8,
                 "detector": None, "batch_size": 128, "seed": 0},
    "simulate": {"size": 64, "detector": "haar", "seed": 0},
    "demo": {"seeds": None, "epochs": None},
    "info": {},
    "benchmark": {"iters": None, "e2e": True},
}


def _resolve(verb: str, flags: dict[str, Any]) -> Any:
    from wisecli.cli.config import resolve

    return resolve(DEFAULTS[verb], flags={k: v for k, v in flags.items() if k in DEFAULTS[verb]})


def _sink(sink):
    if sink is not None:
        return sink
    from wisecli.cli.output import Sink

    return Sink()


def train(data, out_dir=None, *, layout=None, protocol=None, fold=None, allow_partial=None, supervision=None,
          pyramid_base=None, pyramid_scales=None, pyramid_weights=None, mask_label=None, aux_binary=None,
          depth_root=None, depth_fallback=None, backbone=None, resnet_depth=None, theta=None, width=None,
          input_size=None, map_size=None, pretrained=None, epochs=None, batch_size=None, lr=None, lr_step=None,
          detector=None, frames=None, agg=None, cache=None, workers=None, seed=None, resume: bool = False,
          overwrite: bool = False, device="auto", amp: bool = True, progress: bool = True, log_every: int = 0,
          sink=None) -> dict:
    """Train a face anti-spoofing model on DATA (a data root or manifest, `layout`) into the run folder `out_dir`:
    `config.json`, `metrics.jsonl`, `checkpoints/last.pt|best.pt` (with the dev threshold), `dev_scores.jsonl`,
    `run.json`. A non-empty folder is refused unless `resume` (continue from last.pt) or `overwrite`.
    `pretrained` names a `wise fas` checkpoint to start from. Returns the summary: run_dir, best_epoch, dev_acer,
    dev_eer, threshold, epochs, n_train, n_dev, depth_source.

    Defaults (`DEFAULTS["train"]`): pyramid supervision on the binary-mask base, scales 32,16,8,4,2,1, CDCN θ 0.7
    width 1, 256² input, 32² map, 1400 epochs, batch 32, Adam 1e-4 (weight decay 5e-5) halved every 500 epochs,
    Haar detector, 8 frames per video, mean aggregation, seed 0; device auto, AMP on."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.fas import train as T
    from wisecli.runtime.runrecord import RunRecord

    res = _resolve("train", dict(locals()))
    if out_dir is None:
        if not Path(data).exists():
            raise InputError(f"data root {data} does not exist", "give the folder (or manifest CSV) of the data set")
        raise InputError("train needs -o RUN_FOLDER", "e.g. wise fas train data/ --layout oulu -o runs/p1")
    record = RunRecord("fas train", config=res, device=str(device), seed=res.values["seed"], inputs=[data])
    summary = T.train(data, out_dir, dict(res.values), defaults=DEFAULTS["train"], device=device, amp=amp,
                      resume=resume, overwrite=overwrite, progress=progress, sink=sink, log_every=log_every,
                      run_record=record)
    summary.pop("model", None)
    summary.pop("config", None)
    return summary


def predict(inputs=None, *, weights=None, output=None, layout=None, manifest=None, split=None, protocol=None,
            fold=None, allow_partial=None, pattern=None, shard=None, frames=None, agg=None, detector=None,
            threshold=None, save_maps=None, batch_size=None, workers=None, skip_existing: bool = False,
            overwrite: bool = False, fail_fast: bool = False, device="auto", amp: bool = True, seed=None,
            debug: bool = False, sink=None) -> list[dict]:
    """Score faces in images, videos and frame folders (or the rows of a `manifest` / a data root with `layout`,
    its `split`, default test) with the checkpoint `weights`: one record per input (input, kind, status ok |
    no_face | error | skipped, score, threshold, decision, frames_used, frames_no_face, frames; label, attack_type
    and subject for data set rows). `output` FILE.jsonl gets every record; `output` DIR one `<stem>.json` per input
    (`skip_existing` resumes). A lone unreadable input is an InputError; in a batch it is a record with status error.

    Defaults (`DEFAULTS["predict"]`): 8 frames per video, the checkpoint's aggregation, detector and dev threshold,
    128 faces per forward pass, 2 decode threads, device auto, AMP on."""
    from wisecli.engines.fas import predict as P
    from wisecli.runtime.runrecord import RunRecord

    res = _resolve("predict", dict(locals()))
    v = res.values
    record = RunRecord("fas predict", config=res, device=str(device), seed=v["seed"], inputs=list(inputs or []))
    record.set("weights", str(weights))
    return P.predict(inputs, weights, output=output, layout=v["layout"], manifest=manifest, split=v["split"],
                     protocol=v["protocol"], fold=v["fold"], allow_partial=bool(v["allow_partial"]), pattern=pattern,
                     shard=shard, frames=v["frames"], agg=v["agg"], detector=v["detector"], threshold=v["threshold"],
                     save_maps=save_maps, batch_size=v["batch_size"], workers=v["workers"],
                     skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, device=device, amp=amp,
                     seed=v["seed"], debug=debug, run_record=record, sink=_sink(sink))


def evaluate(test=None, *, weights=None, dev=None, scores=None, dev_scores=None, layout=None, dev_layout=None,
             protocol=None, fold=None, allow_partial=None, threshold=None, level=None, species=None,
             cross: bool = False, compat: bool = False, bootstrap=None, frames=None, detector=None, batch_size=None,
             out_dir=None, overwrite: bool = False, device="auto", amp: bool = True, seed=None, sink=None) -> dict:
    """The metrics of spec §5 (threshold, APCER per species and worst, BPCER, ACER, EER, AUC, BPCER20/100, HTER,
    counts): model-free from `scores` (+ `dev_scores`) JSONL, or from `weights` and TEST data (its dev split or
    `dev`), whose scores are written first into `out_dir` (default `<run>/eval`) as scores.jsonl/dev_scores.jsonl.

    Defaults (`DEFAULTS["evaluate"]`): threshold dev-eer, video level, species by attack type, no bootstrap, manifest
    layout, 8 frames, the checkpoint's detector, seed 0."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.fas import predict as P

    v = _resolve("evaluate", dict(locals())).values
    if weights is not None and scores is not None:  # the files are named first when one of them is bad
        from wisecli.runtime.checkpoints import load_checkpoint

        load_checkpoint(weights, method=METHOD)
        P.read_scores(scores)
        raise InputError("give --weights or --scores, not both", "--scores re-evaluates saved scores")
    return P.evaluate(scores=scores, dev_scores=dev_scores, weights=weights, test=test, dev=dev, layout=v["layout"],
                      dev_layout=v["dev_layout"], protocol=v["protocol"], fold=v["fold"],
                      allow_partial=bool(v["allow_partial"]), out_dir=out_dir, overwrite=overwrite,
                      threshold=v["threshold"], level=v["level"], species=v["species"], cross=cross, compat=compat,
                      bootstrap=v["bootstrap"], device=device, frames=v["frames"], detector=v["detector"],
                      batch_size=v["batch_size"], seed=v["seed"], amp=amp, sink=sink)


def simulate(inputs=None, out_dir=None, *, size=None, detector=None, seed=None, pattern=None,
             overwrite: bool = False, sink=None) -> dict:
    """Write clearly labelled SIMULATED print and replay attacks of live faces (the user's images, or
    scikit-image's LFW faces and astronaut without `inputs`) into `out_dir`, with depth labels, `manifest.csv` and
    NOTICE.txt. Returns counts, manifest, source, errors (inputs without a face) and one record per input image.

    Defaults (`DEFAULTS["simulate"]`): 64 px faces, Haar detector, seed 0."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.fas.synthetic import simulate as _simulate

    v = _resolve("simulate", dict(locals())).values
    paths = []
    if inputs:
        from wisecli.cli.inputs import expand_inputs
        from wisecli.engines.fas.data import IMAGE_EXT

        paths = expand_inputs([str(i) for i in inputs], pattern=pattern, extensions=IMAGE_EXT)
    if out_dir is None:
        raise InputError("simulate needs -o DIR", "e.g. wise fas simulate faces/ -o sim/")
    return _simulate(paths, out_dir, size=v["size"], seed=v["seed"], detector=v["detector"], overwrite=overwrite,
                     sink=sink)


def demo(quick: bool = False, device="auto", *, full: bool = False, seeds=None, epochs=None, sink=None,
         progress: bool = False):
    """Simulated attacks on scikit-image faces → tiny CDCN (pyramid and binary-mask; `full` adds binary and
    template-depth depth-map) → predict on the held-out LFW test faces and the astronaut cross split → evaluate.
    Returns a `runtime.results.DemoResult`: the §9 gate (pyramid and binary-mask mean test ACER ≤ 10 %), headline
    ACERs, and details (title, rows, mean, seconds, simulated=True). Nothing is left in $TMPDIR.

    Defaults: 2 seeds and 13 epochs; `quick`: no training, the shipped demo weights (pyramid and binary-mask from
    `demo.RECIPE`) scored on the held-out test faces, gated on the paper's claim in direction (pyramid's mean test
    ACER at most binary-mask's, and far from chance: `demo.GATE_QUICK`)."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.fas import demo as D

    v = _resolve("demo", dict(locals())).values
    for key in ("seeds", "epochs"):
        if v[key] is not None and int(v[key]) < 1:
            raise InputError(f"--{key} must be at least 1", f"e.g. --{key} 2")
        if quick and v[key] is not None:
            raise InputError(f"--{key} applies to the full demo: --quick scores the shipped demo weights "
                             "(trained from demo.RECIPE)", f"drop --{key}, or drop --quick to train")
    return D.demo(DEFAULTS["train"], quick=quick, device=device, full=full, seeds=v["seeds"], epochs=v["epochs"],
                  sink=sink, progress=progress)


def info() -> dict:
    """What `wise fas` reads and writes, its supervision modes, backbones, detectors (OpenCV version, cascades),
    layouts and the train defaults."""
    from wisecli.engines.fas.data import LAYOUTS
    from wisecli.engines.fas.detect import detectors_status
    from wisecli.engines.fas import demo as D
    from wisecli.engines.fas.model import SUPERVISIONS
    from wisecli.runtime import demo_weights

    _resolve("info", {})  # reads --config/--set like every verb (a bad config file is exit 2)
    return {"method": METHOD, "paper": "Yu et al., Revisiting Pixel-Wise Supervision for Face Anti-Spoofing, "
                                       "IEEE T-BIOM 2021 (arXiv 2011.12032)",
            "supervisions": list(SUPERVISIONS), "backbones": ["cdcn", "resnet18", "resnet34", "resnet50"],
            "detectors": detectors_status(), "layouts": list(LAYOUTS), "defaults": dict(DEFAULTS["train"]),
            "reads": "videos (.avi/.mov/.mp4), images, frame folders; manifests path,label,attack_type,subject",
            "writes": "run folder (config.json, metrics.jsonl, checkpoints/, dev_scores.jsonl); JSONL scores",
            "demo_weights": demo_weights.describe(D.WEIGHTS)}


def benchmark(device="auto", quick: bool | None = None, *, iters=None, compile: bool = False, amp: bool = True,
              e2e=None, sink=None):
    """Race the folded CDCN against the reference-style two-conv CDCN (spec §7) with `runtime.bench.race`:
    inference faces/s, the pyramid training step, and (`e2e`) end-to-end predict videos/s. Returns
    `runtime.results.BenchRecords` (a list of `BenchRecord`) whose `summary` is the spec's document (device,
    preset, reference, ours, ratios, max_abs_diff).

    Defaults: the quick preset on CPU and the full one on CUDA (`quick` True/False picks), 3 timed iterations
    (quick) or 20 (full), e2e on, AMP on, no torch.compile."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.fas import bench
    from wisecli.runtime.device import as_device

    v = _resolve("benchmark", dict(locals())).values
    if v["iters"] is not None and int(v["iters"]) < 1:
        raise InputError("--iters must be at least 1", "e.g. --iters 3")
    dev = as_device(device, sink=sink)
    q = (dev.type != "cuda") if quick is None else quick
    return bench.run(DEFAULTS["train"], device=dev, quick=q, iters=v["iters"], compile=compile, amp=amp,
                     e2e=bool(v["e2e"]))


if __name__ == "__main__":  # python -m wisecli.engines.fas.api: regenerate the shipped demo weights (demo.RECIPE)
    from wisecli.engines.fas import demo as _demo

    print(_demo.write_demo_weights(DEFAULTS["train"]))
