"""`wise text-vae`: TWR-VAE, the timestep-wise regularised text VAE (Li et al., COLING 2020).

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.text_vae.api` (imported inside the verb,
so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
`predict` INPUTS are strings: `-` reads text lines on stdin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("text-vae", help="TWR-VAE text VAE: train, sample, reconstruct, encode; honest NLL/KL/MI/AU.",
                rich_markup_mode="rich")

_M = "Model"
_D = "Data"


def _opt(name: str, help: str, callback=None, panel: str | None = None, **kw):
    return typer.Option(name, help=help, callback=callback, rich_help_panel=panel, **kw)


Weights = Annotated[Optional[Path], _opt("--weights", "Run folder (its best.pt) or checkpoint.")]
Encoding = Annotated[Optional[str], _opt("--encoding", "Text encoding of the inputs.")]
Model = Annotated[Optional[Literal["twr", "vae", "lm"]], _opt("--model", "twr, the annealed VAE or the LM.", panel=_M)]
ZMode = Annotated[Optional[Literal["last", "mean", "sum"]], _opt("--z-mode", "Latent the decoder reads.", panel=_M)]
KlScope = Annotated[Optional[Literal["all", "last25", "last50", "last75", "last1"]],
                    _opt("--kl-scope", "Positions the TWR term averages.", panel=_M)]
Int = Optional[int]


@app.command()
def train(
    train_file: Annotated[Path, typer.Argument(help="Training text, one sentence a line.", metavar="TRAIN")],
    out_dir: o.OutDir = None,
    valid: Annotated[Optional[Path], _opt("--valid", "Validation text (default: a 5 % hash split).", panel=_D)] = None,
    task: Annotated[Optional[Literal["lm", "dialogue"]], _opt("--task", "lm, or dialogue (with a dialogue --format).")] = None,
    format: Annotated[Optional[Literal["lines", "dailydialog", "swda-jsonl", "jsonl"]],
                      _opt("--format", "Input format.", panel=_D)] = None,
    model: Model = None, z_mode: ZMode = None, kl_scope: KlScope = None,
    z_dim: Annotated[Int, _opt("--z-dim", "Latent size.", o.at_least_one, _M)] = None,
    emb: Annotated[Int, _opt("--emb", "Embedding size.", o.at_least_one, _M)] = None,
    hidden: Annotated[Int, _opt("--hidden", "RNN size.", o.at_least_one, _M)] = None,
    rnn: Annotated[Optional[Literal["lstm", "gru"]], _opt("--rnn", "Cell.", panel=_M)] = None,
    dropout: Annotated[Optional[float], _opt("--dropout", "Embedding dropout.", o.not_negative, _M)] = None,
    lr: o.Lr = None, batch_size: o.BatchSize = None, epochs: o.Epochs = None,
    patience: Annotated[Int, _opt("--patience", "Early stop after N epochs without improvement (0: off).",
                                  o.not_negative)] = None,
    kl_start: Annotated[Optional[float], _opt("--kl-start", "VAE: first KL weight.", o.not_negative)] = None,
    anneal_epochs: Annotated[Int, _opt("--anneal-epochs", "VAE: epochs to reach weight 1.", o.not_negative)] = None,
    tokenize: Annotated[Optional[Literal["reference", "whitespace"]],
                        _opt("--tokenize", "Tokeniser.", panel=_D)] = None,
    min_count: Annotated[Int, _opt("--min-count", "Rarer words become <unk>.", o.at_least_one, _D)] = None,
    max_vocab: Annotated[Int, _opt("--max-vocab", "Vocabulary cap.", o.at_least_one, _D)] = None,
    max_len: Annotated[Int, _opt("--max-len", "Longer lines are dropped (counted).", o.at_least_one, _D)] = None,
    encoding: Encoding = None, resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None,
    amp: o.Amp = None, seed: Annotated[Optional[int], _opt("--seed", "Random seed.", o.not_negative)] = None,
    json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train TWR-VAE (or --model vae|lm) on one sentence a line, or dialogues (--task dialogue), into -o RUN."""
    import sys

    from wisecli.engines.text_vae import api

    sink = Sink(json=json)
    doc = api.train(train_file, out_dir, valid=valid, resume=resume, overwrite=overwrite, progress=not no_progress,
                    sink=sink, argv=sys.argv, task=task, format=format, model=model, z_mode=z_mode,
                    kl_scope=kl_scope, z_dim=z_dim, emb=emb, hidden=hidden, rnn=rnn, dropout=dropout, lr=lr,
                    batch_size=batch_size, epochs=epochs, patience=patience, kl_start=kl_start,
                    anneal_epochs=anneal_epochs, tokenize=tokenize, min_count=min_count, max_vocab=max_vocab,
                    max_len=max_len, encoding=encoding, device=device, amp=amp, seed=seed)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if k != "last"}], title="wise text-vae train")


@app.command()
def predict(
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Text files, or - for lines on stdin.")] = None,
    weights: Weights = None, out_dir: o.OutDir = None,
    mode: Annotated[Optional[Literal["sample", "reconstruct", "encode", "interpolate", "respond"]],
                    _opt("--mode", "What to do (respond: dialogue models, JSONL contexts in).")] = None,
    n_samples: Annotated[Int, _opt("--n-samples", "respond: responses per context.", o.at_least_one)] = None,
    n: Annotated[Int, _opt("--n", "Sentences to sample.", o.at_least_one)] = None,
    decode: Annotated[Optional[Literal["greedy", "sample", "beam"]], _opt("--decode", "Decoding.")] = None,
    beam: Annotated[Int, _opt("--beam", "Beam size (--decode beam).", o.at_least_one)] = None,
    temperature: Annotated[Optional[float], _opt("--temperature", "Softmax temperature.", o.positive)] = None,
    z: Annotated[Optional[Literal["mean", "sample"]], _opt("--z", "reconstruct from mu or a sample.")] = None,
    interpolate: Annotated[Optional[tuple[str, str]], _opt("--interpolate", "Two sentences A B.")] = None,
    steps: Annotated[Int, _opt("--steps", "Interpolation points.", o.at_least_one)] = None,
    npy: Annotated[Optional[Path], _opt("--npy", "encode: write the mu matrix here (.npy).")] = None,
    batch_size: o.BatchSize = None, encoding: Encoding = None,
    seed: Annotated[Optional[int], _opt("--seed", "Random seed.", o.not_negative)] = None,
    overwrite: o.Overwrite = False, skip_existing: o.SkipExisting = False, device: o.Device = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Sample, reconstruct, encode or interpolate: one output line per input line (or -o DIR: a file per input)."""
    import sys

    from wisecli.engines.text_vae import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.predict(inputs, weights, out_dir, mode=mode, n=n, decode=decode, beam=beam, temperature=temperature, z=z,
                      interpolate=list(interpolate) if interpolate else None, steps=steps, npy=npy,
                      batch_size=batch_size, encoding=encoding, seed=seed, overwrite=overwrite,
                      skip_existing=skip_existing, device=device, sink=sink, jsonl=jsonl, argv=sys.argv,
                      n_samples=n_samples)
    if json or out_dir is not None:
        sink.result(doc, rows=doc["records"], title="wise text-vae predict")
    sink.finish(doc["records"], what="lines" if out_dir is None else "files")


@app.command()
def evaluate(
    test: Annotated[Path, typer.Argument(help="Test text, one sentence a line (dialogue models: their training format).", metavar="TEST")],
    weights: Weights = None,
    metrics: Annotated[Optional[Literal["proper", "as-coded", "both"]], _opt("--metrics", "Which numbers.")] = None,
    iw_samples: Annotated[Int, _opt("--iw-samples", "IW-NLL samples K.", o.at_least_one)] = None,
    iw_chunk: Annotated[Int, _opt("--iw-chunk", "Samples per decoder pass.", o.at_least_one)] = None,
    elbo_samples: Annotated[Int, _opt("--elbo-samples", "ELBO samples.", o.at_least_one)] = None,
    au_delta: Annotated[Optional[float], _opt("--au-delta", "Active-unit threshold.", o.positive)] = None,
    n_samples: Annotated[Int, _opt("--n-samples", "Dialogue: prior samples per context.", o.at_least_one)] = None,
    embeddings: Annotated[Optional[Path], _opt("--embeddings", "Dialogue: word2vec/GloVe text file for the embedding metrics.")] = None,
    batch_size: o.BatchSize = None, encoding: Encoding = None,
    seed: Annotated[Optional[int], _opt("--seed", "Random seed.", o.not_negative)] = None,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """ELBO and IW-NLL (PPL), KL, MI and active units of a model on a test file (--metrics as-coded: labelled)."""
    from wisecli.engines.text_vae import api

    sink = Sink(json=json)
    doc = api.evaluate(test, weights, metrics=metrics, iw_samples=iw_samples, iw_chunk=iw_chunk,
                       elbo_samples=elbo_samples, au_delta=au_delta, batch_size=batch_size, encoding=encoding,
                       seed=seed, device=device, sink=sink, n_samples=n_samples, embeddings=embeddings)
    rows = [{"metric": k, "value": v} for k, v in doc.items() if k not in ("au_var", "as_coded")]
    rows += [{"metric": f"as-coded {k}", "value": v} for k, v in doc.get("as_coded", {}).items()]
    sink.result(doc, rows=rows, title="wise text-vae evaluate")


@app.command()
def demo(
    quick: o.Quick = False, device: o.Device = None,
    corpus: Annotated[Optional[Literal["wordnet", "gettext", "pydoc"]], _opt("--corpus", "Offline corpus.")] = None,
    steps: Annotated[Int, _opt("--steps", "Updates per model (full demo).", o.at_least_one)] = None,
    task: Annotated[Optional[Literal["lm", "dialogue"]],
                    _opt("--task", "lm, or dialogue: TWR beside the annealed CVAE on synthetic dialogues.")] = None,
    json: o.Json = False,
) -> None:
    """TWR-VAE beside the annealed VAE on offline text (--quick: synthetic), or on synthetic dialogues (--task
    dialogue: mode coverage): collapse or not, side by side."""
    from wisecli.engines.text_vae import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, corpus=corpus, steps=steps, sink=sink, task=task)
    if not json:
        sink.table(result.details["rows"], title=f"wise text-vae demo ({result.details['data']})")
    sink.demo(result, title="wise text-vae demo gates")


@app.command()
def info(weights: Weights = None, json: o.Json = False) -> None:
    """Formats, defaults, capabilities, offline corpora, the deviations from the reference; --weights: the model."""
    from wisecli.engines.text_vae import api

    doc = api.info(weights)
    rows = [{"item": k, "value": v} for k, v in doc.items() if k != "defaults"]
    Sink(json=json).result(doc, rows=rows, title="wise text-vae info")


@app.command()
def benchmark(quick: o.Quick = False, device: o.Device = None, json: o.Json = False) -> None:
    """Training, IW-NLL and sampling speed against the reference-style step and the batch-1 IW loop."""
    from wisecli.engines.text_vae import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick), title="wise text-vae benchmark")
