"""Scoring faces with a trained model: `predict` (one record per presentation, the batch loop over
`runtime.batch.run_batch`) and `evaluate` with a checkpoint (scores written first, then the metrics of spec §5).

Choices where the spec is silent [reconstructed]:
* `predict --save-maps DIR` writes, per input, one PNG per pyramid level of the map averaged over the used frames
  (probabilities for masks, depth for depth models; upsampled to 128 px with nearest neighbours).
* `predict -o FILE.jsonl` writes every record into one JSONL file (atomically, at the end); `-o DIR` writes one
  `DIR/<stem>.json` per input as soon as it is scored, so `--skip-existing` resumes an interrupted batch.
* A lone input none of whose frames can be read is exit 2 (a corrupt file); in a batch it is an item error.
* `evaluate --weights` writes `scores.jsonl` and `dev_scores.jsonl` into `--out-dir` (default `<run>/eval`) before
  computing the metrics, so `evaluate --scores` can reproduce it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

METHOD = "fas"


def score_crops(model, cfg: dict, x: torch.Tensor, extent: torch.Tensor):
    """Per-face scores (spec §2.4), the score maps (probabilities/depth, or None) and the raw network outputs of
    normalised crops."""
    from wisecli.engines.fas.data import face_targets
    from wisecli.engines.fas.loss import map_scores

    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    out = model(x)
    kind = cfg["target_kind"]
    if kind is None:
        return torch.sigmoid(out["logit"].float()), None, out
    m = out["map"].float()
    if cfg.get("mask_label", "face") == "full":
        mask = torch.ones(m.shape[0], 1, m.shape[-1], m.shape[-1], device=m.device)
    else:
        mask, _ = face_targets(extent[:, 0], extent[:, 1], m.shape[-1])
    prob = torch.sigmoid(m) if kind == "mask" else m
    return map_scores(m, kind, mask), prob, out


def _aggregate(values: list[float], agg: str) -> float:
    return float(np.median(values) if agg == "median" else np.mean(values))


def load_model(weights, device: torch.device):
    """A trained model, its configuration and stored dev threshold, from a `wisecli/1` checkpoint."""
    from wisecli.engines.fas.model import build, check_config
    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(Path(weights), method=METHOD)
    try:
        cfg = check_config(dict(doc["config"]))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{weights} holds no usable fas configuration",
                         "give a checkpoint written by 'wise fas train'") from None
    cfg["pretrained"] = ""
    model, _ = build(cfg, device)
    try:
        model.load_state_dict(doc["state_dict"])
    except RuntimeError:
        raise InputError(f"the weights in {weights} do not fit the model its configuration describes",
                         "give a checkpoint written by 'wise fas train'") from None
    model.eval()
    return model, cfg, doc.get("threshold")


def _prepare_one(sample, detector, frames: int, size: int) -> dict:
    from wisecli.engines.fas.detect import TEST_SCALE, box_extent, crop_face
    from wisecli.engines.fas.data import read_frames

    crops, exts, used, no_face, errors = [], [], [], 0, []
    k = 1.0 if detector.name == "none" else TEST_SCALE
    for fr in read_frames(sample, frames):
        if fr["image"] is None:
            errors.append({"index": fr["index"], "error": fr["error"]})
            continue
        box = detector.detect(fr["image"], fr["box"] if fr["box"] is not None else sample.box)
        if box is None:
            no_face += 1
            continue
        c = crop_face(fr["image"], box, k, size)
        crops.append(c if c.ndim == 3 else np.repeat(c[..., None], 3, axis=2))
        exts.append(box_extent(box, k))
        used.append({"index": fr["index"], "box": [int(round(v)) for v in box]})
    if errors and not crops and not no_face:
        raise InputError(f"cannot read {sample.path}: none of its frames decodes",
                         "check the file is a readable image, video or folder of frames")
    return {"crops": crops, "extent": exts, "frames": used, "no_face": no_face, "errors": errors}


def predict_samples(samples, weights, *, device: str = "auto", frames: int = 8, agg: str | None = None,
                    detector: str | None = None, threshold: float | None = None, batch_size: int = 128,
                    workers: int = 2, amp: bool = True, save_maps=None, with_labels: bool = False,
                    sink=None) -> Iterator[dict]:
    """Score presentations; yields one record per input, in order, as soon as its chunk is done.

    Faces of consecutive inputs are batched together (≥ `batch_size` faces per forward pass) while a thread pool
    decodes and detects the next chunk."""
    from wisecli.engines.fas.data import augment
    from wisecli.engines.fas.detect import make_detector
    from wisecli.engines.fas.model import pyramid_of
    from wisecli.runtime.device import as_device, autocast

    dev = as_device(device, sink=sink)
    model, cfg, stored = load_model(weights, dev)
    agg = agg or cfg.get("agg", "mean")
    det = make_detector(detector or cfg["detector"])
    tau = threshold if threshold is not None else stored
    size = int(cfg["input_size"])
    per_chunk = max(1, batch_size // max(1, frames))
    pyr = pyramid_of(cfg)
    levels = pyr["scales"] if pyr else ([int(cfg["map_size"])] if cfg["target_kind"] else [])

    def prep(s):
        try:
            return _prepare_one(s, det, frames, size)
        except InputError as exc:
            if len(samples) == 1:  # the only input: a usage error (exit 2), not an item error
                raise
            return {"fatal": exc.message}

    chunks = [samples[i:i + per_chunk] for i in range(0, len(samples), per_chunk)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = [pool.submit(lambda ch: [prep(s) for s in ch], chunks[0])] if chunks else []
        for ci, chunk in enumerate(chunks):
            prepared = pending.pop(0).result()
            if ci + 1 < len(chunks):
                pending.append(pool.submit(lambda ch: [prep(s) for s in ch], chunks[ci + 1]))
            flat = [c for p in prepared if "crops" in p for c in p["crops"]]
            ext = [e for p in prepared if "crops" in p for e in p["extent"]]
            scores = np.zeros(0)
            maps = None
            if flat:
                x = torch.from_numpy(np.stack(flat)).permute(0, 3, 1, 2).to(dev)
                e = torch.tensor(ext, dtype=torch.float32, device=dev)
                out_s, out_m = [], []
                with torch.no_grad(), autocast(dev, amp):
                    for i in range(0, x.shape[0], batch_size):
                        xn, en, _ = augment(x[i:i + batch_size], None, e[i:i + batch_size], None, size=size,
                                            gen=None, train=False)
                        s, m, _ = score_crops(model, cfg, xn, en)
                        out_s.append(s.float().cpu())
                        if save_maps and m is not None:
                            out_m.append(m.float().cpu())
                scores = torch.cat(out_s).numpy()
                maps = torch.cat(out_m) if out_m else None
            j = 0
            for s, p in zip(chunk, prepared):
                rec = {"input": s.path, "kind": s.kind}
                if with_labels:
                    rec.update(s.record())
                if "fatal" in p:
                    rec.update(status="error", score=None, error=p["fatal"])
                    yield rec
                    continue
                n = len(p["crops"])
                fs = scores[j:j + n].tolist()
                fm = maps[j:j + n] if maps is not None else None
                j += n
                frames_out = [{"index": f["index"], "score": float(v), "box": f["box"]} for f, v in zip(p["frames"], fs)]
                frames_out += [{"index": e["index"], "status": "error", "error": e["error"]} for e in p["errors"]]
                frames_out.sort(key=lambda f: f["index"])
                if n:
                    score = _aggregate(fs, agg)
                    status = "error" if p["errors"] else "ok"
                    rec.update(status=status, score=score, threshold=tau,
                               decision=None if tau is None else ("bona_fide" if score >= tau else "attack"))
                    if p["errors"]:
                        rec["error"] = f"unreadable frame(s) {[e['index'] for e in p['errors']]}"
                else:
                    rec.update(status="error" if p["errors"] and not p["no_face"] else "no_face", score=None,
                               threshold=tau, decision=None)
                rec.update(frames_used=n, frames_no_face=p["no_face"], frames=frames_out)
                if save_maps and fm is not None and n:
                    rec["maps"] = _save_maps(Path(save_maps), s, fm.mean(dim=0, keepdim=True), levels)
                yield rec


def _save_maps(folder: Path, sample, m: torch.Tensor, levels: list[int]) -> list[str]:
    import torch.nn.functional as F

    from wisecli.engines.fas.loss import pool_to
    from wisecli.runtime.batch import stem_of
    from wisecli.runtime.io.images import write_image

    out = []
    for s in levels:
        p = pool_to(m, s)
        up = F.interpolate(p, size=(128, 128), mode="nearest")[0, 0].clamp(0, 1)
        path = folder / f"{stem_of(sample.path)}_level{s}.png"
        write_image(path, (up.numpy() * 255 + 0.5).astype(np.uint8))
        out.append(str(path))
    return out


def read_scores(path) -> list[dict]:
    """A JSONL score file (records with label, attack_type, subject, score)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"score file {p} not found", "give the JSONL written by `wise fas predict --jsonl` or train")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"score file {p} is not JSONL text", "one JSON record per line, UTF-8") from None
    recs = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{p.name} line {n} is not JSON", "one JSON record per line") from None
        if not isinstance(rec, dict):
            raise InputError(f"{p.name} line {n} is not a JSON record", "one JSON object per line, with a score")
        recs.append(rec)
    if not recs:
        raise InputError(f"score file {p} has no records", "give the JSONL written by `wise fas predict --jsonl`")
    return recs


def evaluate(*, scores=None, dev_scores=None, weights=None, test=None, dev=None, layout: str = "manifest",
             dev_layout: str | None = None, protocol: str = "", fold: int = 0, allow_partial: bool = False,
             out_dir=None, overwrite: bool = False, threshold: str = "dev-eer", level: str = "video",
             species: str = "type", cross: bool = False, compat: bool = False, bootstrap: int = 0,
             device: str = "auto", frames: int = 8, detector: str | None = None, batch_size: int = 128,
             seed: int = 0, amp: bool = True, sink=None) -> dict:
    """Metrics of spec §5, from score files or from a checkpoint and data (whose scores are written first)."""
    from wisecli.engines.fas import metrics as M
    from wisecli.engines.fas.data import load_dataset

    warn = sink.warn if sink else None
    if level not in ("video", "frame") or species not in ("type", "instrument"):
        raise InputError("--level is video|frame and --species type|instrument", "e.g. --level video --species type")
    if weights is None:
        if scores is None:
            raise InputError("evaluate needs --scores FILE or --weights CKPT with test data",
                             "e.g. wise fas evaluate --scores test.jsonl --dev-scores dev.jsonl")
        test_recs = read_scores(scores)
        dev_recs = read_scores(dev_scores) if dev_scores else None
    else:
        if test is None:
            raise InputError("--weights needs the test data (a data root or manifest)", "wise fas evaluate DATA --weights CKPT")
        from wisecli.runtime.io.atomic import write_text

        out = Path(out_dir) if out_dir else Path(weights).resolve().parent.parent / "eval"
        files = [out / "scores.jsonl", out / "dev_scores.jsonl"]
        clash = [f for f in files if f.exists()]
        if clash and not overwrite:
            raise InputError(f"output exists: {clash[0]}", "pass --overwrite to replace it, or -o another folder")
        tsplits = load_dataset(test, layout, protocol=protocol or None, fold=fold or None,
                               allow_partial=allow_partial, seed=seed, warn=warn)
        dsplits = tsplits if dev is None else load_dataset(dev, dev_layout or layout, protocol=protocol or None,
                                                           fold=fold or None, allow_partial=allow_partial,
                                                           seed=seed, warn=warn)
        kw = dict(device=device, frames=frames, detector=detector, batch_size=batch_size, amp=amp,
                  with_labels=True, sink=sink)
        test_recs = list(predict_samples(tsplits["test"], weights, **kw))
        write_text(files[0], "".join(json.dumps(r) + "\n" for r in test_recs))
        dev_recs = list(predict_samples(dsplits["dev"], weights, **kw)) if dsplits.get("dev") else None
        if dev_recs is not None:
            write_text(files[1], "".join(json.dumps(r) + "\n" for r in dev_recs))
    res = M.evaluate_scores(test_recs, dev_recs, threshold=threshold, level=level, species=species, cross=cross,
                            compat=compat, bootstrap=bootstrap, seed=seed, warn=warn)
    failed = sum(r.get("status", "ok") != "ok" for r in test_recs)
    if failed:
        res["n_not_scored"] = failed
    return res




# ------------------------------------------------------------------------------------------------ the batch
def collect_samples(inputs, *, layout=None, manifest=None, split=None, protocol=None, fold=None,
                    allow_partial: bool = False, pattern=None, seed: int = 0, warn=None) -> tuple[list, bool]:
    """The presentations to score and whether they carry labels: the rows of a manifest or data set layout (its
    `split`, default test; a manifest without `split`: every row), or the user's images, videos and frame folders
    (globs, folders, @list.txt, @-)."""
    from wisecli.engines.fas.data import IMAGE_EXT, VIDEO_EXT, Sample, kind_of, load_dataset

    if layout is not None and manifest is not None:
        raise InputError("give --layout or --manifest, not both", "a manifest is --manifest FILE")
    if manifest is not None or layout is not None:
        if manifest is not None:
            if inputs:
                raise InputError("--manifest takes no INPUTS", "give the files in the manifest, or drop --manifest")
            root, lay = Path(manifest), "manifest"
        else:
            if len(inputs or []) != 1:
                raise InputError("--layout takes exactly one data root", "e.g. wise fas predict data/ --layout oulu")
            root, lay = Path(inputs[0]), layout
        splits = load_dataset(root, lay, protocol=protocol or None, fold=fold or None, allow_partial=allow_partial,
                              seed=seed, warn=warn)
        if split:
            if split not in splits:
                raise InputError(f"no split {split!r}", f"splits: {', '.join(splits)}")
            return splits[split], True
        if lay == "manifest":
            return [s for v in splits.values() for s in v], True
        return splits["test"], True
    if not inputs:
        raise InputError("no inputs", "give images, videos, folders of frames, @list.txt or @-")
    from wisecli.cli.inputs import expand_inputs

    def frames_dir(p: Path) -> bool:
        return not any(q.is_dir() for q in p.iterdir()) and any(q.suffix.lower() in IMAGE_EXT for q in p.iterdir()) \
            and any(q.name.endswith("_scene.jpg") for q in p.iterdir())

    paths = expand_inputs([str(i) for i in inputs], pattern=pattern, extensions=IMAGE_EXT + VIDEO_EXT,
                          dir_is_item=frames_dir)
    return [Sample(str(p), -1, None, p.stem, "", kind_of(p)) for p in paths], False


def predict(inputs, weights, *, output=None, layout=None, manifest=None, split=None, protocol=None, fold=None,
            allow_partial: bool = False, pattern=None, shard=None, frames: int = 8, agg: str | None = None,
            detector: str | None = None, threshold: float | None = None, save_maps=None, batch_size: int = 128,
            workers: int = 2, skip_existing: bool = False, overwrite: bool = False, fail_fast: bool = False,
            device="auto", amp: bool = True, seed: int = 0, debug: bool = False, run_record=None,
            sink=None) -> list[dict]:
    """Score every presentation with one model load: the records of `runtime.batch.run_batch` (`ok`, `skipped`,
    `error`, `no_face`) in input order. Inputs are checked first, then the options and the checkpoint, all before
    any work; `-o FILE.jsonl` gets every record, `-o DIR` one `<stem>.json` per input (resumable)."""
    from wisecli.cli.inputs import apply_shard, parse_shard
    from wisecli.engines.fas.detect import make_detector
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.device import as_device
    from wisecli.runtime.io.atomic import open_atomic, refuse_existing, write_json
    from wisecli.runtime.rundir import made_dir

    warn = sink.warn if sink else None
    samples, labelled = collect_samples(inputs, layout=layout, manifest=manifest, split=split, protocol=protocol,
                                        fold=fold, allow_partial=allow_partial, pattern=pattern, seed=seed, warn=warn)
    samples = apply_shard(samples, parse_shard(shard))
    if weights is None:
        raise InputError("predict needs --weights CKPT", "e.g. --weights runs/p1/checkpoints/best.pt")
    if agg is not None and agg not in ("mean", "median"):
        raise InputError(f"--agg {agg!r} is not known", "use mean or median")
    if threshold is not None and not np.isfinite(threshold):
        raise InputError(f"--threshold {threshold} is not a finite number", "e.g. --threshold 0.5")
    if frames < 1 or batch_size < 1 or workers < 0:
        raise InputError("--frames and --batch-size must be at least 1, --workers 0 or more", "e.g. --frames 8")
    jsonl = output is not None and Path(output).suffix.lower() == ".jsonl"
    if skip_existing and (output is None or jsonl):
        raise InputError("--skip-existing needs -o DIR (one record file per input)",
                         "e.g. -o scores/ --skip-existing; -o FILE.jsonl is written whole")
    if jsonl:
        refuse_existing(output, overwrite)
    out_dir = None if output is None or jsonl else Path(output)
    if out_dir is not None:
        stems = [stem_of(s.path) for s in samples]
        dup = next((s for s in stems if stems.count(s) > 1), None)
        if dup is not None:
            raise InputError(f"two inputs share the output name {dup}.json in {out_dir}",
                             "rename one, or score them in separate runs")
    if detector is not None:
        make_detector(detector)  # refuse a bad detector before any work
    dev = as_device(device, sink=sink)
    load_model(weights, dev)  # a missing, corrupt or foreign checkpoint is refused before any work

    by_path = {s.path: s for s in samples}
    items = [Path(s.path) for s in samples]

    def outputs_for(item: Path) -> list[Path]:
        return [] if out_dir is None else [out_dir / f"{stem_of(item)}.json"]

    todo = [s for s in samples if not (skip_existing and all(p.exists() for p in outputs_for(Path(s.path))))]
    state: dict = {"gen": None, "fh": None}

    def process(item: Path) -> dict:
        if state["gen"] is None:
            state["gen"] = predict_samples(todo, weights, device=dev, frames=frames, agg=agg, detector=detector,
                                           threshold=threshold, batch_size=batch_size, workers=workers, amp=amp,
                                           save_maps=save_maps, with_labels=labelled, sink=sink)
        rec = next(state["gen"])
        assert rec["input"] == by_path[str(item)].path, (rec["input"], item)
        if rec["status"] != "ok" and warn:
            msg = rec.get("error") or ("no face found" if rec["status"] == "no_face" else rec["status"])
            warn(msg if Path(rec["input"]).name in msg else f"{rec['input']}: {msg}")
        if state["fh"] is not None:
            state["fh"].write(json.dumps(rec) + "\n")
        if rec["status"] == "ok":  # a failed input has no record file, so --skip-existing tries it again
            for out in outputs_for(item):  # written last: its presence means the input is done
                write_json(out, rec)
                rec = {**rec, "output": str(out)}
        return rec

    options = BatchOptions(out_dir=out_dir or (Path(output).parent if jsonl else Path(".")),
                           skip_existing=skip_existing, overwrite=overwrite, fail_fast=fail_fast, debug=debug)
    run_record = run_record if output is not None else None
    with made_dir(save_maps) if save_maps is not None else nullcontext():
        if not jsonl:
            return run_batch(items, process, outputs_for=outputs_for, options=options, sink=sink,
                             run_record=run_record)
        with made_dir(Path(output).parent), open_atomic(output) as fh:
            state["fh"] = fh
            if run_record is not None:
                run_record.add_output(output)
            return run_batch(items, process, outputs_for=outputs_for, options=options, sink=sink,
                             run_record=run_record)

