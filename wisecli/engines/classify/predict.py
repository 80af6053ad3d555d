"""`predict` and `evaluate` of `wise classify`: the model loaded once (`wisecli.nn.zoo.load_classifier`, which reads
through `runtime.checkpoints.load_checkpoint`), inputs matched to the model's channels and size, the predictive
averaged over the `--bayes` mode's samples (`bayes.py`), records and the §5 metrics document.

Choices [reconstructed]:
- predict's records: {input, label, label_index, prob, top: [{label, prob}] (top-k), entropy, mutual_info, status};
  features inputs (.csv without a header of text / .npz `X`) give one record per row, `input` = `FILE:ROW`.
- `-o FILE` writes the records as JSON lines atomically (`FILE.part-I-of-N.jsonl` under `--shard`), with `run.json`
  beside it; `--skip-existing` skips a whole existing file; unreadable images are item errors (exit 3), a lone
  unreadable input is exit 2.
- evaluate on DATA: a `builtin:NAME:PART` or a reader with its part named is evaluated whole; otherwise the test part
  when the data has one, else every row (`part` in the document says which).
- `--merge-classes A,B` adds the probability of B to A (and relabels B as A) before any metric (6/9 under rotation).
- Rotation uses `runtime.augment.rotate` (exact `rot90` at multiples of 90°, else bilinear with zero fill) on [0, 1]
  images before the normalisation; corruptions are applied on [0, 1] images with a generator seeded by `--seed`.
- OOD AUROC scores predictive entropy, OOD data positive.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

from .bayes import DEFAULT_SAMPLES, predictive, replicas
from .data import as_tensor, match_input, normalizer, to_float
from .metrics import auroc, classification_report, entropy, invariance_error, rotation_summary

METHOD = "classify"
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
FEATURE_EXT = (".csv", ".npz", ".tsv")


def load_model(weights, device):
    """(model in eval mode on device, checkpoint doc); an unfit checkpoint is an InputError."""
    from wisecli.nn.zoo import load_classifier

    if weights is None:
        raise InputError("--weights is required", hint="give a checkpoint written by 'wise classify train' (RUN or RUN/checkpoints/best.pt)")
    model, doc = load_classifier(weights, method=METHOD, device=device)
    for key in ("classes", "normalize", "input", "model"):
        if key not in doc:
            raise InputError(f"{weights}: the checkpoint lacks '{key}'", hint="give a checkpoint written by 'wise classify train'")
    return model, doc


class Runner:
    """A loaded model with its normalisation and predictive settings: `logp(x)` for raw data tensors."""

    def __init__(self, model, doc, device, samples=None, batch_size: int = 256, seed: int = 0):
        self.model, self.doc, self.device, self.seed = model, doc, device, int(seed)
        m = doc["model"]
        self.bayes, self.components = m.get("bayes", "none"), int(m.get("components", 1))
        self.samples = samples
        self.kind = doc["input"]["kind"]
        self.channels, self.size = int(doc["input"]["channels"]), int(doc["input"]["image_size"])
        self.norm = normalizer(doc["normalize"], self.kind, device)
        self.batch = int(batch_size)
        self.classes = list(doc["classes"])

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return match_input(x, self.kind, self.channels, self.size)

    @torch.no_grad()
    def logp(self, x: torch.Tensor, *, floats: bool = False, with_samples: bool = False, logits: bool = False):
        """log p̄ (N, C) of raw uint8/float data (`floats`: images already in [0, 1]). The sampling noise of a
        Bayesian model is drawn from the RNG seeded with `seed` at every call, so two calls on the same (or a
        rotated) batch share their z (the channel-wise iBNN noise commutes with rotations)."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return self._logp(x, floats=floats, with_samples=with_samples, logits=logits)

    def _logp(self, x, *, floats, with_samples, logits):
        reps = max(1, replicas(self.bayes, self.samples, self.components))
        chunk = max(1, self.batch // reps)
        outs, samples, zs = [], [], []
        for s in range(0, len(x), chunk):
            xb = x[s:s + chunk].to(self.device)
            xb = (xb - self.norm_mean()) / self.norm_std() if floats else self.norm(xb)
            if logits:
                zs.append(self.model(xb).float())
                continue
            bar, lp = predictive(self.model, xb, self.bayes, self.samples, self.components, with_samples=True)
            outs.append(bar)
            samples.append(lp)
        if logits:
            z = torch.cat(zs, -2)
            return z.mean(0) if z.ndim == 3 else z  # an ensemble's (members, N, C): the mean logit
        bar = torch.cat(outs)
        return (bar, torch.cat(samples, 1)) if with_samples else bar

    def norm_mean(self):
        m = torch.tensor(self.doc["normalize"]["mean"], device=self.device)
        return m.view(1, -1, 1, 1) if self.kind == "image" else m

    def norm_std(self):
        s = torch.tensor(self.doc["normalize"]["std"], device=self.device)
        return s.view(1, -1, 1, 1) if self.kind == "image" else s


def _read_image_tensor(path: Path) -> torch.Tensor:
    from wisecli.runtime.io.images import read_image

    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"cannot read {path}: {str(exc)[:120] or type(exc).__name__}", hint="give a .npy image") from None
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or not np.isfinite(a).all():
            raise InputError(f"{path}: a .npy image must be (H, W) or (H, W, C) finite values", hint="check the file")
        if a.dtype != np.uint8:
            a = np.clip(a * (255 if a.max() <= 1 else 1), 0, 255).astype(np.uint8)
    else:
        a = read_image(path)
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def _read_features(path: Path) -> np.ndarray:
    from wisecli.runtime.io.tables import read_array

    x = read_array(path, key="X" if path.suffix.lower() == ".npz" else None)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or not np.isfinite(x).all():
        raise InputError(f"{path}: features must be a finite 2-D table (rows, columns)", hint="check the file")
    return x


def _top(p: torch.Tensor, classes: list[str], k: int) -> list[dict]:
    vals, idx = p.topk(min(k, p.numel()))
    return [{"label": classes[int(i)], "prob": float(v)} for v, i in zip(vals, idx)]


def predict_inputs(inputs, weights, output, *, top_k: int, samples, pattern=None, shard=None, overwrite=False,
                   skip_existing=False, device="auto", batch_size: int = 256, sink=None, argv=None) -> dict:
    """The `predict` verb (see `api.predict`)."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.device import as_device, device_name
    from wisecli.runtime.batch import jsonl_output
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.rundir import made_dir
    from wisecli.runtime.runrecord import RunRecord

    paths = expand_inputs([str(i) for i in inputs], pattern=pattern, extensions=IMAGE_EXT + FEATURE_EXT)
    if weights is None:
        raise InputError("--weights is required", hint="give a checkpoint written by 'wise classify train'")
    if skip_existing and overwrite:
        raise InputError("--skip-existing and --overwrite exclude each other", hint="pick one")
    sh = parse_shard(shard)
    paths = apply_shard(paths, sh)
    if not paths:
        raise InputError("this shard has no inputs", hint="use fewer shards")
    output, skipped = jsonl_output(output, sh, skip_existing=skip_existing, overwrite=overwrite, inputs=paths,
                                   verb="classify predict", config={"weights": str(weights)}, argv=argv)
    if skipped is not None:
        return skipped
    device = as_device(device, sink=sink)
    model, doc = load_model(weights, device)
    run = Runner(model, doc, device, samples, batch_size)
    t0 = time.perf_counter()
    items: list[tuple[str, torch.Tensor | None, str | None]] = []
    for p in paths:
        suffix = p.suffix.lower()
        try:
            if suffix in FEATURE_EXT:
                if run.kind != "features":
                    raise InputError(f"{p}: a features file for an image model", hint="give images")
                x = _read_features(p)
                if x.shape[1] != run.size:
                    raise InputError(f"{p}: {x.shape[1]} feature columns, the model takes {run.size}",
                                     hint="give the columns the model was trained on")
                for r in range(len(x)):
                    items.append((f"{p}:{r}", torch.from_numpy(x[r:r + 1]), None))
            else:
                if run.kind != "image":
                    raise InputError(f"{p}: an image for a features model", hint="give .csv or .npz features")
                items.append((str(p), run.prepare(_read_image_tensor(p)), None))
        except InputError as exc:
            if len(paths) == 1:
                raise
            items.append((str(p), None, exc.message))
    good = [t for t in items if t[1] is not None]
    records = []
    if good:
        from wisecli.runtime.device import oom_guard

        x = torch.cat([t[1] for t in good])
        bar, lps = oom_guard(lambda: run.logp(x, with_samples=True), option_hint="--batch-size or --samples")
        from .bayes import mutual_info

        mi = mutual_info(lps, bar).cpu()
        ent = entropy(bar).cpu()
        probs = bar.exp().cpu()
    gi = 0
    for name, x, err in items:
        if x is None:
            records.append({"input": name, "status": "error", "error": err})
            if sink is not None:
                sink.warn(err if name in err else f"{name}: {err}")
            continue
        p = probs[gi]
        j = int(p.argmax())
        records.append({"input": name, "label": run.classes[j], "label_index": j, "prob": float(p[j]),
                        "top": _top(p, run.classes, top_k), "entropy": float(ent[gi]),
                        "mutual_info": float(mi[gi]), "status": "ok",
                        "probs": {c: float(v) for c, v in zip(run.classes, p.tolist())}})
        gi += 1
    seconds = time.perf_counter() - t0
    for r in records:
        if sink is not None:
            sink.record(r)
    summary = {"output": None if output is None else str(output), "status": "ok", "inputs": len(items),
               "errors": sum(r["status"] == "error" for r in records), "bayes": run.bayes,
               "samples": int(samples or DEFAULT_SAMPLES.get(run.bayes, 1)), "device": device_name(device),
               "seconds": seconds}
    if output is not None:
        with made_dir(output.parent):
            write_text(output, "".join(json.dumps(r) + "\n" for r in records))
            rec = RunRecord("classify predict", config={"weights": str(weights), "top_k": top_k, "samples": samples,
                                                        "batch_size": batch_size}, device=device_name(device),
                            seed=None, inputs=[str(p) for p in paths], argv=argv)
            rec.add_output(output)
            rec.timing("predict", seconds)
            rec.write(output.parent)
    summary["records"] = records
    return summary


def parse_rotate(spec: str | None) -> list[float]:
    """`START:STOP:STEP` (STOP excluded) or a comma list of degrees."""
    if not spec:
        return []
    try:
        if ":" in spec:
            a, b, s = (float(v) for v in spec.split(":"))
            if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(s)) or s <= 0 or b <= a:
                raise ValueError
            n = int(math.ceil((b - a) / s - 1e-9))
            return [a + i * s for i in range(n)]
        vals = [float(v) for v in spec.split(",") if v.strip()]
        if not vals or not all(math.isfinite(v) for v in vals):
            raise ValueError
        return vals
    except ValueError:
        raise InputError(f"--rotate {spec!r}: give START:STOP:STEP degrees or a comma list",
                         hint="e.g. --rotate 0:360:15") from None


def parse_merge(spec: str | None, classes: list[str]) -> list[tuple[int, int]]:
    """`--merge-classes A,B[;C,D]` as index pairs (names or indices), B merged into A."""
    if not spec:
        return []
    pairs = []
    for group in spec.split(";"):
        parts = [p.strip() for p in group.split(",") if p.strip()]
        if len(parts) != 2:
            raise InputError(f"--merge-classes {spec!r}: give two classes A,B", hint="e.g. --merge-classes 6,9")
        idx = []
        for p in parts:
            if p in classes:
                idx.append(classes.index(p))
            elif p.isdigit() and int(p) < len(classes):
                idx.append(int(p))
            else:
                raise InputError(f"--merge-classes: no class {p!r}", hint=f"classes: {', '.join(classes[:20])}")
        pairs.append((idx[0], idx[1]))
    return pairs


def _merge(logp: torch.Tensor, y: torch.Tensor, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    if not pairs:
        return logp, y
    p = logp.exp()
    for a, b in pairs:
        p[:, a] += p[:, b]
        p[:, b] = 0
        y = torch.where(y == b, torch.full_like(y, a), y)
    return p.clamp_min(1e-30).log(), y


def evaluate_model(data, weights, *, cfg_read: dict | None = None, arrays=None, samples=None, rotate=None,
                   corrupt=None, severity: str | int | None = None, ood=None, merge_classes=None, device="auto",
                   seed: int = 0, batch_size: int = 256, sink=None) -> dict:
    """The §5 document of a model on labelled data (a source for `read_labeled`, or `arrays` = (X, y, kind))."""
    from wisecli.runtime.device import as_device, device_name

    from .corruptions import corrupt as apply_corruption
    from .corruptions import parse_corruptions
    from .data import load_data

    angles = parse_rotate(rotate)
    try:
        names = parse_corruptions(corrupt)
    except ValueError as exc:
        raise InputError(f"--corrupt: {exc}", hint="all, or names from wise classify info") from None
    sev = _parse_severity(severity)
    cfg_read = dict(cfg_read or {})
    part = "given"
    if arrays is None:
        lab = load_data(data, cfg_read, seed)
        X, y = lab.X, lab.y
        if "test" in lab.split and len(lab.split["test"]) and len(lab.split) > 1:
            X, y, part = X[lab.split["test"]], y[lab.split["test"]], "test"
        else:
            part = "all"
        classes_data = list(lab.classes)
        kind = lab.kind
    else:
        X, y, kind = arrays
        classes_data = None
    device = as_device(device, sink=sink)
    model, doc = load_model(weights, device)
    run = Runner(model, doc, device, samples, batch_size, seed)
    classes = run.classes
    if kind != run.kind:
        raise InputError(f"{data}: {kind} data for a {run.kind} model", hint="give data of the kind the model was trained on")
    if classes_data is not None and classes_data != classes:
        if not set(classes_data) <= set(classes):
            raise InputError(f"{data}: classes {sorted(set(classes_data) - set(classes))[:5]} are not the model's",
                             hint=f"the model knows: {', '.join(classes[:20])}")
        remap = np.array([classes.index(c) for c in classes_data])
        y = remap[y]
    if names and kind != "image":
        raise InputError("--corrupt needs images", hint="drop --corrupt for features")
    if angles and kind != "image":
        raise InputError("--rotate needs images", hint="drop --rotate for features")
    pairs = parse_merge(merge_classes, classes)
    t0 = time.perf_counter()
    x = run.prepare(as_tensor(X).to(device))
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    C = len(classes)
    counts = doc.get("train_counts")
    raw = run.logp(x)
    logp, yy = _merge(raw.clone(), yt, pairs)
    report = classification_report(logp, yy, C, classes, counts)
    report.update({"part": part, "bayes": run.bayes, "samples": int(samples or DEFAULT_SAMPLES.get(run.bayes, 1))})
    if angles:
        from wisecli.runtime.augment import rotate as rot

        xf = to_float(x)
        z0 = run.logp(xf, floats=True, logits=True)
        curve = []
        for a in angles:
            xr = rot(xf, a)
            lp, yr = _merge(run.logp(xr, floats=True), yt, pairs)
            zr = run.logp(xr, floats=True, logits=True)
            curve.append({"degrees": a, "accuracy": float((lp.argmax(1) == yr).float().mean()),
                          "nll": float(-lp.gather(1, yr[:, None]).mean()), "invariance_error": invariance_error(z0, zr)})
        report["rotation"] = rotation_summary(curve)
    if names:
        xf = to_float(x)
        rows = []
        for name in names:
            for s in sev:
                g = torch.Generator(device=device).manual_seed(seed * 1000 + s)
                lp, yc = _merge(run.logp(apply_corruption(xf, name, s, g), floats=True), yt, pairs)
                r = classification_report(lp, yc, C, classes)
                rows.append({"corruption": name, "severity": s, "accuracy": r["accuracy"], "nll": r["nll"],
                             "ece_top15": r["ece_top15"], "brier": r["brier"]})
        report["corruptions"] = rows
    if ood is not None:
        o = load_data(ood, cfg_read, seed)
        if o.kind != kind:
            raise InputError(f"--ood {ood}: {o.kind} data for a {kind} model", hint="give OOD data of the same kind")
        xo = run.prepare(as_tensor(o.X).to(device))
        report["ood_auroc"] = auroc(entropy(raw), entropy(run.logp(xo)))
        report["ood_source"] = str(ood)
    report["seconds"] = time.perf_counter() - t0
    report["device"] = device_name(device)
    return report


def evaluate_predictions(pred: Path, labels: Path, *, merge_classes=None) -> dict:
    """The §5 metrics of a predict JSONL file (`probs` per record) against a labels CSV `path,label`; records are
    matched to labels by their input path, else by file name. Rows without a label are an InputError."""
    from wisecli.runtime.io.tables import read_table

    recs = []
    try:
        for i, line in enumerate(Path(pred).read_text(encoding="utf-8").splitlines()):
            if line.strip():
                r = json.loads(line)
                if r.get("status", "ok") == "ok":
                    recs.append(r)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read predictions {pred}: {type(exc).__name__}",
                         hint="give the JSONL file 'wise classify predict -o' wrote") from None
    if not recs or not all(isinstance(r.get("probs"), dict) and "input" in r for r in recs):
        raise InputError(f"{pred}: no prediction records with 'probs'", hint="give the JSONL file 'wise classify predict -o' wrote")
    table = read_table(labels)
    if "path" not in table.columns or "label" not in table.columns:
        raise InputError(f"{labels}: needs the columns path,label", hint="a CSV with a header path,label")
    pi, li = table.columns.index("path"), table.columns.index("label")
    by_path = {row[pi]: row[li] for row in table.rows}
    by_name = {Path(row[pi]).name: row[li] for row in table.rows}
    classes = list(recs[0]["probs"])
    y, probs = [], []
    for r in recs:
        lab = by_path.get(r["input"], by_name.get(Path(r["input"]).name))
        if lab is None:
            raise InputError(f"{labels}: no label for {r['input']}", hint="list every predicted input in the labels CSV")
        if lab not in classes:
            raise InputError(f"{labels}: label {lab!r} of {r['input']} is not a class of the model",
                             hint=f"classes: {', '.join(classes[:20])}")
        y.append(classes.index(lab))
        probs.append([r["probs"].get(c, 0.0) for c in classes])
    p = torch.tensor(probs, dtype=torch.float32).clamp_min(1e-30)
    logp = (p / p.sum(1, keepdim=True)).log()
    yt = torch.tensor(y)
    logp, yt = _merge(logp, yt, parse_merge(merge_classes, classes))
    doc = classification_report(logp, yt, len(classes), classes)
    doc.update({"part": "predictions", "predictions": str(pred), "labels": str(labels)})
    return doc


def _parse_severity(severity) -> list[int]:
    if severity is None or severity == "":
        return [1, 2, 3, 4, 5]
    text = str(severity)
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-"))
            vals = list(range(a, b + 1))
        else:
            vals = [int(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if not vals or any(not 1 <= v <= 5 for v in vals):
        raise InputError(f"--severity {severity!r}: give levels 1-5 (e.g. 3, 1-5 or 3,5)", hint="the default is 1-5")
    return vals
