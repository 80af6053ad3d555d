"""Seeded synthetic sentences with known factors (spec §4): 8 topics, each with its own lexicon, plus a
sentence-wide tense (present/past) and number (singular/plural); 5–20 tokens, words drawn Zipfian within the
topic. The factors come back with the sentences, so tests score how much of them the latent holds
(topic NMI of k-means on μ). Own lexicon and templates."""

from __future__ import annotations

import random

TOPICS = {
    "sea": (["ship", "wave", "sailor", "harbor", "whale", "anchor", "island", "storm"],
            ["sail", "drift", "sink", "anchor", "float", "dive"], ["salty", "calm", "rough", "blue", "deep", "wet"]),
    "farm": (["cow", "barn", "farmer", "tractor", "field", "goat", "hen", "plow"],
             ["plant", "harvest", "feed", "milk", "plow", "herd"], ["muddy", "green", "fresh", "ripe", "old", "wide"]),
    "space": (["rocket", "planet", "star", "orbit", "comet", "moon", "probe", "astronaut"],
              ["launch", "orbit", "land", "scan", "glow", "spin"], ["distant", "bright", "cold", "vast", "dark", "red"]),
    "kitchen": (["chef", "pot", "knife", "oven", "soup", "bread", "spoon", "recipe"],
                ["cook", "bake", "stir", "slice", "boil", "taste"], ["hot", "sweet", "spicy", "crisp", "warm", "sour"]),
    "school": (["teacher", "pupil", "lesson", "book", "desk", "exam", "chalk", "class"],
               ["learn", "teach", "read", "write", "study", "grade"], ["clever", "quiet", "hard", "new", "long", "easy"]),
    "forest": (["tree", "fox", "owl", "branch", "moss", "deer", "trail", "leaf"],
               ["grow", "hide", "hunt", "climb", "rustle", "wander"], ["tall", "wild", "shady", "mossy", "thick", "dense"]),
    "city": (["taxi", "tower", "street", "mayor", "bridge", "subway", "crowd", "market"],
             ["rush", "build", "park", "shout", "trade", "commute"], ["busy", "noisy", "grey", "modern", "huge", "crowded"]),
    "music": (["guitar", "drum", "singer", "song", "band", "piano", "chord", "stage"],
              ["play", "sing", "strum", "tune", "record", "perform"], ["loud", "soft", "catchy", "slow", "lively", "sad"]),
}
_LINKS = ["and", "while", "because", "so", "but", "then"]
_PREPS = ["near", "with", "under", "behind", "beside", "past"]


def _zipf(rng: random.Random, items: list[str]) -> str:
    w = [1.0 / (k + 1) for k in range(len(items))]
    return rng.choices(items, weights=w)[0]


def _verb(v: str, tense: str, plural: bool) -> str:
    if tense == "past":
        return v + ("d" if v.endswith("e") else "ed")
    if plural:
        return v
    return v + ("es" if v.endswith(("sh", "ch", "s", "x")) else "s")


def _clause(rng, topic: str, tense: str, plural: bool) -> list[str]:
    nouns, verbs, adjs = TOPICS[topic]
    subj = _zipf(rng, nouns) + ("s" if plural else "")
    words = ["the"] + ([_zipf(rng, adjs)] if rng.random() < 0.5 else []) + [subj, _verb(_zipf(rng, verbs), tense, plural)]
    if rng.random() < 0.7:
        words += [rng.choice(_PREPS), "the"] + ([_zipf(rng, adjs)] if rng.random() < 0.4 else []) + [_zipf(rng, nouns)]
    return words


def lm_sentences(n: int, *, seed: int = 1) -> tuple[list[str], dict[str, list]]:
    """`n` sentences and their factors {'topic': [0..7], 'tense': [0/1], 'number': [0/1]}."""
    rng = random.Random(seed)
    names = list(TOPICS)
    sents: list[str] = []
    fac: dict[str, list] = {"topic": [], "tense": [], "number": []}
    while len(sents) < n:
        t = rng.randrange(len(names))
        tense = rng.choice(["present", "past"])
        plural = rng.random() < 0.5
        words = _clause(rng, names[t], tense, plural)
        while len(words) < 5 or (len(words) < 14 and rng.random() < 0.5):
            words += [rng.choice(_LINKS)] + _clause(rng, names[t], tense, plural)
        if len(words) > 20:
            continue
        sents.append(" ".join(words) + " .")
        fac["topic"].append(t)
        fac["tense"].append(int(tense == "past"))
        fac["number"].append(int(plural))
    return sents, fac


_OPENERS = ["hi there", "hello", "good morning", "hey", "excuse me"]
_ASKS = ["what do you think about the {n}", "have you seen the {n}", "tell me about the {n}",
         "do you like the {n}", "where is the {n}"]
_REPLIES = ["i love the {n}", "the {n} is {a}", "i never saw the {n}", "the {n} was {a} today",
            "ask the {m} about it", "no idea , sorry", "the {m} {v}s near the {n}"]


def dialogue_examples(n: int, *, seed: int = 1) -> tuple[list[dict], dict[str, list[str]]]:
    """`n` records {context: [2–4 turns], response, kind} and the valid responses of each context kind.

    A context kind is (topic, noun); its 3–6 valid responses are drawn once from seven templates filled with
    the topic's words (a known multimodal target). A context is an opener, optional small talk, and a
    question about the noun; the response is one valid response chosen uniformly."""
    rng = random.Random(seed)
    kinds: dict[str, list[str]] = {}
    for t, (nouns, verbs, adjs) in TOPICS.items():
        for noun in nouns[:4]:
            k = rng.randint(3, 6)
            temps = rng.sample(_REPLIES, k)
            others = [m for m in nouns if m != noun]
            kinds[f"{t}/{noun}"] = [s.format(n=noun, a=rng.choice(adjs), m=rng.choice(others), v=rng.choice(verbs))
                                    for s in temps]
    names = sorted(kinds)
    recs = []
    for _ in range(n):
        kind = rng.choice(names)
        noun = kind.split("/")[1]
        ctx = [rng.choice(_OPENERS)]
        if rng.random() < 0.5:
            ctx.append(rng.choice(_OPENERS))
        if rng.random() < 0.5:
            ctx.append("nice weather today")
        ctx.append(rng.choice(_ASKS).format(n=noun))
        recs.append({"context": ctx, "response": rng.choice(kinds[kind]), "kind": kind})
    return recs, kinds


def mode_coverage(samples: list[list[str]], kinds_of: list[str], kinds: dict[str, list[str]]) -> float:
    """Mean over contexts of the fraction of its kind's valid responses that its samples hit exactly."""
    fr = [len(set(s) & set(kinds[k])) / len(kinds[k]) for s, k in zip(samples, kinds_of)]
    return sum(fr) / len(fr) if fr else 0.0
