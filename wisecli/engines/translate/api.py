"""The Python API of `wise translate` (the command calls only these): train, predict, evaluate, study, demo,
info, benchmark, and the `DEFAULTS` of every verb. Layer-wise multi-view NMT (Wang et al., COLING 2020): an
intermediate encoder layer is a second view of the source, decoded by a partially shared decoder and tied to
the primary view by a KL term; inference keeps the primary path only (the baseline's graph). `views=1` is the
plain Transformer baseline.

    from wisecli.engines.translate import api
    api.train(gettext="de", out_dir="runs/mv", arch="tiny", max_steps=4000)
    api.predict(["test.en"], weights="runs/mv", out_dir="out")
    api.evaluate(hyp=["out/test.de"], ref=["test.de"])["bleu"]

Settings left at None come from `DEFAULTS[verb]`, then `--config`/`WISE_*`/`--set` (`cli.config.resolve`).
A device is "auto", "cpu", "cuda", "cuda:N" or a torch.device.

Choices where the spec is silent (each written where it is made): `max_steps` 20,000 by default and rounded up
to whole `eval_every` intervals; `val_select` = BLEU − 1e-3·loss/(1+loss); finished beams stay in the beam with
a frozen score (predict.py); stdin is translated line by line, flushed; `--tokenizer sentencepiece` (extra
`mt`) keeps the exact round trip with identity normalisation and no dummy prefix (tokenizer.py); `evaluate` with two `--hyp` files bootstraps the second against the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHOD = "translate"
_RUN = {"device": "auto", "amp": True}
_DECODE = {"beam": 5, "lenpen": 1.0, "batch_tokens": 8000, "encoding": "utf-8"}

DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "arch": "tiny", "views": 2, "aux_layer": None, "share": "cross", "aux_norm": "shared", "norm": "pre",
        "kl_alpha": 1.0, "aux_weight": 1.0, "kl_mode": "sym", "label_smoothing": 0.1, "vocab_size": None,
        "tokenizer": "bpe", "max_tokens": 4096, "max_steps": 20000, "lr": None, "warmup": None,
        "eval_every": None, "average_last": 0, "max_len": 256, "valid_beam": 5, "valid_max": 2000,
        "src_col": 0, "tgt_col": 1, "direction": None, "placeholders": "drop", "encoding": "utf-8",
        "compile": False, "seed": 1, **_RUN,
    },
    "predict": {"view": "primary", "nbest": 1, **_DECODE, **_RUN},
    "evaluate": {"tokenize": "13a", "lowercase": False, "chrf_word_order": 0, "backend": "auto",
                 "compound_split": False, "bootstrap": 1000, **_DECODE, **_RUN},
    "study": {"grid": "all", "profile": "quick", "seeds": 2, "steps": None, "encoding": "utf-8", "device": "auto"},
    "demo": {"device": "auto", "budget": 45.0, "compare": False},
    "info": {},
    "benchmark": {"device": "auto", "arch": "base", "steps": 50},
}
_CHOICES = {"arch": ("micro", "tiny", "iwslt", "base", "big", "deep"), "share": ("cross", "all", "none"),
            "aux_norm": ("shared", "own", "none"), "norm": ("pre", "post"),
            "kl_mode": ("sym", "sym-detach", "primary-teacher"), "tokenizer": ("bpe", "sentencepiece"),
            "placeholders": ("drop", "mask"), "view": ("primary", "aux"), "backend": ("auto", "sacrebleu", "builtin"),
            "tokenize": ("13a", "intl", "none", "zh", "ja-mecab"), "chrf_word_order": (0, 2),
            "grid": ("all", "claim", "alpha", "ablation"), "profile": ("quick", "paper")}
_POSITIVE = ("max_tokens", "max_steps", "lr", "warmup", "eval_every", "max_len", "valid_beam", "valid_max",
             "vocab_size", "beam", "lenpen", "batch_tokens", "nbest", "budget", "steps", "views", "aux_layer",
             "seeds")
_CAPS = {"max_len": 8192, "beam": 256, "valid_beam": 256, "nbest": 256, "max_tokens": 2**24, "vocab_size": 10**6,
         "views": 2, "budget": 86400.0, "batch_tokens": 2**26, "seeds": 100, "steps": 10**7}
_NOT_NEGATIVE = ("kl_alpha", "aux_weight", "label_smoothing", "average_last", "src_col", "tgt_col", "seed",
                 "bootstrap", "warmup")


def _resolve(verb: str, flags: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """DEFAULTS[verb] < --config < WISE_* < --set < the given values, checked; a torch.device passes as it is."""
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
            raise InputError(f"unknown text encoding: {v['encoding']!r}", hint="e.g. utf-8, latin-1, cp1252") from None
    if v.get("nbest") is not None and int(v["nbest"]) > int(v["beam"]):
        raise InputError(f"--nbest {v['nbest']} is larger than --beam {v['beam']}", hint="raise --beam or lower --nbest")
    if v.get("label_smoothing") is not None and not float(v["label_smoothing"]) < 1:
        raise InputError("--label-smoothing must be below 1", hint="the default is 0.1")
    return v, res


def train(out_dir: str | Path | None = None, *, src: list | None = None, tgt: list | None = None,
          tsv: list | None = None, gettext: str | None = None, gettext_dir: str | Path | None = None,
          valid_src: list | None = None, valid_tgt: list | None = None, valid_tsv: list | None = None,
          synthetic: int = 0, resume: bool = False, overwrite: bool = False, progress: bool = True, sink=None,
          argv=None, **settings: Any) -> dict:
    """Train the multi-view Transformer (or the `views=1` baseline) into the run folder `out_dir`.

    Data: `src`/`tgt` line-aligned files (repeatable, `.gz` read), `tsv` files (`src_col`, `tgt_col`), `gettext`
    LANG (the machine's catalogs, cleaned; `direction` en-LANG or LANG-en; `gettext_dir` another locale tree),
    or `synthetic` N pairs. Validation: `valid_src`/`valid_tgt` or `valid_tsv`, else a 2 % hash split.
    `settings` are the keys of `DEFAULTS["train"]`: arch "tiny", views 2, aux_layer ⌈N/2⌉, share "cross",
    aux_norm "shared", norm "pre", kl_alpha 1, aux_weight 1, kl_mode "sym", label_smoothing 0.1, vocab_size 8000,
    tokenizer "bpe", max_tokens 4096, max_steps 20000, lr/warmup/eval_every by preset (tiny: 1e-3, 400, 200;
    else 5e-4, 4000, 1000), average_last 0, max_len 256, valid_beam 5, valid_max 2000, placeholders "drop",
    encoding "utf-8", seed 1, device "auto", amp True. Writes config.json, metrics.jsonl, checkpoints/
    last.pt|best.pt (|avg.pt), run.json; returns {run_dir, steps, best_bleu, best_epoch, ...}."""
    from .train import run_training

    given = dict(settings)
    v, res = _resolve("train", settings)
    lang = gettext or None
    direction = v.pop("direction")
    tgt_lang = None
    if lang:
        tgt_lang = "en" if direction == f"{lang}-en" else lang
    common = dict(src_col=int(v["src_col"]), tgt_col=int(v["tgt_col"]), encoding=v["encoding"])
    data = dict(src=src, tgt=tgt, tsv=tsv, gettext=lang, direction=direction,
                gettext_dir=None if gettext_dir is None else Path(gettext_dir), placeholders=v["placeholders"],
                synthetic=int(synthetic), seed=int(v["seed"]), **common)
    if not (src or tgt or tsv or lang or synthetic):
        from wisecli.cli.errors import InputError

        raise InputError("no training data given", hint="give --src F --tgt F, --tsv F or --gettext LANG")
    if valid_src or valid_tgt or valid_tsv:
        data["valid"] = dict(src=valid_src, tgt=valid_tgt, tsv=valid_tsv, **common)
    data["tgt_lang"] = tgt_lang
    run = {k: v.pop(k) for k in ("device", "amp", "seed")}
    for k in ("views", "aux_layer", "max_tokens", "max_steps", "warmup", "eval_every", "average_last", "max_len",
              "valid_beam", "valid_max", "vocab_size"):
        if v.get(k) is not None:
            v[k] = int(v[k])
    for k in ("kl_alpha", "aux_weight", "label_smoothing", "lr"):
        if v.get(k) is not None:
            v[k] = float(v[k])
    tl = data.pop("tgt_lang")
    return run_training({**data, "tgt_lang": tl}, None if out_dir is None else Path(out_dir), cfg=v, given=given,
                        config_record=res.as_record(), device=run["device"], amp=run["amp"], seed=int(run["seed"]),
                        resume=resume, overwrite=overwrite, progress=progress, sink=sink, argv=argv)


def predict(inputs: list[str | Path], weights: str | Path | None = None, out_dir: str | Path | None = None, *,
            view: str | None = None, beam: int | None = None, lenpen: float | None = None, nbest: int | None = None,
            batch_tokens: int | None = None, encoding: str | None = None, shard: str | None = None,
            overwrite: bool = False, skip_existing: bool = False, device=None, amp: bool | None = None,
            sink=None, jsonl: bool = False, argv=None) -> dict:
    """Translate text files (one sentence a line) or `-` (lines on stdin) with `weights` (a run folder means its
    best.pt) loaded once. Without `out_dir` the translations go to stdout, one line per input line, in order
    (records with `jsonl`); with it, one `<stem>.<tgt>` per input (atomic; `shard`, `skip_existing`,
    `overwrite`; run.json). Defaults: view "primary", beam 5, lenpen 1.0, nbest 1, batch_tokens 8000,
    encoding "utf-8", device "auto", amp True. Returns {records, lines, errors, seconds, device}."""
    from .predict import run_predict

    v, _ = _resolve("predict", {"view": view, "beam": beam, "lenpen": lenpen, "nbest": nbest,
                                "batch_tokens": batch_tokens, "encoding": encoding, "device": device, "amp": amp})
    return run_predict([str(i) for i in inputs], weights, out_dir=None if out_dir is None else Path(out_dir),
                       view=v["view"], beam=int(v["beam"]), lenpen=float(v["lenpen"]), nbest=int(v["nbest"]),
                       batch_tokens=int(v["batch_tokens"]), encoding=v["encoding"], shard=shard, overwrite=overwrite,
                       skip_existing=skip_existing, device=v["device"], amp=v["amp"], sink=sink, jsonl=jsonl,
                       argv=argv)


def evaluate(*, hyp: list | None = None, ref: list | None = None, weights: str | Path | None = None,
             src: str | Path | None = None, tokenize: str | None = None, lowercase: bool | None = None,
             chrf_word_order: int | None = None, backend: str | None = None, compound_split: bool | None = None,
             bootstrap: int | None = None, beam: int | None = None, lenpen: float | None = None,
             batch_tokens: int | None = None, encoding: str | None = None, device=None, amp: bool | None = None,
             sink=None) -> dict:
    """BLEU and chrF with signatures of `hyp` files (or of `weights`' translations of `src`) against `ref` files.
    Defaults: tokenize "13a", lowercase False, chrf_word_order 0 (2: chrF++), backend "auto" (sacrebleu when
    installed), compound_split False, bootstrap 1000 (with two hyp files), beam 5, lenpen 1.0, batch_tokens
    8000, encoding "utf-8", device "auto", amp True. Returns {bleu, bleu_signature, precisions, bp, sys_len,
    ref_len, chrf, chrf_signature, n_sentences, backend[, systems, bootstrap]}."""
    from .metrics import run_evaluate

    v, _ = _resolve("evaluate", {"tokenize": tokenize, "lowercase": lowercase, "chrf_word_order": chrf_word_order,
                                 "backend": backend, "compound_split": compound_split, "bootstrap": bootstrap,
                                 "beam": beam, "lenpen": lenpen, "batch_tokens": batch_tokens, "encoding": encoding,
                                 "device": device, "amp": amp})
    return run_evaluate(hyp=hyp, ref=ref, weights=weights, src=src, tokenize=v["tokenize"], lowercase=v["lowercase"],
                        chrf_word_order=int(v["chrf_word_order"]), backend=v["backend"],
                        compound_split=v["compound_split"], bootstrap=int(v["bootstrap"]), beam=int(v["beam"]),
                        lenpen=float(v["lenpen"]), batch_tokens=int(v["batch_tokens"]), encoding=v["encoding"],
                        device=v["device"], amp=v["amp"], sink=sink)


def study(out_dir: str | Path | None = None, *, grid: str | None = None, profile: str | None = None,
          seeds: int | None = None, steps: int | None = None, src: list | None = None, tgt: list | None = None,
          tsv: list | None = None, gettext: str | None = None, synthetic: int = 0, encoding: str | None = None,
          device=None, sink=None) -> dict:
    """Rerun the paper's experiment grid (spec §5 protocol, §9 paper claim) into `out_dir`: the 1-view baseline
    against multi-view (α = β = 1) on seeds 1..`seeds`, the α ∈ {0.5, 2} sweep and the no-KL / no-aux-CE
    ablations at seed 1 (`grid` all|claim|alpha|ablation), each trained with the same data, tokenizer, preset and
    step budget, selected by validation BLEU and decoded once (beam 5) on a 5 % hash test split. Writes
    OUT/data/*, OUT/runs/<setting>-s<seed>/ (run folders + test.hyp), results.jsonl (one line per finished run;
    a rerun skips them and resumes an unfinished run), summary.json and summary.md.

    Defaults: grid "all", profile "quick" (CPU-sized: micro on 4,000 synthetic pairs, 400 updates) or "paper"
    (GPU: iwslt on gettext en→de, 4,000 updates), seeds 2, steps None (the profile's), encoding "utf-8", device
    "auto". Data: `src`/`tgt`, `tsv`, `gettext` LANG or `synthetic` N instead of the profile's. Returns the
    summary {rows, table, claim, anchor, data, ...} (see study.py)."""
    from .study import run_study

    v, _ = _resolve("study", {"grid": grid, "profile": profile, "seeds": seeds, "steps": steps, "encoding": encoding,
                              "device": device})
    data = {"src": src, "tgt": tgt, "tsv": tsv, "gettext": gettext or None, "synthetic": int(synthetic),
            "encoding": v["encoding"], "seed": 1}
    return run_study(None if out_dir is None else Path(out_dir), grid=v["grid"], profile=v["profile"],
                     seeds=int(v["seeds"]), steps=None if v["steps"] is None else int(v["steps"]), data=data,
                     device=v["device"], train_defaults=DEFAULTS["train"], sink=sink)


def demo(quick: bool = False, device=None, *, budget: float | None = None, compare: bool | None = None, sink=None):
    """Train the `tiny` multi-view model on the machine's gettext en→de pairs (else fr, es, else synthetic) for
    `budget` seconds on CPU (3,000 steps on CUDA), then BLEU/chrF (beam 4) on 500 held-out pairs beside
    copy-the-source and 5 translations; `compare` adds the 1-view baseline. `quick`: the `micro` preset on
    synthetic pairs for 8 s. Defaults: device "auto", budget 45, compare False. Returns a DemoResult whose
    headline is {bleu, chrf, copy_bleu, steps} (gates in demo.py)."""
    from .demo import run_demo

    v, _ = _resolve("demo", {"device": device, "budget": budget, "compare": compare})
    return run_demo(quick=quick, device=v["device"], budget=float(v["budget"]), compare=v["compare"], sink=sink)


def info(weights: str | Path | None = None) -> dict:
    """Presets, defaults, extras, the machine's gettext languages and catalog counts; with `weights` the model
    summary (config, parameters training/inference, tokenizer size, metrics)."""
    from importlib.util import find_spec

    from wisecli.runtime.io.gettext import languages

    from .model import PRESETS

    _resolve("info", {})
    doc = {"method": METHOD,
           "paper": "Wang, Li, Zhang, Xiao, Zhu: Layer-Wise Multi-View Learning for Neural Machine Translation, "
                    "COLING 2020 (arXiv 2011.01482)",
           "presets": PRESETS, "defaults": {k: DEFAULTS[k] for k in ("train", "predict", "evaluate", "study")},
           "reads": ["line-aligned text (.gz)", "TSV", "gettext .mo/.po catalogs", "stdin lines ('-')"],
           "writes": ["run folder (config.json, metrics.jsonl, checkpoints/*.pt, run.json)", "<stem>.<tgt> files"],
           "capabilities": {"tokenizers": ["bpe"], "tokenize": ["13a", "intl", "none", "zh*", "ja-mecab*"],
                            "beam_search": "batched, KV cache", "ddp": "torchrun", "bootstrap": True,
                            "study": {"grids": ["all", "claim", "alpha", "ablation"], "profiles": ["quick", "paper"],
                                      "settings": ["baseline", "multi-view", "alpha-0.5", "alpha-2", "no-kl",
                                                   "no-aux-ce"], "resumable": True}},
           "extras": {"sacrebleu": find_spec("sacrebleu") is not None,
                      "sentencepiece": find_spec("sentencepiece") is not None},
           "gettext_languages": languages()}
    if weights is not None:
        import torch

        from .model import Translator, parameter_count
        from .predict import load_model

        model, tok, ck = load_model(weights, torch.device("cpu"))
        mc = ck["config"]["model"]
        doc["model"] = {"config": mc, "vocab": tok.vocab_size, "params_training": parameter_count(Translator(mc)),
                        "params_inference": parameter_count(model), "metrics": ck.get("metrics", {}),
                        "train": ck["config"].get("train", {})}
    return doc


def benchmark(device=None, quick: bool = False, *, arch: str | None = None, steps: int | None = None) -> list:
    """Time training (1-view, multi-view stacked, multi-view as two decoder passes) and beam-5 decoding (baseline
    and multi-view checkpoints, and a cache-less torch.nn.Transformer peer) on one device, random tokens with a
    realistic length mix. Defaults: device "auto", arch "base", steps 50 (quick: micro, a few steps). Returns
    BenchRecords {case, ours_s, peer_s, speedup, device} for rows 2/1, 2/3, 5/4, 4/6, with MFU in the summary."""
    from .bench import run

    v, _ = _resolve("benchmark", {"device": device, "arch": arch, "steps": steps})
    return run(v["device"], quick, arch=v["arch"], steps=int(v["steps"]))
