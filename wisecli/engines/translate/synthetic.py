"""Synthetic parallel text (seeded) for tests, demos and machines without gettext catalogs.

A small grammar over a lexicon of ~300 English words (nouns with a gender, adjectives, verbs, determiners,
numbers, conjunctions) makes source sentences of 3–20 tokens with noun phrases, subject–verb agreement and
subordinate clauses. A deterministic transduction makes the target: invented words (a letter cipher of the
stem), gender and number suffixes on nouns, adjectives and articles that agree, adjectives after their noun,
the verb last in subordinate clauses, numbers copied. So a model must reorder and agree: it needs attention,
not a word-by-word table.
"""

from __future__ import annotations

import random

_NOUNS = ("dog cat horse bird fish house tree river mountain city garden window door table chair book letter "
          "friend teacher doctor farmer king queen child student driver singer painter baker sailor soldier "
          "road bridge car train boat ship plane lamp clock phone computer file folder program message "
          "window key box bottle cup plate apple bread cheese flower forest island lake field village "
          "castle tower market school church").split()
_ADJS = ("big small old young red blue green black white happy sad quick slow tall short warm cold new "
         "bright dark quiet loud strong weak rich poor clean dirty empty full heavy light soft hard sweet "
         "brave clever gentle proud").split()
_VERBS = ("see like find open close carry build paint read write visit help follow call watch hold "
          "push pull clean cook sell buy wash fix draw love hate miss greet answer ask thank teach "
          "meet join leave reach").split()
_CONJ = {"because": "porke", "when": "kuando", "although": "malgre", "while": "mentre"}
_GENDERS = ("m", "f", "n")
_SUFFIX = {("m", 1): "o", ("m", 2): "os", ("f", 1): "a", ("f", 2): "as", ("n", 1): "um", ("n", 2): "ia"}
_DEF = {("m", 1): "lo", ("m", 2): "los", ("f", 1): "la", ("f", 2): "las", ("n", 1): "lu", ("n", 2): "li"}
_INDEF = {"m": "un", "f": "una", "n": "unu"}
_CIPHER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "eghfiklmonpqrsutvwxzaybcdj")


def _invent(word: str) -> str:
    return word.translate(_CIPHER)


def _gender(noun: str) -> str:
    return _GENDERS[sum(map(ord, noun)) % 3]


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")


def _np(rng: random.Random) -> tuple[list[str], list[str], int]:
    noun = rng.choice(_NOUNS)
    g = _gender(noun)
    kind = rng.random()
    adjs = rng.sample(_ADJS, rng.choice((0, 0, 1, 1, 2)))
    if kind < 0.45:
        num, src_det, tgt_det = 1, ["the"], [_DEF[(g, 1)]]
    elif kind < 0.65:
        num, src_det, tgt_det = 1, ["a"], [_INDEF[g]]
    elif kind < 0.85:
        num, src_det, tgt_det = 2, ["the"], [_DEF[(g, 2)]]
    else:
        n = str(rng.randint(2, 99))
        num, src_det, tgt_det = 2, [n], [n]
    suffix = _SUFFIX[(g, num)]
    src = src_det + adjs + [noun if num == 1 else _plural(noun)]
    tgt = tgt_det + [_invent(noun) + suffix] + [_invent(a) + suffix for a in adjs]
    return src, tgt, num


def _clause(rng: random.Random, sub: bool) -> tuple[list[str], list[str]]:
    s_src, s_tgt, num = _np(rng)
    verb = rng.choice(_VERBS)
    v_src = (_plural(verb) if num == 1 else verb)
    v_tgt = _invent(verb) + ("et" if num == 1 else "ent")
    o_src, o_tgt, _ = _np(rng)
    if sub:
        return s_src + [v_src] + o_src, s_tgt + o_tgt + [v_tgt]
    return s_src + [v_src] + o_src, s_tgt + [v_tgt] + o_tgt


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    """One (source, target) pair of 3–20 source tokens."""
    while True:
        src, tgt = _clause(rng, sub=False)
        if rng.random() < 0.4:
            conj = rng.choice(sorted(_CONJ))
            s2, t2 = _clause(rng, sub=True)
            src, tgt = src + [conj] + s2, tgt + [_CONJ[conj]] + t2
        if 3 <= len(src) <= 20:
            return " ".join(src), " ".join(tgt)


def pairs(n: int, seed: int = 1) -> tuple[list[str], list[str]]:
    """`n` synthetic (source, target) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    out = [sentence_pair(rng) for _ in range(n)]
    return [s for s, _ in out], [t for _, t in out]


def lexicon_size() -> int:
    """Number of distinct source words of the grammar (nouns with plurals, adjectives, verb forms, closed class)."""
    return len(set(_NOUNS)) * 2 + len(set(_ADJS)) + len(set(_VERBS)) * 2 + len(_CONJ) + 2 + 98
