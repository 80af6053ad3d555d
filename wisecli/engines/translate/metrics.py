"""The `evaluate` verb: BLEU and chrF (with sacreBLEU-format signatures) of hypothesis files, or of a model's
translations of `--src`, against one or more references; paired bootstrap between two hypothesis files, and
teacher-forced token accuracy per view (the claim gate's measure).

With two `--hyp` files the document holds both scores (`systems`) and, with `bootstrap > 0`, Koehn's paired
bootstrap p-value of the second against the first (1,000 samples, seed 12345 by default).
"""

from __future__ import annotations

import torch

from wisecli.cli.errors import InputError


def run_evaluate(*, hyp=None, ref=None, weights=None, src=None, tokenize="13a", lowercase=False, chrf_word_order=0,
                 backend="auto", compound_split=False, bootstrap=1000, beam=5, lenpen=1.0, batch_tokens=8000,
                 encoding="utf-8", device="auto", amp=True, sink=None) -> dict:
    """Score (see the module docstring); inputs are checked, and line counts compared, before any decoding."""
    from wisecli.runtime import bleu
    from wisecli.runtime.io.text import read_lines

    hyp, ref = list(hyp or []), list(ref or [])
    if not ref:
        raise InputError("--ref is required", hint="give the reference translations: --ref ref.de (repeatable)")
    if not hyp and (weights is None or src is None):
        raise InputError("give --hyp FILE, or --weights W with --src FILE",
                         hint="evaluate scores hypotheses against --ref references")
    if hyp and (weights is not None or src is not None):
        raise InputError("--hyp excludes --weights/--src", hint="score files, or translate --src with --weights")
    if len(hyp) > 2:
        raise InputError(f"{len(hyp)} --hyp files: at most 2 (a system and a baseline)", hint="score them one by one")
    if tokenize in ("zh", "ja-mecab") or backend == "sacrebleu":
        bleu.score(["x"], [["x"]], tokenize_name=tokenize, backend=backend)  # the missing-sacrebleu error, early
    refs = [read_lines(r, encoding=encoding) for r in ref]
    systems = [read_lines(h, encoding=encoding) for h in hyp]
    for name, lines in [*zip(ref, refs), *zip(hyp, systems)]:
        if not lines:
            raise InputError(f"{name} is empty: nothing to score", hint="give text files with one sentence a line")
    if src is not None:
        src_lines = read_lines(src, encoding=encoding)
        if not src_lines:
            raise InputError(f"{src} is empty: nothing to translate", hint="give a text file with one sentence a line")
        for r, lines in zip(ref, refs):
            if len(lines) != len(src_lines):
                raise InputError(f"{src} has {len(src_lines)} lines but {r} has {len(lines)}",
                                 hint="sources and references must be line-aligned")
        from wisecli.runtime.device import as_device

        from .predict import Translation, load_model

        dev = as_device(device, sink=sink)
        model, tok, doc = load_model(weights, dev)
        tr = Translation(model, tok, doc, dev, beam=beam, lenpen=lenpen, batch_tokens=batch_tokens, amp=amp)
        systems = [[r["hyp"] for r in tr.translate(src_lines)]]
    for h, lines in zip(hyp or [str(src)], systems):
        for r, rl in zip(ref, refs):
            if len(rl) != len(lines):
                raise InputError(f"{h} has {len(lines)} lines but {r} has {len(rl)}",
                                 hint="hypotheses and references must be line-aligned")
    kw = dict(tokenize_name=tokenize, lowercase=lowercase, word_order=chrf_word_order, backend=backend,
              compound=compound_split)
    docs = [bleu.score(s, refs, **kw) for s in systems]
    out = dict(docs[0])
    if len(docs) == 2:
        out["systems"] = [{"hyp": str(h), **d} for h, d in zip(hyp, docs)]
        if bootstrap > 0:
            a, b = systems
            if compound_split:
                a, b = [bleu.compound_split(x) for x in a], [bleu.compound_split(x) for x in b]
                rs = [[bleu.compound_split(x) for x in r] for r in refs]
            else:
                rs = refs
            tn = tokenize if tokenize in ("13a", "intl", "none") else "none"
            out["bootstrap"] = bleu.paired_bootstrap(a, b, rs, samples=int(bootstrap), tokenize_name=tn,
                                                     lowercase=lowercase)
    return out


@torch.no_grad()
def token_accuracy(model, pairs, device, batch: int = 64) -> list[float]:
    """Teacher-forced next-token accuracy of each view on non-pad target positions (specials excluded from the
    argmax as in decoding)."""
    from .data import collate

    model.eval()
    right, total = None, 0
    for i in range(0, len(pairs), batch):
        b = {k: v.to(device) for k, v in collate(pairs[i:i + batch]).items()}
        mask = b["tgt_out"] != 0
        hits = []
        for x in model(b["src"], b["tgt_in"]):
            x = x.float().clone()
            x[..., [0, 1, 3]] = float("-inf")  # <pad>, <s>, <unk> never come out
            hits.append((x.argmax(-1) == b["tgt_out"])[mask].float().sum())
        h = torch.stack(hits)
        right = h if right is None else right + h
        total += int(mask.sum())
    return (right / max(total, 1)).tolist()
