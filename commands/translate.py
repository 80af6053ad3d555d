"""`wise translate`: layer-wise multi-view neural machine translation (Wang et al., COLING 2020).

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.translate.api` (imported inside the
verb, so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
`predict` INPUTS are strings: `-` reads text lines on stdin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("translate", help="Layer-wise multi-view neural machine translation (train, translate, score).",
                rich_markup_mode="rich")

_DATA = "Data"
_MV = "Multi-view"


def _opt(name: str, help: str, callback=None, panel: str | None = None, **kw):
    return typer.Option(name, help=help, callback=callback, rich_help_panel=panel, **kw)


Files = Optional[list[Path]]
Src = Annotated[Files, _opt("--src", "Source text file, one sentence a line (.gz ok; repeatable).", panel=_DATA)]
Tgt = Annotated[Files, _opt("--tgt", "Target text file aligned with --src (repeatable).", panel=_DATA)]
Tsv = Annotated[Files, _opt("--tsv", "Tab-separated pairs (OPUS/Tatoeba; repeatable).", panel=_DATA)]
SrcCol = Annotated[Optional[int], _opt("--src-col", "TSV source column (from 0).", o.not_negative, _DATA)]
TgtCol = Annotated[Optional[int], _opt("--tgt-col", "TSV target column (from 0).", o.not_negative, _DATA)]
Gettext = Annotated[Optional[str], _opt("--gettext", "Language of this machine's gettext catalogs, e.g. de.",
                                        panel=_DATA)]
Direction = Annotated[Optional[str], _opt("--direction", "en-LANG or LANG-en (with --gettext).", panel=_DATA)]
GettextDir = Annotated[Optional[Path], _opt("--gettext-dir", "Another locale tree (LANG/LC_MESSAGES/*.mo).",
                                            panel=_DATA)]
ValidSrc = Annotated[Files, _opt("--valid-src", "Validation sources.", panel=_DATA)]
ValidTgt = Annotated[Files, _opt("--valid-tgt", "Validation targets.", panel=_DATA)]
ValidTsv = Annotated[Files, _opt("--valid-tsv", "Validation TSV.", panel=_DATA)]
Placeholders = Annotated[Optional[Literal["drop", "mask"]], _opt("--placeholders", "gettext placeholders.",
                                                                 panel=_DATA)]
Encoding = Annotated[Optional[str], _opt("--encoding", "Text encoding of the inputs.")]
Arch = Annotated[Optional[Literal["micro", "tiny", "iwslt", "base", "big", "deep"]], _opt("--arch", "Preset.")]
Views = Annotated[Optional[int], _opt("--views", "2: multi-view; 1: the Transformer baseline.", o.at_least_one, _MV)]
AuxLayer = Annotated[Optional[int], _opt("--aux-layer", "Encoder layer M of the auxiliary view (1..N-1).",
                                         o.at_least_one, _MV)]
Share = Annotated[Optional[Literal["cross", "all", "none"]], _opt("--share", "Decoder sharing.", panel=_MV)]
AuxNorm = Annotated[Optional[Literal["shared", "own", "none"]], _opt("--aux-norm", "Aux view's LayerNorm.", panel=_MV)]
KlAlpha = Annotated[Optional[float], _opt("--kl-alpha", "Weight α of the KL term.", o.not_negative, _MV)]
AuxWeight = Annotated[Optional[float], _opt("--aux-weight", "Weight β of the aux CE.", o.not_negative, _MV)]
KlMode = Annotated[Optional[Literal["sym", "sym-detach", "primary-teacher"]], _opt("--kl-mode", "KL form.", panel=_MV)]
Norm = Annotated[Optional[Literal["pre", "post"]], _opt("--norm", "Pre- or post-norm layers.")]
VocabSize = Annotated[Optional[int], _opt("--vocab-size", "BPE vocabulary size.", o.at_least_one)]
Tokenizer = Annotated[Optional[Literal["bpe", "sentencepiece"]], _opt("--tokenizer", "Tokenizer.")]
MaxTokens = Annotated[Optional[int], _opt("--max-tokens", "Tokens per batch (per GPU).", o.at_least_one)]
MaxSteps = Annotated[Optional[int], _opt("--max-steps", "Updates.", o.at_least_one)]
Warmup = Annotated[Optional[int], _opt("--warmup", "Warm-up updates.", o.not_negative)]
EvalEvery = Annotated[Optional[int], _opt("--eval-every", "Updates per validation.", o.at_least_one)]
AverageLast = Annotated[Optional[int], _opt("--average-last", "Average the last K intervals into avg.pt.",
                                            o.not_negative)]
MaxLen = Annotated[Optional[int], _opt("--max-len", "Longest pair in tokens.", o.at_least_one)]
LabelSmoothing = Annotated[Optional[float], _opt("--label-smoothing", "ε of the smoothed CE.", o.not_negative)]
ValidBeam = Annotated[Optional[int], _opt("--valid-beam", "Beam of validation BLEU.", o.at_least_one)]
ValidMax = Annotated[Optional[int], _opt("--valid-max", "Validation pairs decoded.", o.at_least_one)]
Synthetic = Annotated[int, _opt("--synthetic", "N synthetic pairs (tests, machines without data).", o.not_negative,
                                _DATA)]
Beam = Annotated[Optional[int], _opt("--beam", "Beam size (1: greedy).", o.at_least_one)]
Lenpen = Annotated[Optional[float], _opt("--lenpen", "Length penalty exponent.", o.positive)]
BatchTokens = Annotated[Optional[int], _opt("--batch-tokens", "Source tokens × beam per batch.", o.at_least_one)]
Weights = Annotated[Optional[Path], _opt("--weights", "Run folder (its best.pt) or checkpoint.")]


@app.command()
def train(
    out_dir: o.OutDir = None, src: Src = None, tgt: Tgt = None, tsv: Tsv = None, src_col: SrcCol = None,
    tgt_col: TgtCol = None, gettext: Gettext = None, direction: Direction = None, gettext_dir: GettextDir = None,
    valid_src: ValidSrc = None, valid_tgt: ValidTgt = None, valid_tsv: ValidTsv = None,
    placeholders: Placeholders = None, synthetic: Synthetic = 0, encoding: Encoding = None, arch: Arch = None,
    views: Views = None, aux_layer: AuxLayer = None, share: Share = None, aux_norm: AuxNorm = None,
    kl_alpha: KlAlpha = None, aux_weight: AuxWeight = None, kl_mode: KlMode = None, norm: Norm = None,
    vocab_size: VocabSize = None, tokenizer: Tokenizer = None, max_tokens: MaxTokens = None,
    max_steps: MaxSteps = None, lr: o.Lr = None, warmup: Warmup = None, eval_every: EvalEvery = None,
    average_last: AverageLast = None, max_len: MaxLen = None, label_smoothing: LabelSmoothing = None,
    valid_beam: ValidBeam = None, valid_max: ValidMax = None, compile: o.Compile = None, resume: o.Resume = False,
    overwrite: o.Overwrite = False, device: o.Device = None, amp: o.Amp = None, seed: o.Seed = None,
    json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train the multi-view translator (or --views 1, the baseline) into a run folder (-o RUN)."""
    import sys

    from wisecli.engines.translate import api

    sink = Sink(json=json)
    summary = api.train(
        out_dir, src=src, tgt=tgt, tsv=tsv, gettext=gettext, gettext_dir=gettext_dir, valid_src=valid_src,
        valid_tgt=valid_tgt, valid_tsv=valid_tsv, synthetic=synthetic, resume=resume, overwrite=overwrite,
        progress=not no_progress, sink=sink, argv=sys.argv, src_col=src_col, tgt_col=tgt_col, direction=direction,
        placeholders=placeholders, encoding=encoding, arch=arch, views=views, aux_layer=aux_layer, share=share,
        aux_norm=aux_norm, kl_alpha=kl_alpha, aux_weight=aux_weight, kl_mode=kl_mode, norm=norm,
        vocab_size=vocab_size, tokenizer=tokenizer, max_tokens=max_tokens, max_steps=max_steps, lr=lr,
        warmup=warmup, eval_every=eval_every, average_last=average_last, max_len=max_len,
        label_smoothing=label_smoothing, valid_beam=valid_beam, valid_max=valid_max, compile=compile, device=device, amp=amp,
        seed=seed)
    sink.result(summary, rows=[{k: v for k, v in summary.items() if k != "last"}], title="wise translate train")


@app.command()
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Text files, one sentence a line, or - for lines on stdin.")],
    weights: Weights = None, out_dir: o.OutDir = None,
    view: Annotated[Optional[Literal["primary", "aux"]], _opt("--view", "Decode this view (aux: diagnosis).")] = None,
    beam: Beam = None, lenpen: Lenpen = None,
    nbest: Annotated[Optional[int], _opt("--nbest", "Best K per line (--jsonl).", o.at_least_one)] = None,
    batch_tokens: BatchTokens = None, encoding: Encoding = None, shard: o.Shard = None,
    overwrite: o.Overwrite = False, skip_existing: o.SkipExisting = False, device: o.Device = None,
    amp: o.Amp = None, json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Translate line by line: stdout keeps one line per input line (or -o DIR: <stem>.<tgt> per input)."""
    import sys

    from wisecli.engines.translate import api

    sink = Sink(json=json, jsonl=jsonl)
    doc = api.predict(inputs, weights, out_dir, view=view, beam=beam, lenpen=lenpen, nbest=nbest,
                      batch_tokens=batch_tokens, encoding=encoding, shard=shard, overwrite=overwrite,
                      skip_existing=skip_existing, device=device, amp=amp, sink=sink, jsonl=jsonl, argv=sys.argv)
    if json or out_dir is not None:
        sink.result(doc, rows=doc["records"], title="wise translate predict")
    sink.finish(doc["records"], what="lines" if out_dir is None else "files")


@app.command()
def evaluate(
    hyp: Annotated[Files, _opt("--hyp", "Hypotheses (a second --hyp: bootstrap against the first).")] = None,
    ref: Annotated[Files, _opt("--ref", "References (repeatable: several reference sets).")] = None,
    weights: Weights = None,
    src: Annotated[Optional[Path], _opt("--src", "Sources to translate with --weights.")] = None,
    tokenize: Annotated[Optional[Literal["13a", "intl", "none", "zh", "ja-mecab"]],
                        _opt("--tokenize", "BLEU tokeniser (zh, ja-mecab need sacrebleu).")] = None,
    lowercase: Annotated[Optional[bool], _opt("--lowercase", "Case-insensitive scores.")] = None,
    chrf_word_order: Annotated[Optional[int], _opt("--chrf-word-order", "0: chrF, 2: chrF++.", o.not_negative)] = None,
    backend: Annotated[Optional[Literal["auto", "sacrebleu", "builtin"]], _opt("--backend", "Scorer.")] = None,
    compound_split: Annotated[Optional[bool], _opt("--compound-split", "a-b → a ##AT##-##AT## b (WMT En-De).")] = None,
    bootstrap: Annotated[Optional[int], _opt("--bootstrap", "Paired bootstrap samples (two --hyp).",
                                             o.not_negative)] = None,
    beam: Beam = None, lenpen: Lenpen = None, batch_tokens: BatchTokens = None, encoding: Encoding = None,
    device: o.Device = None, amp: o.Amp = None, json: o.Json = False,
) -> None:
    """BLEU and chrF with sacreBLEU signatures (files, or a model's translations of --src)."""
    from wisecli.engines.translate import api

    sink = Sink(json=json)
    doc = api.evaluate(hyp=hyp, ref=ref, weights=weights, src=src, tokenize=tokenize, lowercase=lowercase,
                       chrf_word_order=chrf_word_order, backend=backend, compound_split=compound_split,
                       bootstrap=bootstrap, beam=beam, lenpen=lenpen, batch_tokens=batch_tokens, encoding=encoding,
                       device=device, amp=amp, sink=sink)
    rows = [{"metric": "BLEU", "score": doc["bleu"], "signature": doc["bleu_signature"]},
            {"metric": "chrF", "score": doc["chrf"], "signature": doc["chrf_signature"]}]
    sink.result(doc, rows=rows, title="wise translate evaluate")


@app.command()
def study(
    out_dir: o.OutDir = None,
    grid: Annotated[Optional[Literal["all", "claim", "alpha", "ablation"]],
                    _opt("--grid", "claim: baseline vs multi-view; alpha: the α sweep; ablation: no KL / no aux CE.")] = None,
    profile: Annotated[Optional[Literal["quick", "paper"]], _opt("--profile", "quick (CPU, micro) or paper (GPU, iwslt).")] = None,
    seeds: Annotated[Optional[int], _opt("--seeds", "Seeds 1..N of the claim settings.", o.at_least_one)] = None,
    steps: Annotated[Optional[int], _opt("--steps", "Updates per run (default: the profile's).", o.at_least_one)] = None,
    src: Src = None, tgt: Tgt = None, tsv: Tsv = None, gettext: Gettext = None, synthetic: Synthetic = 0,
    encoding: Encoding = None, device: o.Device = None, json: o.Json = False,
) -> None:
    """Rerun the paper's grid: baseline vs multi-view over seeds, α sweep, ablations (results.jsonl, summary.md)."""
    from wisecli.engines.translate import api

    sink = Sink(json=json)
    doc = api.study(out_dir, grid=grid, profile=profile, seeds=seeds, steps=steps, src=src, tgt=tgt, tsv=tsv,
                    gettext=gettext, synthetic=synthetic, encoding=encoding, device=device, sink=sink)
    sink.result(doc, rows=doc["table"], title="wise translate study")


@app.command()
def demo(
    quick: o.Quick = False, device: o.Device = None,
    budget: Annotated[Optional[float], _opt("--budget", "CPU training seconds.", o.positive)] = None,
    compare: Annotated[Optional[bool], _opt("--compare", "Also train the 1-view baseline.")] = None,
    json: o.Json = False,
) -> None:
    """Train a small translator on this machine's gettext pairs (or synthetic ones) and translate held-out pairs."""
    from wisecli.engines.translate import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, budget=budget, compare=compare, sink=sink)
    if not json:
        sink.table(result.details["rows"], title=f"wise translate demo ({result.details['data']})")
    sink.demo(result, title="wise translate demo gates")


@app.command()
def info(weights: Weights = None, json: o.Json = False) -> None:
    """Presets, defaults, extras, gettext languages; --weights: the model summary."""
    from wisecli.engines.translate import api

    doc = api.info(weights)
    rows = [{"item": k, "value": v} for k, v in doc.items() if k not in ("presets", "defaults")]
    rows += [{"item": f"preset {k}", "value": v} for k, v in doc["presets"].items()]
    Sink(json=json).result(doc, rows=rows, title="wise translate info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = None,
    arch: Annotated[Optional[Literal["micro", "tiny", "iwslt", "base", "big", "deep"]], _opt("--arch", "Preset.")] = None,
    steps: Annotated[Optional[int], _opt("--steps", "Timed training steps.", o.at_least_one)] = None,
    json: o.Json = False,
) -> None:
    """Training and decoding speed: baseline, multi-view, naive two-pass, a cache-less nn.Transformer peer."""
    from wisecli.engines.translate import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick, arch=arch, steps=steps),
                              title="wise translate benchmark")
