"""The `train` verb: docstring pairs → vocabulary → COSEA with the shared trainer (specs/code-search.md §2.4).

Recipe [reconstructed]: Adam, lr 1e-3 (CoaCor's), batch 512, 30 epochs; a per-epoch LambdaLR: epoch 1 at 0.1×,
then cosine to 0 over the rest; bf16 autocast on CUDA (the trainer's policy); `TrainSpec(monitor="val_mrr",
mode="max")` with validation pool `all`. The first `warmup_epochs` epochs (default max(1, 10 % of epochs); 0 gives
the pure loss) train with `infonce`, switched by epoch in the loader's `sampler.set_epoch`, which the trainer calls.
Shuffling is seeded per epoch (the same on every rank; each rank takes every world-th batch under torchrun).
Data: `stdlib` (this interpreter's standard library), `site-packages:numpy,scipy` (installed packages, parsed
only), folders/files of Python source, or pairs JSONL (`query`, `code`; CodeSearchNet fields read). Pairs split by
top-level module (JSONL pairs: their `path`'s first part, else the code hash) with `data.module_split`: the last
10 % of the hash buckets are the test split and never trained on (`evaluate --split test` reads them), `val_split`
of them validate, the rest train. CoSQA JSON and StaQC pickles: formats.py.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import torch

from wisecli.cli.errors import InputError

from . import data as D
from .loss import contrastive, not_negative
from .model import Cosea, embed, pad_batch
from .tokenizer import Vocab, code_tokens, query_tokens

METHOD = "code-search"


def _package_files(name: str) -> tuple[Path, list[tuple[Path, str]]]:
    """(base folder, [(file, split unit)]) of an installed top-level package or module, found with
    `importlib.util.find_spec` (which locates it without running it)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise InputError(f"package not installed: {name}", hint="site-packages:NAME,... names installed packages")
    if spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
        files = [f for f in sorted(root.rglob("*.py")) if not (D.SKIP_DIRS & set(f.relative_to(root).parts[:-1]))]
        # split unit: the package's sub-module (numpy.linalg), so one package spreads over the splits
        return root.parent, [(f, f"{name}.{f.relative_to(root).parts[0].removesuffix('.py')}") for f in files]
    if spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin).parent, [(Path(spec.origin), name)]
    raise InputError(f"{name} has no Python source to read", hint="name a package installed as .py files")


def python_files(word: str) -> tuple[Path, list[tuple[Path, str]]]:
    """(base, [(file, top-level module)]) of a source word: a folder, a .py file, `stdlib`, `site-packages:a,b`."""
    if word == "stdlib":
        return D.stdlib_root(), D.stdlib_files()
    if word.startswith("site-packages:"):
        files, base = [], None
        for name in [n for n in word.split(":", 1)[1].split(",") if n]:
            base, fs = _package_files(name)
            files += fs
        if not files:
            raise InputError(f"no packages named in {word!r}", hint="e.g. site-packages:numpy,scipy")
        return base, files
    p = Path(word)
    if p.is_dir():
        files = [f for f in sorted(p.rglob("*.py")) if not (set(D.EXCLUDE) & set(f.relative_to(p).parts[:-1]))]
        if not files:
            raise InputError(f"no .py files in folder {p}", hint="give a folder of Python source or a pairs JSONL")
        return p, [(f, f.relative_to(p).parts[0].removesuffix(".py")) for f in files]
    return p.parent, [(p, p.stem)]


def _is_jsonl(word: str, fmt: str) -> bool:
    if fmt in ("pairs", "csn"):
        return True
    if fmt == "python":
        return False
    return word.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")) or word == "-"


def load_pairs(sources: list[str], fmt: str = "auto", keep_docstrings: bool = False,
               pool: list[str] | None = None) -> tuple[list[D.Pair], dict]:
    """Pairs of every source (checked to exist first), de-duplicated by normalised code; and the filter counts.
    CoSQA, StaQC and CoaCor files are read by `formats` (`fmt` "cosqa"/"staqc"/"coacor", or found by `auto`;
    CoaCor pairs keep their file order and are not de-duplicated, after the others); a CoSQA retrieval
    file's `code_idx_map.txt` codes are appended to `pool` when given (evaluate's distractors)."""
    from . import formats as F

    for w in sources:
        if w != "stdlib" and not w.startswith("site-packages:") and w != "-" and not Path(w).exists():
            raise InputError(f"input not found: {w}", hint="give folders or .py files, pairs JSONL, stdlib, "
                                                             "or site-packages:NAME,...")
    pairs: list[D.Pair] = []
    kept: list[D.Pair] = []  # CoaCor pairs: file order, never de-duplicated (the released pools stay in place)
    counts = {"functions": 0, "no_docstring": 0, "short_query": 0, "query_in_code": 0, "records": 0,
              "records_without_pair": 0}
    for w in sources:
        kind = fmt if fmt in ("cosqa", "staqc", "coacor") else None
        if fmt == "auto" and w != "-":
            kind = ("cosqa" if F.is_json_array(Path(w)) else "coacor" if F.is_coacor(w)
                    else "staqc" if F.is_pickle(w) else None)
        if kind == "coacor":
            ps, c = F.read_coacor(Path(w))
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
            kept += ps
        elif kind is not None:
            if kind == "cosqa":
                ps, c, codes = F.read_cosqa(Path(w), keep_docstrings)
                if pool is not None:
                    pool.extend(codes)
            else:
                ps, c = F.read_staqc(Path(w), keep_docstrings)
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
            pairs += ps
        elif _is_jsonl(w, fmt):
            recs = D.read_jsonl(w)
            counts["records"] += len(recs)
            for r in recs:
                qc = D.pair_of_record(r)
                if qc is None:
                    counts["records_without_pair"] += 1
                    continue
                path = str(r.get("path") or "")
                mod = path.replace("\\", "/").split("/")[0] if path else ""
                pairs.append(D.Pair(qc[0], qc[1], mod, path, int(r.get("lineno") or 0), str(r.get("func_name") or "")))
        else:
            base, files = python_files(w)
            funcs = D.read_python_files(files, strict=w not in ("stdlib",) and not w.startswith("site-packages:")
                                        and len(files) == 1, errors=[], base=base)
            ps, c = D.pairs_from_functions(funcs, keep_docstrings)
            for k in ("functions", "no_docstring", "short_query", "query_in_code"):
                counts[k] += c[k]
            pairs += ps
    pairs, dup = D.dedupe(pairs)
    pairs += kept
    counts.update(duplicates=dup, pairs=len(pairs))
    return pairs, counts


def split_pairs(pairs: list[D.Pair], val: float) -> tuple[list[D.Pair], list[D.Pair]]:
    """(train, val) by the module hash split of data.module_split (the code hash without a module): `val` of the
    buckets validate, the last 10 % are the test split, held out here for `evaluate --split test`."""
    tr, va = [], []
    for p in pairs:
        s = D.module_split(p.module or p.hash, val=val, test=0.1)
        if s == "train":
            tr.append(p)
        elif s == "val":
            va.append(p)
    return tr, va


def _h(s: str) -> int:
    return int(hashlib.sha256(s.encode()).hexdigest()[:15], 16)


def encode_pairs(pairs: list[D.Pair], vocab: Vocab, max_code: int, max_query: int) -> dict:
    """Id sequences and hashes of pairs."""
    return {"q": [vocab.encode(query_tokens(p.query, max_query)) for p in pairs],
            "c": [vocab.encode(code_tokens(p.code, max_code)) for p in pairs],
            "ch": torch.tensor([_h(p.hash) for p in pairs], dtype=torch.long),
            "qh": torch.tensor([_h(p.query.lower()) for p in pairs], dtype=torch.long)}


class PairLoader:
    """Shuffled batches of encoded pairs; `sampler.set_epoch` (called by the trainer) reshuffles and switches the
    loss from `infonce` to the chosen one after the warm-up epochs."""

    def __init__(self, enc: dict, batch: int, seed: int, loss: str, warmup_epochs: int, rank: int = 0, world: int = 1):
        self.enc, self.batch, self.seed = enc, batch, seed
        self.loss, self.warmup = loss, warmup_epochs
        self.kind = "infonce" if warmup_epochs > 0 else loss
        self.rank, self.world = rank, world
        self.sampler = self
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.kind = "infonce" if epoch <= self.warmup else self.loss

    def __len__(self) -> int:
        return max(1, math.ceil(len(self.enc["q"]) / self.batch) // self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        perm = torch.randperm(len(self.enc["q"]), generator=g).tolist()
        batches = [perm[i: i + self.batch] for i in range(0, len(perm), self.batch)]
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches = batches[:-1]
        for b in batches[self.rank::self.world][: len(self)]:
            yield {"q": pad_batch([self.enc["q"][i] for i in b]), "c": pad_batch([self.enc["c"][i] for i in b]),
                   "ch": self.enc["ch"][b], "qh": self.enc["qh"][b]}


def make_step(loader: PairLoader, cfg: dict, queue_size: int = 4096):
    """The trainer's `step(model, batch) -> (loss, metrics)`; with `negatives="queue"` the hardest negative is also
    searched among the last `queue_size` code embeddings (detached; per process, not saved in last.pt)."""
    memory: dict = {"e": None, "h": None}

    def step(model, batch):
        q, c = model(batch["q"], batch["c"])
        same = not_negative(batch["ch"], batch["qh"])
        extra = extra_same = None
        if cfg.get("negatives", "batch") == "queue" and memory["e"] is not None:
            extra = memory["e"].to(q.dtype)
            extra_same = batch["ch"][:, None] == memory["h"][None, :]
        loss = contrastive(q, c, same, loader.kind, margin=cfg["margin"], tau=cfg["tau"], symmetric=cfg["symmetric"],
                           extra=extra, extra_same=extra_same)
        if hasattr(model, "module"):
            model = model.module
        if hasattr(model, "cross_w"):  # the reranker: the positive against the bi-encoder's hardest negative
            with torch.no_grad():
                j = (q @ c.T).float().masked_fill(same, float("-inf")).argmax(1)
            pos = model.cross_score(batch["q"], batch["c"])
            neg = model.cross_score(batch["q"], batch["c"][j])
            has = ~same.all(1)
            loss = loss + torch.where(has, (cfg["margin"] - pos + neg).clamp_min(0), torch.zeros_like(pos)).mean()
        if cfg.get("negatives", "batch") == "queue":
            e = c.detach().float()
            h = batch["ch"]
            if memory["e"] is not None:
                e, h = torch.cat([e, memory["e"]])[:queue_size], torch.cat([h, memory["h"]])[:queue_size]
            memory["e"], memory["h"] = e, h
        return loss, {}
    return step


def validation(enc: dict):
    """The trainer's `validate`: MRR and R@1 with pool `all` over the validation pairs."""
    from .metrics import ranks_all, summary

    def validate(model, epoch):
        dev = next(model.parameters()).device
        if not enc["q"]:
            return {"val_mrr": 0.0, "val_r1": 0.0}
        q = embed(model.query, enc["q"], dev)
        c = embed(model.code, enc["c"], dev)
        s = summary(ranks_all(q, c, enc["ch"].to(dev)))
        return {"val_mrr": s["mrr"], "val_r1": s["r1"], "val_r10": s["r10"]}
    return validate


def lr_factor(epochs: int):
    """Epoch 1 (index 0) at 0.1×, then cosine from 1 to 0 over the remaining epochs (one epoch: 1×)."""
    def f(e: int) -> float:
        if epochs == 1:
            return 1.0
        if e == 0:
            return 0.1
        rest = max(1, epochs - 1)
        return 0.5 * (1 + math.cos(math.pi * (e - 1) / rest))
    return f


def model_config(cfg: dict, vocab: int) -> dict:
    return {"vocab": vocab, "dim": int(cfg["dim"]), "layers": int(cfg["layers"]), "pool": cfg["pool"],
            "attention": cfg.get("attention", "self"),
            "share_embeddings": bool(cfg["share_embeddings"]), "dropout": 0.1,
            "max_code_len": int(cfg["max_code_len"]), "max_query_len": int(cfg["max_query_len"]),
            "keep_docstrings": bool(cfg.get("keep_docstrings", False))}


def fit_pairs(train: list[D.Pair], val: list[D.Pair], cfg: dict, device, *, run_dir: Path | None = None,
              resume: bool = False, progress: bool = False, sink=None, vocab: Vocab | None = None):
    """Train COSEA on pairs (a run folder, or in memory with `run_dir` None). Returns (model, vocab, TrainResult)."""
    from wisecli.runtime.trainer import TrainSpec, _dist, fit

    vocab = vocab or Vocab.build([query_tokens(p.query, cfg["max_query_len"]) for p in train] +
                                 [code_tokens(p.code, cfg["max_code_len"]) for p in train],
                                 min_count=2, max_size=int(cfg["vocab_size"]))
    mc = model_config(cfg, len(vocab))
    model = Cosea(mc)
    enc = encode_pairs(train, vocab, cfg["max_code_len"], cfg["max_query_len"])
    venc = encode_pairs(val, vocab, cfg["max_code_len"], cfg["max_query_len"])
    epochs = int(cfg["epochs"])
    warm = cfg["warmup_epochs"]
    warm = max(1, round(0.1 * epochs)) if warm is None else int(warm)
    rank, world = _dist()
    loader = PairLoader(enc, int(cfg["batch"]), int(cfg["seed"]), cfg["loss"], warm, rank, world)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(epochs))
    config = {"model": mc, "train": {k: v for k, v in cfg.items() if k not in ("device",)}}
    spec = TrainSpec(epochs=epochs, run_dir=run_dir, method=METHOD, arch=f"cosea-{mc['pool']}", config=config,
                     amp=bool(cfg.get("amp", True)), monitor="val_mrr" if val else "train_loss",
                     mode="max" if val else "min", resume=resume, progress=progress, grad_clip=5.0)

    def on_epoch_end(epoch, rec):
        if sink is not None:
            sink.info(f"epoch {epoch}: loss {rec['train_loss']:.4f} ({loader.kind})"
                      + (f" val_mrr {rec['val_mrr']:.4f}" if "val_mrr" in rec else ""))

    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device(device)):
        res = fit(model, opt, loader, make_step(loader, cfg), spec, device=torch.device(device), scheduler=sched,
                  validate=validation(venc) if val else None, on_epoch_end=on_epoch_end,
                  checkpoint_extra=lambda: {"vocab": vocab.state()})
    return model, vocab, res


def run_training(sources: list[str], out_dir: Path | None, *, cfg: dict, val_sources: list[str] | None,
                 val_split: str, fmt: str, device, resume: bool, overwrite: bool, progress: bool, sink=None,
                 argv=None, config_record=None) -> dict:
    """The whole `train` verb: read and split the pairs, train, write splits.json and run.json."""
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import as_device, seed_everything
    from wisecli.runtime.io.atomic import write_json
    from wisecli.runtime.rundir import last_checkpoint, prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord

    if out_dir is None:
        raise InputError("train needs a run folder", hint="pass -o RUN")
    if not sources:
        raise InputError("no training data given", hint="give folders, .py files, pairs JSONL or stdlib")
    frac = _val_fraction(val_split)
    dev = as_device(device, sink=sink)
    t0 = time.perf_counter()
    pairs, counts = load_pairs(sources, fmt, cfg.get("keep_docstrings", False))
    if val_sources:
        train, _ = pairs, None
        val, _c = load_pairs(val_sources, fmt, cfg.get("keep_docstrings", False))
        vh = {p.hash for p in val}
        train = [p for p in train if p.hash not in vh]
    else:
        train, val = split_pairs(pairs, frac)
    if len(train) < 2:
        shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        raise InputError(f"fewer than 2 usable training pairs in {', '.join(sources)} ({len(train)}; {shown})",
                         hint="give more source with docstrings of at least 3 words, or a pairs JSONL")
    vocab = None
    last = last_checkpoint(out_dir) if resume else None
    if last is not None:
        doc = load_checkpoint(last, method=METHOD)
        vocab = Vocab(list(doc["vocab"]))
    run_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    seed_everything(int(cfg["seed"]))
    write_json(run_dir / "splits.json", {
        "rule": "top-level module hash" if not val_sources else "--val data", "val_fraction": frac,
        "train_modules": sorted({p.module for p in train}), "val_modules": sorted({p.module for p in val}),
        "train_pairs": len(train), "val_pairs": len(val), "counts": counts})
    model, vocab, res = fit_pairs(train, val, cfg, dev, run_dir=run_dir, resume=resume, progress=progress, sink=sink,
                                  vocab=vocab)
    seconds = time.perf_counter() - t0
    rec = RunRecord("code-search train", config=config_record, device=str(dev), seed=int(cfg["seed"]), argv=argv,
                    inputs=list(sources))
    rec.set("data", {"train_pairs": len(train), "val_pairs": len(val), "vocab": len(vocab), "counts": counts})
    rec.timing("train", seconds)
    rec.write(run_dir)
    return {"run_dir": str(run_dir), "train_pairs": len(train), "val_pairs": len(val), "vocab": len(vocab),
            "best_val_mrr": res.best_metric, "best_epoch": res.best_epoch, "epochs": int(cfg["epochs"]),
            "device": str(dev), "seconds": seconds}


def _val_fraction(spec: str) -> float:
    try:
        kind, frac = str(spec).split(":")
        f = float(frac)
        if kind != "module" or not 0 <= f < 1:
            raise ValueError
        return f
    except ValueError:
        raise InputError(f"--val-split must be module:F with 0 <= F < 1, not {spec!r}",
                         hint="e.g. --val-split module:0.1") from None
