"""The Python API of `wise text-vae` (the command calls only these): train, predict, evaluate, demo, info,
benchmark, and the `DEFAULTS` of every verb. TWR-VAE (Li, Li, Chen, Lin, COLING 2020, arXiv 2011.01136): a
Gaussian latent at every encoder timestep, all of them regularised, against posterior collapse; the KL-annealed
plain VAE (`model="vae"`) is the collapsing baseline and `model="lm"` the exact-NLL language model.

    from wisecli.engines.text_vae import api
    api.train("train.txt", "runs/twr", valid="valid.txt", model="twr")
    api.evaluate("test.txt", weights="runs/twr", metrics="both")["nll_iw"]
    api.predict(["-"], weights="runs/twr", mode="reconstruct")

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`).

Choices where the spec is silent or that deviate from the reference (also in `info`): packed sequences;
R_TWR averaged over each sentence's own positions; the proper metrics (ELBO, IW-NLL, whole-set MI, AU) by
default and the reference's numbers only with `metrics="as-coded"|"both"`, labelled "not a bound"; best.pt
by validation ELBO NLL; early stopping after `patience` epochs. Not built in this version (refused with a
hint): `--embeddings` as an initialisation (it gives the dialogue embedding metrics only).

Dialogue (`task="dialogue"`, `format` dailydialog | swda-jsonl | jsonl; `dialogue.py`): context encoder,
per-position recognition/prior, TWR = mean KL(q_t ‖ p_t) over the context's own turns, GRU response decoder;
`predict(mode="respond")`; BLEU with NLTK smoothing method 3 (as-coded: method 7), distinct-n. Dialogue
defaults when not given: emb 200, hidden 300, z_dim 200, batch_size 96, max_vocab 10000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "text-vae"

DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"task": "lm", "format": "lines", "model": "twr", "z_mode": "last", "kl_scope": "all", "z_dim": 32,
              "emb": 512, "hidden": 256, "rnn": "lstm", "dropout": 0.5, "lr": 1e-4, "batch_size": 64,
              "epochs": 200, "patience": 10, "kl_start": 0.1, "anneal_epochs": 10, "tokenize": "reference",
              "min_count": 1, "max_vocab": None, "max_len": 100, "encoding": "utf-8", "seed": 999,
              "device": "auto", "amp": True},
    "predict": {"mode": "reconstruct", "n": 20, "decode": "greedy", "beam": 5, "temperature": 1.0, "z": "mean",
                "steps": 8, "n_samples": 10,
                "batch_size": 256, "encoding": "utf-8", "seed": 1, "device": "auto"},
    "evaluate": {"metrics": "proper", "iw_samples": 500, "iw_chunk": 100, "elbo_samples": 10, "au_delta": 0.01,
                 "batch_size": 64, "n_samples": 10, "encoding": "utf-8", "seed": 1, "device": "auto"},
    "demo": {"task": "lm", "device": "auto", "corpus": None, "steps": 1000},
    "info": {},
    "benchmark": {"device": "auto"},
}
_CHOICES = {"task": ("lm", "dialogue"), "format": ("lines", "dailydialog", "swda-jsonl", "jsonl"),
            "model": ("twr", "vae", "lm"), "z_mode": ("last", "mean", "sum"),
            "kl_scope": ("all", "last25", "last50", "last75", "last1"), "rnn": ("lstm", "gru"),
            "tokenize": ("reference", "whitespace"), "mode": ("sample", "reconstruct", "encode", "interpolate", "respond"),
            "decode": ("greedy", "sample", "beam"), "z": ("mean", "sample"), "metrics": ("proper", "as-coded", "both"),
            "corpus": ("wordnet", "gettext", "pydoc")}
_POSITIVE = ("z_dim", "emb", "hidden", "lr", "batch_size", "epochs", "min_count", "max_vocab", "max_len", "n", "beam",
             "temperature", "steps", "n_samples", "iw_samples", "iw_chunk", "elbo_samples", "au_delta")
_NOT_NEGATIVE = ("dropout", "patience", "kl_start", "anneal_epochs", "seed")
_CAPS = {"z_dim": 4096, "emb": 65536, "hidden": 65536, "batch_size": 2**20, "epochs": 10**6, "max_len": 10**5,
         "n": 10**7, "steps": 10**5, "n_samples": 10**4, "iw_samples": 10**7, "iw_chunk": 10**7, "elbo_samples": 10**5,
         "max_vocab": 10**8, "min_count": 10**9, "beam": 256}


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DEFAULTS[verb] < --config < WISE_* < --set < the given values, checked (exit 2 on a bad value)."""
    from wisecli.cli.config import check_settings, resolve
    from wisecli.cli.errors import InputError

    res = resolve(DEFAULTS[verb], flags=flags)
    v = dict(res.values)
    check_settings(v, DEFAULTS[verb], choices=_CHOICES, positive=_POSITIVE, not_negative=_NOT_NEGATIVE, caps=_CAPS)
    if v.get("encoding") is not None:
        import codecs

        try:
            codecs.lookup(str(v["encoding"]))
        except LookupError:
            raise InputError(f"unknown text encoding: {v['encoding']!r}", hint="e.g. utf-8, latin-1") from None
    return v, res


def train(train_file: str | Path, out_dir: str | Path | None = None, *, valid: str | Path | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool = True, sink=None, argv=None,
          **settings: Any) -> dict:
    """Train TWR-VAE (`model="twr"`), the annealed VAE (`"vae"`) or the LM (`"lm"`) on `train_file` (one sentence
    a line; `-` stdin) into the run folder `out_dir`. `valid`: a validation file (default: a 5 % hash split).
    Settings (`DEFAULTS["train"]`): task "lm", format "lines", z_mode "last", kl_scope "all", z_dim 32, emb 512,
    hidden 256, rnn "lstm", dropout 0.5, lr 1e-4, batch_size 64, epochs 200, patience 10 (0: off), kl_start 0.1,
    anneal_epochs 10, tokenize "reference", min_count 1, max_vocab None, max_len 100, encoding "utf-8", seed
    999, device "auto", amp True. Writes config.json, metrics.jsonl, checkpoints/last.pt|best.pt, run.json;
    returns {run_dir, model, epochs, best_epoch, best_val_nll_elbo, stopped_early, vocab, ...}."""
    from .train import run_training

    given = dict(settings)
    v, res = _resolve("train", settings)
    run = {k: v.pop(k) for k in ("device", "amp", "seed")}
    for k in ("z_dim", "emb", "hidden", "batch_size", "epochs", "patience", "anneal_epochs", "min_count", "max_len"):
        v[k] = int(v[k])
    if v["max_vocab"] is not None:
        v["max_vocab"] = int(v["max_vocab"])
    return run_training(train_file, out_dir, valid_file=valid, cfg=v, given=given, config_record=res.as_record(),
                        device=run["device"], amp=run["amp"], seed=int(run["seed"]), resume=resume,
                        overwrite=overwrite, progress=progress, sink=sink, argv=argv)


def predict(inputs: list[str | Path] | None = None, weights: str | Path | None = None,
            out_dir: str | Path | None = None, *, mode: str | None = None, n: int | None = None,
            decode: str | None = None, beam: int | None = None, temperature: float | None = None,
            z: str | None = None,
            interpolate: list[str] | None = None, steps: int | None = None, npy: str | Path | None = None,
            batch_size: int | None = None, encoding: str | None = None, seed: int | None = None,
            overwrite: bool = False, skip_existing: bool = False, device=None, sink=None, jsonl: bool = False,
            argv=None, n_samples: int | None = None) -> dict:
    """Apply a trained model (`weights`: a run folder or checkpoint) once loaded: `mode` "sample" (`n` from the
    prior), "reconstruct" (each input line, z = μ or `z="sample"`), "encode" ({line, text, mu, logvar, kl}; `npy`
    writes the μ matrix), "interpolate" (`interpolate=[A, B]`, `steps` points); dialogue models: "respond"
    (JSONL {context, floors?} records in, `n_samples` (10) responses per context out: {line, context, responses}). Inputs: text files or `-`
    (stdin); with `out_dir` one output file per input (atomic). Defaults: mode "reconstruct", n 20, decode
    "greedy" ("sample", "beam"), beam 5, temperature 1, z "mean", steps 8, batch_size 256, encoding "utf-8",
    seed 1, device "auto".
    Returns {records, lines, errors, seconds, device}."""
    from .predict import run_predict

    v, _ = _resolve("predict", {"mode": mode, "n": n, "decode": decode, "beam": beam, "temperature": temperature,
                                "z": z,
                                "steps": steps, "n_samples": n_samples, "batch_size": batch_size, "encoding": encoding, "seed": seed,
                                "device": device})
    return run_predict([str(i) for i in inputs or []], weights, mode=v["mode"], out_dir=out_dir, n=int(v["n"]),
                       decode_how=v["decode"], beam=int(v["beam"]), temperature=float(v["temperature"]), z=v["z"],
                       interpolate=interpolate, steps=int(v["steps"]), npy=npy, encoding=v["encoding"],
                       batch_size=int(v["batch_size"]), seed=int(v["seed"]), overwrite=overwrite,
                       skip_existing=skip_existing, device=v["device"], sink=sink, jsonl=jsonl, argv=argv,
                       n_samples=int(v["n_samples"]))


def evaluate(test: str | Path, weights: str | Path | None = None, *, metrics: str | None = None,
             iw_samples: int | None = None, iw_chunk: int | None = None, elbo_samples: int | None = None,
             au_delta: float | None = None, batch_size: int | None = None, encoding: str | None = None,
             seed: int | None = None, device=None, sink=None, n_samples: int | None = None,
             embeddings: str | Path | None = None) -> dict:
    """§5's metrics of `weights` on the `test` file: {n_sentences, n_predicted_tokens, nll_elbo, nll_iw, ppl_elbo,
    ppl_iw, recon, kl, kl_twr, mi, au, au_var, unk_rate[, as_coded: {nll, ppl, kl, mi, label}]}. Defaults:
    metrics "proper" ("as-coded", "both"), iw_samples 500, iw_chunk 100, elbo_samples 10, au_delta 0.01,
    batch_size 64, encoding "utf-8", seed 1, device "auto". A dialogue model (`train --task dialogue`) reads TEST
    in its training format and returns {n_examples, nll_elbo, ppl_elbo, recon, kl, kl_twr, bleu{1-4}_{recall,
    precision,f1}, distinct{1,2}[_intra|_inter], avg_len[, as_coded]} with `n_samples` (10) prior samples per
    context; `embeddings` (a word2vec/GloVe text file) adds emb_{average,extrema,greedy}_{recall,precision}."""
    from .predict import run_evaluate

    v, _ = _resolve("evaluate", {"metrics": metrics, "iw_samples": iw_samples, "iw_chunk": iw_chunk,
                                 "elbo_samples": elbo_samples, "au_delta": au_delta, "batch_size": batch_size,
                                 "n_samples": n_samples,
                                 "encoding": encoding, "seed": seed, "device": device})
    return run_evaluate(test, weights, metrics=v["metrics"], iw_samples=int(v["iw_samples"]),
                        iw_chunk=int(v["iw_chunk"]), elbo_samples=int(v["elbo_samples"]),
                        au_delta=float(v["au_delta"]), seed=int(v["seed"]), batch_size=int(v["batch_size"]),
                        encoding=v["encoding"], device=v["device"], sink=sink, n_samples=int(v["n_samples"]),
                        embeddings=embeddings)


def demo(quick: bool = False, device=None, *, corpus: str | None = None, steps: int | None = None, sink=None,
         task: str | None = None):
    """TWR-VAE beside the annealed VAE for an equal step budget, proper metrics side by side, the TWR as-coded row
    labelled "not a bound", samples and reconstructions. `quick`: synthetic sentences, E = H = 64, z 8, 400
    updates each (≤ 15 s). Full: the first offline corpus found (or `corpus`), E 128, H 256, z 32, `steps`
    updates each. Defaults: device "auto", corpus None, steps 1000. Returns a DemoResult whose headline is
    {kl_twr, kl_vae, au_twr, au_vae, nll_iw_twr} (gates in demo.py). `task="dialogue"`: TWR beside the annealed
    CVAE on synthetic dialogues (quick: E = H = 32, z 8, 80 updates each; full: E = H = 64, `steps` updates
    each), headline {coverage_twr, coverage_vae, kl_twr, kl_vae, bleu2_recall_twr}, gate: TWR's mode coverage
    above the CVAE's (`demo.run_dialogue_demo`)."""
    from wisecli.cli.errors import InputError

    from .demo import run_demo

    v, _ = _resolve("demo", {"task": task, "device": device, "corpus": corpus, "steps": steps})
    if v["task"] == "dialogue" and v["corpus"] is not None:
        raise InputError("--corpus picks a text corpus for the language-model demo",
                         hint="the dialogue demo uses synthetic dialogues: drop --corpus")
    return run_demo(quick=quick, device=v["device"], corpus=v["corpus"], steps=int(v["steps"]), sink=sink,
                    task=v["task"])


def info(weights: str | Path | None = None) -> dict:
    """Formats, defaults, capabilities, the offline corpora found with counts, and the deviations from the
    reference (§2.4); with `weights` the model's configuration, vocabulary size and metrics."""
    from wisecli.runtime import demo_weights

    from .data import corpora_found
    from .demo import WEIGHTS

    _resolve("info", {})
    doc = {"method": METHOD,
           "paper": "Li, Li, Chen, Lin: Improving Variational Autoencoder for Text Modelling with Timestep-Wise "
                    "Regularisation, COLING 2020 (arXiv 2011.01136); code ruizheliUOA/TWR-VAE",
           "defaults": {k: DEFAULTS[k] for k in ("train", "predict", "evaluate")},
           "reads": ["text, one sentence a line (.gz, stdin '-')",
                     "dialogues: DailyDialog (__eou__), SwDA JSONL (DialogWAE), JSONL {context, response, floors?}",
                     "respond: JSONL {context, floors?}", "checkpoints of 'wise text-vae train'"],
           "writes": ["run folder (config.json, metrics.jsonl, checkpoints/*.pt, run.json)",
                      "stdout lines / JSONL", "-o DIR: <stem>.txt|.jsonl per input", "--npy μ matrix"],
           "capabilities": {"models": ["twr", "vae", "lm"], "tasks": ["lm", "dialogue"],
                            "formats": ["lines", "dailydialog", "swda-jsonl", "jsonl"], "decode": ["greedy", "sample", "beam"],
                            "metrics": ["ELBO", "IW-NLL", "PPL", "KL", "KL_TWR", "MI (whole set)", "AU",
                                        "as-coded (labelled)"], "ddp": "torchrun",
                            "dialogue_metrics": ["BLEU-1..4 recall/precision/F1 (NLTK method 3)",
                                                 "distinct-1/2 (corpus, intra, inter)", "avg_len",
                                                 "as-coded BLEU (method 7, labelled)",
                                                 "--embeddings: embedding average/extrema/greedy"],
                            "demo_tasks": ["lm", "dialogue (synthetic dialogues, mode coverage)"],
                            "benchmark_cases": ["train sentences", "IW-NLL", "sampling", "dialogue train examples"],
                            "not_built": ["--embeddings as initialisation (metrics only)",
                                          "dialogue claim gate (a finding: see tests/text_vae/test_text_vae_slow.py)"]},
           "corpora": corpora_found(),
           "demo_weights": demo_weights.describe(WEIGHTS),
           "deviations": [
               "packed sequences (the reference runs padded batches unpacked)",
               "R_TWR = mean KL_t over each sentence's own positions (the reference divides by the padded length)",
               "proper metrics by default: ELBO with 10 samples, IW-NLL (K 500), PPL over n + 1 tokens, MI over the "
               "whole set, AU; the reference's 'NLL' is recon at z = mu plus the time-averaged KL (not a bound), its "
               "PPL counts n + 2 tokens, its MI is per batch of 64 (capped at log 64)",
               "best.pt chosen on validation ELBO; the test set is read only by evaluate",
               "at most 200 epochs with early stopping (patience 10) instead of 1,000",
               "length buckets reshuffled each epoch (resumable) instead of one length-sorted order",
               "dialogue: R_TWR = mean KL(q(z|x,c_t) || p(z|c_t)) over the context's own turns, one batched Linear "
               "(the reference divides by the padded length, in a Python loop); best.pt on the validation ELBO (the "
               "reference evaluates the test set every epoch); BLEU with smoothing method 3, in [0, 1] (the "
               "reference's method 7 with weights 1/3 can exceed 1: only under as-coded); floors relative to the "
               "responder"]}
    if weights is not None:
        import torch

        from .model import parameter_count
        from .predict import load_model

        model, vocab, ck = load_model(weights, torch.device("cpu"))
        doc["model"] = {"config": ck["config"]["model"], "vocab": len(vocab), "params": parameter_count(model),
                        "metrics": ck.get("metrics", {}), "train": ck["config"].get("train", {})}
    return doc


def benchmark(device=None, quick: bool = False) -> list:
    """Training sentences/s (packed buckets vs the reference-style padded step), IW-NLL (batched vs the batch-1
    loop of calc_iwnll) and sampling, on one device. Default device "auto". Returns BenchRecords
    {case, ours_s, peer_s, speedup, device}."""
    from .bench import run

    v, _ = _resolve("benchmark", {"device": device})
    return run(v["device"], quick)
