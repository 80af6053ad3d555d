"""The `train` verb: data → BPE → multi-view (or baseline) Transformer with the shared trainer.

Recipe (specs/translate.md §2.3, fairseq's IWSLT recipe as R-Drop runs it): AdamW β (0.9, 0.98), ε 1e-8 (the fused
kernel on CUDA and on the CPU: one update instead of a Python loop over the parameters, 8 % of a `micro` step), weight
decay 1e-4 for `iwslt` else 0; peak lr 5e-4 (`tiny` 1e-3) after a linear warm-up from 1e-7 over 4,000 steps
(`tiny` 400), then inverse square root; label smoothing 0.1; no clipping; bf16 autocast on CUDA (the
trainer's policy). One trainer "epoch" is `eval_every` updates (`TrainSpec.scheduler_interval="step"`); the run
ends after ⌈max_steps / eval_every⌉ intervals (so it may run past `max_steps` to finish an interval, our choice).
Each interval ends with `validate`: the primary view's label-smoothed loss per token and BLEU/chrF of beam
`valid_beam` decoding on at most `valid_max` validation pairs; `val_select` = BLEU − 1e-3·loss/(1+loss) (ties
in BLEU go to the lower loss; never more than 0.001 BLEU) picks best.pt. `average_last K` writes `avg.pt`, the
mean of the last K intervals' weights. The tokenizer is learned on the training pairs (both sides), stored in
every checkpoint; `--resume` reuses the stored one and refuses another kind or vocabulary size. `--compile` puts
the step through `runtime.compiled.compiled_step` with dynamic shapes (token buckets vary B and T; no CUDA graphs).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.compiled import compiled_step

from .data import TokenLoader, collate, encode_pairs, hash_split, read_pairs
from .loss import multiview_loss
from .model import PRESETS, Translator, export_view, model_config, parameter_count
from .tokenizer import learn_tokenizer, tokenizer_from_state

METHOD = "translate"
AUX_KEYS = ("aux_layer", "share", "kl_alpha", "aux_weight", "kl_mode", "aux_norm")


def recipe(cfg: dict) -> dict:
    """Fill the preset-dependent defaults (lr, warmup, eval_every, weight decay, vocabulary size)."""
    arch = cfg["arch"]
    tiny = arch in ("tiny", "micro")
    out = dict(cfg)
    out["lr"] = cfg["lr"] if cfg["lr"] is not None else (1e-3 if tiny else 5e-4)
    out["warmup"] = cfg["warmup"] if cfg["warmup"] is not None else (400 if tiny else 4000)
    out["eval_every"] = cfg["eval_every"] if cfg["eval_every"] is not None else (200 if tiny else 1000)
    out["weight_decay"] = 1e-4 if arch == "iwslt" else 0.0
    return out


def check_options(cfg: dict, given: dict) -> None:
    """§8's option errors, before any data is read: aux options with views 1, aux layer range, tokenizer."""
    if cfg["views"] not in (1, 2):
        raise InputError(f"--views must be 1 or 2, not {cfg['views']}", hint="2: multi-view, 1: the baseline")
    if cfg["views"] == 1:
        bad = [k for k in AUX_KEYS if given.get(k) is not None]
        if bad:
            flags = ", ".join("--" + k.replace("_", "-") for k in bad)
            raise InputError(f"{flags} only apply to the multi-view model, not with --views 1",
                             hint="drop them, or train with --views 2")
    n = PRESETS[cfg["arch"]]["enc_layers"]
    if cfg["aux_layer"] is not None and not 1 <= int(cfg["aux_layer"]) <= n - 1:
        raise InputError(f"--aux-layer must lie in 1..{n - 1} for --arch {cfg['arch']} ({n} encoder layers), "
                         f"not {cfg['aux_layer']}", hint=f"the default is {math.ceil(n / 2)}")
    if cfg["tokenizer"] == "sentencepiece":
        from importlib.util import find_spec

        if find_spec("sentencepiece") is None:
            raise InputError("--tokenizer sentencepiece needs the sentencepiece package",
                             hint='pip install "wisecli[mt]", or use the built-in --tokenizer bpe')
    for k in ("kl_alpha", "aux_weight"):
        if not math.isfinite(float(cfg[k])) or float(cfg[k]) < 0:
            raise InputError(f"--{k.replace('_', '-')} must be a finite number >= 0, not {cfg[k]}", hint="e.g. 1")


def lr_lambda(peak: float, warmup: int):
    """The factor of the peak rate at update s: linear from 1e-7 over `warmup`, then inverse square root."""
    def f(s: int) -> float:
        if warmup > 0 and s < warmup:
            return (1e-7 + (peak - 1e-7) * s / warmup) / peak
        return math.sqrt(max(warmup, 1) / max(s, 1))
    return f


def make_step(cfg: dict):
    """The trainer's `step(model, batch) -> (loss, metrics)`. With α = β = 0 the auxiliary terms weigh nothing and
    send no gradient, so the step runs the primary path alone (the same update at about 2/3 of the cost;
    `train_ce_aux` and `train_kl` then read 0); under DDP it keeps running both (every parameter must take part)."""
    import torch.distributed as dist

    solo = float(cfg["kl_alpha"]) == 0.0 and float(cfg["aux_weight"]) == 0.0

    def step(model, batch):
        one = solo and not (dist.is_available() and dist.is_initialized())
        logits = model(batch["src"], batch["tgt_in"], views=1 if one else None)
        return multiview_loss(logits, batch["tgt_out"], eps=cfg["label_smoothing"], alpha=cfg["kl_alpha"],
                              beta=cfg["aux_weight"], kl_mode=cfg["kl_mode"])
    return step


def validation(model_cfg: dict, tok, valid_pairs, valid_src, valid_tgt, cfg: dict):
    """The trainer's `validate(model, epoch)`: primary loss per token, BLEU, chrF, val_select."""
    from wisecli.runtime import bleu

    from .predict import beam_search

    def validate(model, epoch):
        dev = next(model.parameters()).device
        if not valid_pairs:
            return {"loss": float("nan"), "bleu": 0.0, "chrf": 0.0, "select": 0.0}
        ce = torch.zeros((), device=dev)
        ntok = torch.zeros((), device=dev)
        for i in range(0, len(valid_pairs), 64):
            b = {k: v.to(dev) for k, v in collate(valid_pairs[i:i + 64]).items()}
            logits = model(b["src"], b["tgt_in"])
            _, parts = multiview_loss(logits[:1], b["tgt_out"], eps=cfg["label_smoothing"])
            n = (b["tgt_out"] != 0).sum()
            ce += parts["ce_primary"] * n
            ntok += n
        loss = float(ce / ntok)
        c1, state = export_view(model_cfg, model.state_dict(), "primary")
        dec = Translator(c1).to(dev).eval()
        dec.load_state_dict(state)
        pairs = valid_pairs[: cfg["valid_max"]]
        hyps = []
        for i in range(0, len(pairs), 64):
            src = collate(pairs[i:i + 64])["src"].to(dev)
            hyps += [tok.decode(h[0][0]) for h in beam_search(dec, src, beam=cfg["valid_beam"])]
        refs = [valid_tgt[: len(hyps)]]
        b_ = bleu.corpus_bleu(hyps, refs)["score"]
        c_ = bleu.corpus_chrf(hyps, refs)["score"]
        return {"loss": loss, "bleu": b_, "chrf": c_, "select": b_ - 1e-3 * loss / (1 + loss)}
    return validate


def prepare(cfg: dict, data: dict, *, resume_doc: dict | None = None, sink=None) -> dict:
    """Read the pairs, split, learn (or reuse) the tokenizer, encode. Returns everything `fit` needs."""
    data = dict(data)
    valid = data.pop("valid", None)
    S, T, rec = read_pairs(**data)
    if not S:
        raise InputError("no training pairs", hint="give --src/--tgt, --tsv or --gettext")
    if valid:
        VS, VT, _ = read_pairs(**valid)
        TS, TT = S, T
    else:
        TS, TT, VS, VT = hash_split(S, T)
    if resume_doc is not None:
        tok = tokenizer_from_state(resume_doc["tokenizer"])
        stored = resume_doc["config"]["train"]
        if cfg["vocab_size"] is None:
            cfg["vocab_size"] = stored.get("vocab_size")
        if stored.get("tokenizer") != cfg["tokenizer"] or stored.get("vocab_size") != cfg["vocab_size"]:
            raise InputError("--resume with another tokenizer or vocabulary size than the run was trained with "
                             f"({stored.get('tokenizer')}, {stored.get('vocab_size')})",
                             hint="resume with the run's settings, or start a new run folder")
    else:
        if cfg["vocab_size"] is None:
            cfg["vocab_size"] = 32000 if len(TS) > 10**6 else 8000
        t0 = time.perf_counter()
        tok = learn_tokenizer(cfg["tokenizer"], TS + TT, cfg["vocab_size"])
        bpe_s = time.perf_counter() - t0
    if resume_doc is not None:
        bpe_s = 0.0
    train_pairs, dropped = encode_pairs(tok, TS, TT, cfg["max_len"])
    valid_pairs, vdropped = encode_pairs(tok, VS, VT, cfg["max_len"])
    if not train_pairs:
        raise InputError(f"no training pair is left after dropping pairs over --max-len {cfg['max_len']} "
                         f"({dropped['over_max_len']}) and empty ones ({dropped['empty']})",
                         hint="raise --max-len, or check the data")
    keep = [i for i, (s, t) in enumerate(zip(VS, VT)) if s.strip() and t.strip()
            and len(tok.encode(s)) + 1 <= cfg["max_len"] and len(tok.encode(t)) + 1 <= cfg["max_len"]]
    return {"tok": tok, "train": train_pairs, "valid": valid_pairs, "valid_src": [VS[i] for i in keep],
            "valid_tgt": [VT[i] for i in keep], "source": rec, "dropped": dropped, "valid_dropped": vdropped,
            "n_train": len(TS), "n_valid": len(VS), "bpe_seconds": bpe_s}


def run_training(data: dict, out_dir: Path | None, *, cfg: dict, given: dict, config_record: dict, device,
                 amp: bool, seed: int, resume: bool, overwrite: bool, progress: bool, sink=None, argv=None) -> dict:
    """The whole `train` verb. Returns {run_dir, steps, best_bleu, best_epoch, last, params, device, seconds}."""
    from wisecli.runtime.checkpoints import load_checkpoint, save_checkpoint
    from wisecli.runtime.device import as_device, seed_everything
    from wisecli.runtime.rundir import last_checkpoint, prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord
    from wisecli.runtime.trainer import TrainSpec, fit

    if out_dir is None:
        raise InputError("train needs a run folder", hint="pass -o RUN")
    check_options(cfg, given)
    data = dict(data)
    tgt_lang = data.pop("tgt_lang", None)
    cfg = recipe(cfg)
    if cfg["aux_layer"] is None:
        cfg["aux_layer"] = math.ceil(PRESETS[cfg["arch"]]["enc_layers"] / 2)
    dev = as_device(device, sink=sink)
    resume_doc = None
    last = last_checkpoint(out_dir) if resume else None
    if last is not None:
        resume_doc = load_checkpoint(last, method=METHOD)
    t0 = time.perf_counter()
    prep = prepare(cfg, data, resume_doc=resume_doc, sink=sink)
    run_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    seed_everything(seed)
    tok = prep["tok"]
    mc = model_config(cfg["arch"], tok.vocab_size, views=cfg["views"], aux_layer=cfg["aux_layer"],
                      share=cfg["share"], aux_norm=cfg["aux_norm"], norm=cfg["norm"],
                      max_positions=max(1024, int(1.2 * cfg["max_len"]) + 16))
    model = Translator(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.98), eps=1e-8,
                            weight_decay=cfg["weight_decay"], fused=dev.type in ("cuda", "cpu") or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg["lr"], cfg["warmup"]))
    from wisecli.runtime.trainer import _dist

    rank, world = _dist()
    loader = TokenLoader(prep["train"], cfg["max_tokens"], seed=seed, rank=rank, world=world)
    per = min(cfg["eval_every"], cfg["max_steps"])
    epochs = math.ceil(cfg["max_steps"] / per)
    data_rec = {"tgt_lang": tgt_lang}
    config = {"model": mc, "train": {k: v for k, v in cfg.items()}, "data": data_rec}
    spec = TrainSpec(epochs=epochs, run_dir=run_dir, method=METHOD, arch=cfg["arch"], config=config, amp=amp,
                     monitor="val_select", mode="max", resume=resume, progress=progress, steps_per_epoch=per,
                     scheduler_interval="step")
    averaged: list[dict] = []

    def on_epoch_end(epoch, record):
        if sink is not None:
            sink.info(f"step {epoch * per}: loss {record['train_loss']:.3f} val_bleu {record.get('val_bleu', 0):.2f}")
        k = int(cfg["average_last"])
        if k > 0:
            averaged.append({n: t.detach().float().cpu().clone() for n, t in model.state_dict().items()})
            del averaged[:-k]
            avg = {n: sum(s[n] for s in averaged) / len(averaged) for n in averaged[0]}
            save_checkpoint(run_dir / "checkpoints" / "avg.pt", method=METHOD, arch=cfg["arch"], config=config,
                            state_dict=avg, tokenizer=tok.state(), averaged=len(averaged))

    step = make_step(cfg)
    if cfg["compile"]:  # token buckets change the batch shape: dynamic shapes, no CUDA graphs
        step = compiled_step(step, dev, dynamic=True, warn=sink.warn if sink is not None else None)
    res = fit(model, opt, loader, step, spec, device=dev, scheduler=sched,
              validate=validation(mc, tok, prep["valid"], prep["valid_src"], prep["valid_tgt"], cfg),
              on_epoch_end=on_epoch_end, checkpoint_extra=lambda: {"tokenizer": tok.state()})
    seconds = time.perf_counter() - t0
    record = RunRecord("translate train", config=config_record, device=str(dev), seed=seed, argv=argv,
                       inputs=prep["source"].get("files", []))
    record.set("data", {"source": prep["source"], "train_pairs": len(prep["train"]), "valid_pairs": len(prep["valid"]),
                        "dropped": prep["dropped"], "valid_dropped": prep["valid_dropped"]})
    record.set("params", {"training": parameter_count(model),
                          "inference": parameter_count(Translator(export_view(mc, model.state_dict())[0]))})
    record.timing("train", seconds)
    record.timing("bpe", prep["bpe_seconds"])
    if rank == 0:
        record.write(run_dir)
    best = next((r for r in res.history if r["epoch"] == res.best_epoch), {})
    return {"run_dir": str(run_dir), "steps": epochs * per, "best_bleu": best.get("val_bleu"),
            "best_epoch": res.best_epoch,
            "train_pairs": len(prep["train"]), "dropped": prep["dropped"]["over_max_len"],
            "params": parameter_count(model), "device": str(dev), "seconds": seconds, "last": res.last_metrics}
