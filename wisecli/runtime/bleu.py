"""Corpus BLEU, chrF/chrF++ and smoothed sentence BLEU with sacreBLEU 2.x's definitions, written out here so
that scoring needs no dependency (specs/translate.md §5). `backend="sacrebleu"` calls sacrebleu itself where it
is installed (and is the only way to the `zh` and `ja-mecab` tokenisers).

BLEU (Papineni et al. 2002; Post 2018): n = 1..4, n-gram counts clipped by the maximum over the references,
the closest reference length per sentence (ties: the shorter), BP = exp(1 − r/c) when c < r, `smooth:exp`
(mteval's: the k-th zero-match order gets 1/(2^k·total)), mixed case unless `lowercase`. Tokenisers:
`13a` (mteval-v13a), `intl` (mteval-v14 international: Unicode punctuation and symbols), `none`.
chrF (Popović 2015/2017): character 1–6-grams without whitespace, plus word 1..`word_order`-grams (chrF++:
2, punctuation split off words as sacreBLEU does), β = 2; precision and recall averaged over the orders with
non-zero hypothesis and reference counts; corpus statistics summed; with several references a sentence counts
the statistics of its best-scoring reference.
`nltk_sentence_bleu` is NLTK's sentence BLEU with its smoothing methods 0, 3 and 7 (dialogue metrics).
Signatures follow sacreBLEU's format; `version:` names our backend (`builtin`) or sacrebleu's version.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections import Counter
from functools import lru_cache

from wisecli.cli.errors import InputError

TOKENIZERS = ("13a", "intl", "none", "zh", "ja-mecab")
_NEEDS_SACREBLEU = ("zh", "ja-mecab")

_RE_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line: str) -> str:
    """mteval-v13a tokenisation, as sacreBLEU's `13a`."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for rx, repl in _RE_13A:
        line = rx.sub(repl, line)
    return " ".join(line.split())


@lru_cache(maxsize=None)
def _category_class(prefix: str) -> str:
    """A regex character class body of every code point whose Unicode category starts with `prefix`."""
    chars = [chr(c) for c in range(sys.maxunicode) if unicodedata.category(chr(c)).startswith(prefix)]
    return "".join(re.escape(c) for c in chars)


@lru_cache(maxsize=None)
def _intl_rules():
    p, s, n = _category_class("P"), _category_class("S"), _category_class("N")
    return [(re.compile(f"([^{n}])([{p}])"), r"\1 \2 "),
            (re.compile(f"([{p}])([^{n}])"), r" \1 \2"),
            (re.compile(f"([{s}])"), r" \1 ")]


def tokenize_intl(line: str) -> str:
    """mteval-v14 international tokenisation, as sacreBLEU's `intl`: Unicode punctuation split off unless
    between digits, symbols always."""
    for rx, repl in _intl_rules():
        line = rx.sub(repl, line)
    return " ".join(line.split())


def tokenize(line: str, name: str = "13a") -> str:
    """Tokenise one line with `name` (13a, intl, none)."""
    if name == "13a":
        return tokenize_13a(line)
    if name == "intl":
        return tokenize_intl(line)
    if name == "none":
        return line
    raise ValueError(f"the builtin backend has no tokeniser {name!r}")


def compound_split(line: str) -> str:
    """fairseq's `compound_split_bleu.sh`: `a-b` → `a ##AT##-##AT## b` (tokenised WMT En→De BLEU)."""
    return re.sub(r"(\S)-(\S)", r"\1 ##AT##-##AT## \2", line)


def _ngrams(words: list[str], n_max: int = 4) -> Counter:
    c: Counter = Counter()
    for n in range(1, n_max + 1):
        for i in range(len(words) - n + 1):
            c[tuple(words[i:i + n])] += 1
    return c


def bleu_stats(hyp: str, refs: list[str], *, tokenize_name: str = "13a", lowercase: bool = False) -> list[int]:
    """[sys_len, ref_len, correct_1..4, total_1..4] of one sentence (the corpus statistics are their sum)."""
    if lowercase:
        hyp, refs = hyp.lower(), [r.lower() for r in refs]
    h = tokenize(hyp.rstrip(), tokenize_name).split()
    rs = [tokenize(r.rstrip(), tokenize_name).split() for r in refs]
    c = len(h)
    ref_len = min(((abs(len(r) - c), len(r)) for r in rs))[1] if rs else 0
    max_ref: Counter = Counter()
    for r in rs:
        for g, k in _ngrams(r).items():
            if k > max_ref[g]:
                max_ref[g] = k
    correct, total = [0] * 4, [0] * 4
    for g, k in _ngrams(h).items():
        n = len(g) - 1
        total[n] += k
        correct[n] += min(k, max_ref.get(g, 0))
    return [c, ref_len, *correct, *total]


def bleu_from_stats(stats: list[float], *, smooth: str = "exp", effective_order: bool = False) -> dict:
    """BLEU and its parts from summed statistics: {score, precisions, bp, sys_len, ref_len}."""
    sys_len, ref_len = stats[0], stats[1]
    correct, total = list(stats[2:6]), list(stats[6:10])
    precisions = [0.0] * 4
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    if not any(correct):  # no match at all: 0, not a smoothed value (sacreBLEU #141)
        return {"score": 0.0, "precisions": precisions, "bp": bp, "sys_len": int(sys_len), "ref_len": int(ref_len)}
    smooth_mteval, eff = 1.0, 4
    for n in range(1, 5):
        if total[n - 1] == 0:
            break
        if effective_order:
            eff = n
        if correct[n - 1] == 0:
            if smooth == "exp":
                smooth_mteval *= 2
                precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    logs = [math.log(p) if p > 0 else -9999999999.0 for p in precisions[:eff]]
    score = bp * math.exp(sum(logs) / eff)
    return {"score": score, "precisions": precisions, "bp": bp, "sys_len": int(sys_len), "ref_len": int(ref_len)}


def _check_refs(hyps: list[str], refs: list[list[str]]) -> None:
    for i, r in enumerate(refs):
        if len(r) != len(hyps):
            raise InputError(f"{len(hyps)} hypotheses but reference set {i + 1} has {len(r)} lines",
                             hint="hypotheses and references must be line-aligned")


def signature(kind: str, *, nrefs: int, tokenize_name: str = "13a", lowercase: bool = False,
              word_order: int = 0, version: str = "builtin") -> str:
    """sacreBLEU-format signature of a BLEU or chrF score."""
    case = "lc" if lowercase else "mixed"
    if kind == "bleu":
        return f"nrefs:{nrefs}|case:{case}|eff:no|tok:{tokenize_name}|smooth:exp|version:{version}"
    return f"nrefs:{nrefs}|case:{case}|eff:yes|nc:6|nw:{word_order}|space:no|version:{version}"


def corpus_bleu(hyps: list[str], refs: list[list[str]], *, tokenize_name: str = "13a",
                lowercase: bool = False) -> dict:
    """Corpus BLEU of `hyps` against reference sets `refs` (each a list aligned with hyps)."""
    _check_refs(hyps, refs)
    total = [0] * 10
    for i, h in enumerate(hyps):
        for j, v in enumerate(bleu_stats(h, [r[i] for r in refs], tokenize_name=tokenize_name, lowercase=lowercase)):
            total[j] += v
    out = bleu_from_stats(total)
    out["signature"] = signature("bleu", nrefs=len(refs), tokenize_name=tokenize_name, lowercase=lowercase)
    return out


def sentence_bleu(hyp: str, refs: list[str], *, tokenize_name: str = "13a", lowercase: bool = False) -> float:
    """Smoothed sentence BLEU (exp smoothing, effective order), as sacrebleu.sentence_bleu."""
    return bleu_from_stats(bleu_stats(hyp, refs, tokenize_name=tokenize_name, lowercase=lowercase),
                           effective_order=True)["score"]


def _nltk_precision(refs: list[list[str]], hyp: list[str], n: int) -> tuple[int, int]:
    """NLTK's `modified_precision` as (numerator, denominator) unreduced: clipped n-gram matches over
    max(1, hypothesis n-grams)."""
    grams = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    best: Counter = Counter()
    for r in refs:
        for g, k in Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1)).items():
            best[g] = max(best[g], k)
    return sum(min(k, best[g]) for g, k in grams.items()), max(1, sum(grams.values()))


def nltk_sentence_bleu(refs: list[list[str]], hyp: list[str], *, weights=(0.25, 0.25, 0.25, 0.25),
                       smoothing: int = 0, k: float = 5.0) -> float:
    """NLTK 3.x `sentence_bleu(refs, hyp, weights, smoothing_function=SmoothingFunction().method<smoothing>)` on
    pre-tokenised words, written out here without nltk (Chen & Cherry 2014, "A systematic comparison of
    smoothing techniques for sentence-level BLEU"; NLTK's transcription, `k` = 5 as its default):
    - 0: no smoothing (a zero precision becomes the smallest float, as NLTK does);
    - 3: NIST geometric smoothing, the i-th zero precision is 1 / (2^i · denominator) (in [0, 1]);
    - 7: method 4 then method 5, as NLTK codes them. Method 4 gives the i-th zero precision
      1 / (2^i · k / ln |hyp|) / denominator (only when |hyp| > 1); method 5 replaces p_n by the mean of the
      previous smoothed value (p_1 + 1 before the first), p_n and p_{n+1}, where the extra precision beyond
      the last weight is NLTK's hard-coded **order 5** (not len(weights) + 1). That averaging can lift a
      score above 1 (identical 6-token sentences with weights 1/3: 1.1539); it is reproduced, not fixed.
    Brevity penalty from the closest reference length (ties: the shorter); 0 when no unigram matches."""
    weights = tuple(float(w) for w in weights)
    orders = len(weights)
    hyp_len = len(hyp)
    prec = [_nltk_precision(refs, hyp, n) for n in range(1, orders + 1)]
    if prec[0][0] == 0:
        return 0.0
    ref_len = min((abs(len(r) - hyp_len), len(r)) for r in refs)[1] if refs else 0
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    p: list[float] = [num / den for num, den in prec]
    if smoothing == 0:
        p = [x if num else sys.float_info.min for x, (num, _) in zip(p, prec)]
    elif smoothing == 3:
        inc = 1
        for i, (num, den) in enumerate(prec):
            if num == 0:
                p[i] = 1 / (2 ** inc * den)
                inc += 1
    elif smoothing == 7:
        inc = 1
        for i, (num, den) in enumerate(prec):  # method 4
            if num == 0 and hyp_len > 1:
                p[i] = (1 / (2 ** inc * k / math.log(hyp_len))) / den
                inc += 1
        num5, den5 = _nltk_precision(refs, hyp, 5)  # method 5, with NLTK's fixed order 5
        plus = p + [num5 / den5]
        prev = p[0] + 1
        for i in range(orders):
            p[i] = (prev + p[i] + plus[i + 1]) / 3
            prev = p[i]
    else:
        raise ValueError(f"NLTK smoothing method {smoothing} is not written here (0, 3, 7 are)")
    if any(x <= 0 for x in p):
        return 0.0
    return bp * math.exp(math.fsum(w * math.log(x) for w, x in zip(weights, p)))


_PUNCTS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _words(sent: str) -> list[str]:
    out = []
    for w in sent.split():
        if len(w) == 1:
            out.append(w)
        elif w[-1] in _PUNCTS:
            out += [w[:-1], w[-1]]
        elif w[0] in _PUNCTS:
            out += [w[0], w[1:]]
        else:
            out.append(w)
    return out


def _chrf_ngrams(sent: str, char_order: int, word_order: int) -> list[Counter]:
    chars = "".join(sent.split())
    grams = [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, char_order + 1)]
    if word_order:
        words = _words(sent)
        grams += [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)) for n in range(1, word_order + 1)]
    return grams


def _chrf_f(stats: list[float], beta: float = 2.0) -> float:
    factor = beta ** 2
    prec = rec = 0.0
    eff = 0
    for i in range(len(stats) // 3):
        n_hyp, n_ref, n_match = stats[3 * i: 3 * i + 3]
        if n_hyp > 0 and n_ref > 0:
            prec += n_match / n_hyp
            rec += n_match / n_ref
            eff += 1
    if eff == 0:
        return 0.0
    prec, rec = prec / eff, rec / eff
    if prec + rec == 0:
        return 0.0
    return 100.0 * (1 + factor) * prec * rec / (factor * prec + rec)


def chrf_stats(hyp: str, refs: list[str], *, word_order: int = 0, lowercase: bool = False) -> list[int]:
    """[hyp, ref, match] per order of the best-scoring reference of one sentence."""
    if lowercase:
        hyp, refs = hyp.lower(), [r.lower() for r in refs]
    hg = _chrf_ngrams(hyp, 6, word_order)
    best, best_f = None, -1.0
    for r in refs:
        stats = []
        for h, g in zip(hg, _chrf_ngrams(r, 6, word_order)):
            stats += [sum(h.values()), sum(g.values()), sum(min(k, g[x]) for x, k in h.items() if x in g)]
        f = _chrf_f(stats)
        if f > best_f:
            best, best_f = stats, f
    return best or [0] * (3 * (6 + word_order))


def corpus_chrf(hyps: list[str], refs: list[list[str]], *, word_order: int = 0, lowercase: bool = False) -> dict:
    """Corpus chrF (word_order 0) or chrF++ (2): {score, signature}."""
    _check_refs(hyps, refs)
    total = [0] * (3 * (6 + word_order))
    for i, h in enumerate(hyps):
        for j, v in enumerate(chrf_stats(h, [r[i] for r in refs], word_order=word_order, lowercase=lowercase)):
            total[j] += v
    return {"score": _chrf_f(total), "signature": signature("chrf", nrefs=len(refs), word_order=word_order,
                                                            lowercase=lowercase)}


def sacrebleu_available() -> bool:
    """Whether the sacrebleu package can be imported."""
    from importlib.util import find_spec

    return find_spec("sacrebleu") is not None


def score(hyps: list[str], refs: list[list[str]], *, tokenize_name: str = "13a", lowercase: bool = False,
          word_order: int = 0, backend: str = "auto", compound: bool = False) -> dict:
    """BLEU and chrF of a corpus: {bleu, bleu_signature, precisions, bp, sys_len, ref_len, chrf,
    chrf_signature, n_sentences, backend}. `backend` auto (sacrebleu when installed, else builtin), sacrebleu,
    builtin; `zh`/`ja-mecab` need sacrebleu (InputError otherwise)."""
    if tokenize_name not in TOKENIZERS:
        raise InputError(f"unknown tokeniser {tokenize_name!r}", hint=f"one of {', '.join(TOKENIZERS)}")
    have = sacrebleu_available()
    if backend == "sacrebleu" or tokenize_name in _NEEDS_SACREBLEU:
        if not have:
            why = f"--tokenize {tokenize_name}" if tokenize_name in _NEEDS_SACREBLEU else "--backend sacrebleu"
            raise InputError(f"{why} needs sacrebleu, which is not installed", hint='pip install "wisecli[mt]"')
        backend = "sacrebleu"
    elif backend == "auto":
        backend = "sacrebleu" if have else "builtin"
    _check_refs(hyps, refs)
    if compound:
        hyps, refs = [compound_split(h) for h in hyps], [[compound_split(x) for x in r] for r in refs]
    if backend == "sacrebleu":
        import sacrebleu

        b = sacrebleu.metrics.BLEU(tokenize=tokenize_name, lowercase=lowercase)
        c = sacrebleu.metrics.CHRF(word_order=word_order, lowercase=lowercase)
        bs, cs = b.corpus_score(hyps, refs), c.corpus_score(hyps, refs)
        return {"bleu": bs.score, "bleu_signature": str(b.get_signature()), "precisions": list(bs.precisions),
                "bp": bs.bp, "sys_len": int(bs.sys_len), "ref_len": int(bs.ref_len), "chrf": cs.score,
                "chrf_signature": str(c.get_signature()), "n_sentences": len(hyps), "backend": "sacrebleu"}
    b = corpus_bleu(hyps, refs, tokenize_name=tokenize_name, lowercase=lowercase)
    c = corpus_chrf(hyps, refs, word_order=word_order, lowercase=lowercase)
    return {"bleu": b["score"], "bleu_signature": b["signature"], "precisions": b["precisions"], "bp": b["bp"],
            "sys_len": b["sys_len"], "ref_len": b["ref_len"], "chrf": c["score"], "chrf_signature": c["signature"],
            "n_sentences": len(hyps), "backend": "builtin"}


def paired_bootstrap(hyps_a: list[str], hyps_b: list[str], refs: list[list[str]], *, samples: int = 1000,
                     seed: int = 12345, tokenize_name: str = "13a", lowercase: bool = False) -> dict:
    """Koehn (2004) paired bootstrap resampling of corpus BLEU: system B against baseline A.
    Returns {bleu_a, bleu_b, delta, p_value, samples, seed}, with p = (1 + #{resamples where B ≤ A}) / (1 + samples)."""
    import numpy as np

    _check_refs(hyps_a, refs)
    _check_refs(hyps_b, refs)
    sa = np.array([bleu_stats(h, [r[i] for r in refs], tokenize_name=tokenize_name, lowercase=lowercase)
                   for i, h in enumerate(hyps_a)], dtype=np.float64)
    sb = np.array([bleu_stats(h, [r[i] for r in refs], tokenize_name=tokenize_name, lowercase=lowercase)
                   for i, h in enumerate(hyps_b)], dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(hyps_a)
    worse = 0
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if bleu_from_stats(sb[idx].sum(0).tolist())["score"] <= bleu_from_stats(sa[idx].sum(0).tolist())["score"]:
            worse += 1
    a, b = bleu_from_stats(sa.sum(0).tolist())["score"], bleu_from_stats(sb.sum(0).tolist())["score"]
    return {"bleu_a": a, "bleu_b": b, "delta": b - a, "p_value": (worse + 1) / (samples + 1),
            "samples": samples, "seed": seed}
