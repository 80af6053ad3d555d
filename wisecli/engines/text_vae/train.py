"""The `train` verb (spec §2.1–2.2): text → vocabulary → TWR-VAE, plain VAE or LM with the shared trainer.

Recipe: Adam lr 1e-4, eps 1e-6, coupled weight decay 1e-5, no clipping, batch 64, sum-reduced loss (the
reference's; its Adam settings assume it). **Ours:** `runtime.trainer.fit` for at most `epochs` (200) epochs,
validation every epoch, best.pt on `val_nll_elbo` (proper ELBO NLL on the validation set, 10 samples),
`patience` 10 epochs of early stopping; validation also logs `val_ppl_elbo`, `val_kl`, `val_au`, `val_mi` every
epoch (collapse is seen while it happens). `train_loss` is the batch's summed loss averaged over batches;
`train_recon`, `train_kl`, `train_kl_twr` are per sentence. The `vae` KL weight β rises linearly from
`kl_start` to 1 over `anneal_epochs` epochs, per step from the global step (epoch − 1)·steps + i, the epoch
coming from the loader's `set_epoch` (resume-safe). The vocabulary lives in every checkpoint; `--resume`
reuses it and refuses a run whose stored vocabulary or model differs from the options given.
`task="dialogue"` goes to `run_dialogue_training` (spec §2.3, the model in `dialogue.py`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from wisecli.cli.errors import InputError

from . import data as D
from .loss import beta_at, objective
from .metrics import evaluate
from .model import TextVAE, model_config, parameter_count

METHOD = "text-vae"
MODEL_KEYS = ("model", "emb", "hidden", "z_dim", "rnn", "dropout", "z_mode")


def make_step(cfg: dict, loader=None, steps_per_epoch: int = 1):
    """The trainer's `step(model, batch)`; the β schedule from the loader's epoch and a step counter."""
    state = {"epoch": None, "i": 0}
    anneal = int(cfg.get("anneal_epochs", 10)) * steps_per_epoch

    def step(model, batch):
        ep = getattr(getattr(loader, "sampler", None), "epoch", 1)
        if state["epoch"] != ep:
            state.update(epoch=ep, i=0)
        g = (ep - 1) * steps_per_epoch + state["i"]
        state["i"] += 1
        beta = beta_at(g, float(cfg.get("kl_start", 0.1)), anneal)
        net = getattr(model, "module", model)
        loss, m = objective(net, batch["x"], batch["lengths"], beta=beta, kl_scope=cfg.get("kl_scope") or "all")
        return loss, {**m, "beta": torch.tensor(beta)}
    return step


def train_in_memory(seqs: list[list[int]], mc: dict, *, steps: int, batch_size: int = 64, lr: float = 1e-4,
                    kl_start: float = 0.1, anneal_steps: int = 0, kl_scope: str = "all", seed: int = 1,
                    device=torch.device("cpu")) -> TextVAE:
    """Train a model on encoded sentences for `steps` updates without a run folder (demo, gates, benchmark)."""
    torch.manual_seed(seed)
    model = TextVAE(mc).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-6, weight_decay=1e-5)
    loader = D.SentenceLoader(seqs, batch_size, seed=seed)
    done, epoch = 0, 1
    model.train()
    while done < steps:
        loader.sampler.set_epoch(epoch)
        for b in loader:
            x, L = b["x"].to(device), b["lengths"].to(device)
            loss, _ = objective(model, x, L, beta=beta_at(done, kl_start, anneal_steps), kl_scope=kl_scope)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done >= steps:
                break
        epoch += 1
    model.eval()
    return model


def check_options(cfg: dict, given: dict) -> None:
    """§8's option conflicts, before any data is read."""
    task, fmt = cfg.get("task", "lm"), cfg.get("format", "lines")
    if task == "lm" and fmt != "lines":
        raise InputError(f"--format {fmt} is a dialogue format", hint="add --task dialogue, or use --format lines")
    if task == "dialogue":
        if fmt == "lines":
            raise InputError("--task dialogue needs a dialogue format",
                             hint="--format dailydialog, swda-jsonl or jsonl")
        if cfg["model"] == "lm":
            raise InputError("--task dialogue trains --model twr or vae (the CVAE), not lm",
                             hint="drop --model, or use --model vae")
        for k in ("z_mode", "kl_scope", "rnn", "tokenize"):
            if given.get(k) is not None:
                raise InputError(f"--{k.replace('_', '-')} does not apply to --task dialogue",
                                 hint="the dialogue model is fixed by spec §2.3: drop the option")
    if cfg["model"] == "vae" and given.get("z_mode") not in (None, "last"):
        raise InputError(f"--z-mode {given['z_mode']} needs the per-step latents of --model twr",
                         hint="the plain VAE decodes the last state: drop --z-mode, or use --model twr")
    if cfg["model"] != "twr" and given.get("kl_scope") is not None:
        raise InputError(f"--kl-scope only applies to --model twr, not {cfg['model']}",
                         hint="drop --kl-scope, or train --model twr")
    if not 0 <= float(cfg["dropout"]) < 1:
        raise InputError(f"--dropout must lie in [0, 1), not {cfg['dropout']}", hint="the default is 0.5")
    if not 0 <= float(cfg["kl_start"]) <= 1:
        raise InputError(f"--kl-start must lie in [0, 1], not {cfg['kl_start']}", hint="the default is 0.1")


def run_training(train_file, out_dir, *, valid_file=None, cfg: dict, given: dict, config_record: dict, device,
                 amp: bool, seed: int, resume: bool, overwrite: bool, progress: bool, sink=None, argv=None) -> dict:
    """The whole `train` verb. Returns {run_dir, epochs, best_epoch, best_val_nll_elbo, stopped_early, ...}."""
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import as_device, seed_everything
    from wisecli.runtime.rundir import last_checkpoint, prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord
    from wisecli.runtime.trainer import TrainSpec, _dist, fit

    if out_dir is None:
        raise InputError("train needs a run folder", hint="pass -o RUN")
    if cfg.get("task") == "dialogue":
        return run_dialogue_training(train_file, out_dir, valid_file=valid_file, cfg=cfg, given=given,
                                     config_record=config_record, device=device, amp=amp, seed=seed, resume=resume,
                                     overwrite=overwrite, progress=progress, sink=sink, argv=argv)
    lines = D.read_sentences(train_file, encoding=cfg["encoding"])
    vlines = D.read_sentences(valid_file, encoding=cfg["encoding"]) if valid_file is not None else None
    check_options(cfg, given)
    dev = as_device(device, sink=sink)
    if vlines is None:
        lines, vlines = D.hash_valid(lines, 5.0)
    how = cfg["tokenize"]
    resume_doc = None
    last = last_checkpoint(out_dir) if resume else None
    if last is not None:
        resume_doc = load_checkpoint(last, method=METHOD)
        vocab = D.Vocab.from_state(resume_doc["vocab"])
        stored = resume_doc["config"]["model"]
        want = {k: cfg[k] for k in MODEL_KEYS}
        if {k: stored.get(k) for k in MODEL_KEYS} != want or stored.get("vocab") != len(vocab):
            raise InputError(f"--resume with other model settings than {last} was trained with",
                             hint="resume with the run's settings, or start a new run folder")
        new = D.Vocab.build([D.tokenize(s, how) for s in lines if len(D.tokenize(s, how)) <= cfg["max_len"]],
                            min_count=int(cfg["min_count"]), max_vocab=cfg["max_vocab"])
        if new.itos != vocab.itos:
            raise InputError("--resume with training text whose vocabulary differs from the run's",
                             hint="resume on the same training file and --tokenize/--min-count/--max-vocab")
    else:
        toks = [D.tokenize(s, how) for s in lines]
        vocab = D.Vocab.build([t for t in toks if 0 < len(t) <= cfg["max_len"]], min_count=int(cfg["min_count"]),
                              max_vocab=cfg["max_vocab"])
    seqs, dropped = D.encode_all(vocab, lines, how=how, max_len=int(cfg["max_len"]))
    vseqs, vdropped = D.encode_all(vocab, vlines, how=how, max_len=int(cfg["max_len"]))
    if not seqs or not vseqs:
        which = "training" if not seqs else "validation"
        raise InputError(f"no {which} sentence is left after dropping {dropped if not seqs else vdropped} over "
                         f"--max-len {cfg['max_len']} words", hint="raise --max-len, or check the data")
    run_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    seed_everything(seed)
    mc = model_config(len(vocab), **{k: cfg[k] for k in MODEL_KEYS})
    model = TextVAE(mc)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]), eps=1e-6, weight_decay=1e-5,
                           fused=True if dev.type == "cuda" else None)
    rank, world = _dist()
    loader = D.SentenceLoader(seqs, int(cfg["batch_size"]), seed=seed, rank=rank, world=world)
    config = {"model": mc, "train": {k: v for k, v in cfg.items()}}
    spec = TrainSpec(epochs=int(cfg["epochs"]), run_dir=run_dir, method=METHOD, arch=cfg["model"], config=config,
                     amp=amp, monitor="val_nll_elbo", mode="min", resume=resume, progress=progress,
                     patience=int(cfg["patience"]) if cfg["patience"] else None)

    def validate(m, epoch):
        r = evaluate(m, vseqs, elbo_samples=10, batch_size=int(cfg["batch_size"]), seed=seed, with_iw=False)
        return {"nll_elbo": r["nll_elbo"], "ppl_elbo": r["ppl_elbo"], "kl": r["kl"], "au": r["au"], "mi": r["mi"]}

    def on_epoch_end(epoch, rec):
        if sink is not None:
            sink.info(f"epoch {epoch}: loss {rec['train_loss']:.2f} val_nll_elbo {rec['val_nll_elbo']:.3f} "
                      f"kl {rec['val_kl']:.3f} au {rec['val_au']:.0f}")

    t0 = time.perf_counter()
    res = fit(model, opt, loader, make_step(cfg, loader, len(loader)), spec, device=dev, validate=validate,
              on_epoch_end=on_epoch_end, checkpoint_extra=lambda: {"vocab": vocab.state()})
    seconds = time.perf_counter() - t0
    record = RunRecord("text-vae train", config=config_record, device=str(dev), seed=seed, argv=argv,
                       inputs=[str(p) for p in (train_file, valid_file) if p is not None])
    record.set("data", {"train_sentences": len(seqs), "valid_sentences": len(vseqs), "dropped_over_max_len": dropped,
                        "valid_dropped": vdropped, "vocab": len(vocab)})
    record.timing("train", seconds)
    if rank == 0:
        record.write(run_dir)
    return {"run_dir": str(run_dir), "model": cfg["model"], "epochs": len(res.history), "best_epoch": res.best_epoch,
            "best_val_nll_elbo": res.best_metric, "stopped_early": res.stopped_early, "vocab": len(vocab),
            "train_sentences": len(seqs), "dropped": dropped, "params": parameter_count(model), "device": str(dev),
            "seconds": seconds, "last": res.last_metrics}


DIALOGUE_DEFAULTS = {"emb": 200, "hidden": 300, "z_dim": 200, "batch_size": 96, "max_vocab": 10000}


def run_dialogue_training(train_file, out_dir, *, valid_file=None, cfg: dict, given: dict, config_record: dict,
                          device, amp: bool, seed: int, resume: bool, overwrite: bool, progress: bool, sink=None,
                          argv=None) -> dict:
    """`train --task dialogue` (spec §2.3; `dialogue.py`): E 200, H 300 (utterance GRU per direction and context
    GRU), z 200, batch 96, vocabulary 10k unless given; the other settings as the LM's (Adam lr 1e-4, eps 1e-6,
    wd 1e-5; `vae` anneals from kl_start over anneal_epochs). **Ours:** best.pt on the validation ELBO NLL
    (the reference evaluates the test set every epoch); validation is a 5 % hash split of the dialogue examples
    unless `valid_file` is given."""
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.device import as_device, seed_everything
    from wisecli.runtime.rundir import last_checkpoint, prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord
    from wisecli.runtime.trainer import TrainSpec, _dist, fit

    from . import dialogue as G

    for k, v in DIALOGUE_DEFAULTS.items():
        if given.get(k) is None:
            cfg[k] = v
    check_options(cfg, given)
    enc = cfg["encoding"]
    ex = G.read_dialogues(train_file, cfg["format"], encoding=enc)
    if valid_file is not None:
        vex = G.read_dialogues(valid_file, cfg["format"], encoding=enc)
    else:
        keys = [" ||| ".join(e.context + [e.response]) for e in ex]
        vex = [e for e, k in zip(ex, keys) if D.split_of(k) == "valid"]
        ex = [e for e, k in zip(ex, keys) if D.split_of(k) != "valid"]
        if not ex or not vex:
            raise InputError(f"{train_file}: too few dialogue examples ({len(ex) + len(vex)}) for a 5 % validation "
                             "split", hint="give more dialogues, or --valid FILE")
    dev = as_device(device, sink=sink)
    vocab = G.build_vocab(ex, max_vocab=cfg["max_vocab"], min_count=int(cfg["min_count"]))
    mc = G.dialogue_config(len(vocab), model=cfg["model"], emb=cfg["emb"], utt_hidden=cfg["hidden"],
                           ctx_hidden=cfg["hidden"], z_dim=cfg["z_dim"], dropout=cfg["dropout"])
    if resume:
        last = last_checkpoint(out_dir)
        if last is not None:
            doc = load_checkpoint(last, method=METHOD)
            if doc["config"]["model"] != mc or D.Vocab.from_state(doc["vocab"]).itos != vocab.itos:
                raise InputError(f"--resume with other model settings or data than {last} was trained with",
                                 hint="resume with the run's settings and training file, or start a new run folder")
    run_dir = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    seed_everything(seed)
    model = G.DialogTWR(mc)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]), eps=1e-6, weight_decay=1e-5,
                           fused=True if dev.type == "cuda" else None)
    rank, world = _dist()
    loader = G.DialogueLoader(ex, vocab, int(cfg["batch_size"]), seed=seed, rank=rank, world=world)
    config = {"model": mc, "train": dict(cfg)}
    spec = TrainSpec(epochs=int(cfg["epochs"]), run_dir=run_dir, method=METHOD, arch=cfg["model"], config=config,
                     amp=amp, monitor="val_nll_elbo", mode="min", resume=resume, progress=progress,
                     patience=int(cfg["patience"]) if cfg["patience"] else None)
    state = {"epoch": None, "i": 0}
    anneal = int(cfg["anneal_epochs"]) * len(loader)

    def step(m, batch):
        ep = loader.sampler.epoch
        if state["epoch"] != ep:
            state.update(epoch=ep, i=0)
        beta = beta_at((ep - 1) * len(loader) + state["i"], float(cfg["kl_start"]), anneal)
        state["i"] += 1
        loss, met = G.dialogue_objective(getattr(m, "module", m), batch, beta=beta)
        return loss, {**met, "beta": torch.tensor(beta)}

    def validate(m, epoch):
        r = G.elbo_eval(m, vocab, vex, elbo_samples=10, batch_size=int(cfg["batch_size"]), seed=seed)
        return {k: r[k] for k in ("nll_elbo", "ppl_elbo", "kl", "kl_twr")}

    t0 = time.perf_counter()
    res = fit(model, opt, loader, step, spec, device=dev, validate=validate,
              checkpoint_extra=lambda: {"vocab": vocab.state()})
    seconds = time.perf_counter() - t0
    record = RunRecord("text-vae train", config=config_record, device=str(dev), seed=seed, argv=argv,
                       inputs=[str(p) for p in (train_file, valid_file) if p is not None])
    record.set("data", {"train_examples": len(ex), "valid_examples": len(vex), "vocab": len(vocab)})
    record.timing("train", seconds)
    if rank == 0:
        record.write(run_dir)
    return {"run_dir": str(run_dir), "task": "dialogue", "model": cfg["model"], "epochs": len(res.history),
            "best_epoch": res.best_epoch, "best_val_nll_elbo": res.best_metric, "stopped_early": res.stopped_early,
            "vocab": len(vocab), "train_examples": len(ex), "params": sum(p.numel() for p in model.parameters()),
            "device": str(dev), "seconds": seconds, "last": res.last_metrics}
