"""Sentences, tokenisation, vocabulary, offline corpora, splits and length-bucketed batches (spec §2.1, §4).

- Ids: pad 0, unk 1, `<s>` 2, `</s>` 3; a sentence is `<s> w1 … wn </s>` (n + 2 ids, n + 1 predicted tokens).
- `reference` tokenisation (TWR-VAE's `Corpus.py` as the spec states it): lowercase, collapse period runs,
  split off `. ? ! ,` and `'s`, split on whitespace; `whitespace` splits only.
- The vocabulary is built from the training sentences (`min_count`, `max_vocab` by frequency, ties by word) and
  stored in the checkpoint as a tensor of UTF-8 bytes (checkpoints hold only tensors and plain types).
- Offline corpora (§4): WordNet examples (`/usr/share/wordnet`), English gettext messages (msgids of the
  machine's `.mo` catalogs, placeholders removed), the Python documentation (`pydoc_data.topics`), each kept
  to sentences of 4–25 tokens and de-duplicated. Splits: 80/10/10 by a hash of the normalised sentence.
- Batches: sentences bucketed by length and shuffled per epoch from (seed, epoch) in `set_epoch`, so the
  trainer's resume gives the same order (our choice; the reference walks one length-sorted order).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from pathlib import Path

import torch

from wisecli.cli.errors import InputError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
_PERIODS = re.compile(r"\.{2,}")
_PUNCT = re.compile(r"([.?!,])")
_POSS = re.compile(r"'s\b")


def tokenize(line: str, how: str = "reference") -> list[str]:
    """Words of one line (see the module docstring)."""
    if how == "whitespace":
        return line.split()
    s = _PERIODS.sub(".", line.lower())
    s = _PUNCT.sub(r" \1 ", s)
    s = _POSS.sub(" 's", s)
    return s.split()


class Vocab:
    """Word ↔ id with the four specials first."""

    def __init__(self, words: list[str]):
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, sentences: list[list[str]], *, min_count: int = 1, max_vocab: int | None = None) -> "Vocab":
        counts = Counter(w for s in sentences for w in s)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            words = words[: max(0, int(max_vocab) - len(SPECIALS))]
        return cls(words)

    def encode(self, words: list[str]) -> list[int]:
        """`<s> w… </s>` ids (unknown words → unk)."""
        return [BOS] + [self.stoi.get(w, UNK) for w in words] + [EOS]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else "<unk>")
        return " ".join(out)

    def state(self) -> torch.Tensor:
        """The words as one uint8 tensor (newline separated): a checkpoint holds tensors, not long lists."""
        return torch.tensor(list("\n".join(self.itos).encode("utf-8")), dtype=torch.uint8)

    @classmethod
    def from_state(cls, t: torch.Tensor) -> "Vocab":
        words = bytes(t.tolist()).decode("utf-8").split("\n")
        return cls(words[len(SPECIALS):])


def read_sentences(path, *, encoding: str = "utf-8") -> list[str]:
    """Non-empty lines of a text file (`-`: stdin); missing, undecodable or empty input is an InputError."""
    from wisecli.runtime.io.text import read_lines

    lines = [ln.strip() for ln in read_lines(path, encoding=encoding)]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise InputError(f"{path} holds no sentence (empty or blank lines only)",
                         hint="give a text file with one sentence a line")
    return lines


def encode_all(vocab: Vocab, lines: list[str], *, how: str, max_len: int) -> tuple[list[list[int]], int]:
    """Ids of each line; lines with more than `max_len` words or none are dropped, and counted."""
    out, dropped = [], 0
    for ln in lines:
        w = tokenize(ln, how)
        if not w or len(w) > max_len:
            dropped += 1
            continue
        out.append(vocab.encode(w))
    return out, dropped


def split_of(sentence: str) -> str:
    """'train', 'valid' or 'test' (80/10/10) from a hash of the normalised sentence."""
    key = " ".join(sentence.lower().split()).encode("utf-8")
    h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
    return "train" if h < 80 else "valid" if h < 90 else "test"


def hash_valid(lines: list[str], percent: float = 5.0) -> tuple[list[str], list[str]]:
    """(train, valid): a `percent` % validation split by a hash of the normalised sentence."""
    tr, va = [], []
    for ln in lines:
        key = " ".join(ln.lower().split()).encode("utf-8")
        h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 10000
        (va if h < percent * 100 else tr).append(ln)
    return tr, va


# ---------------------------------------------------------------- offline corpora
WORDNET = Path("/usr/share/wordnet")


def _keep(sents, lo: int = 4, hi: int = 25) -> list[str]:
    seen, out = set(), []
    for s in sents:
        s = " ".join(s.split())
        n = len(tokenize(s))
        k = s.lower()
        if lo <= n <= hi and k not in seen:
            seen.add(k)
            out.append(s)
    return out


def wordnet_examples(root: Path = WORDNET) -> list[str]:
    """The quoted example sentences after `|` in WordNet's data.{noun,verb,adj,adv}, split on `;`."""
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        p = root / f"data.{pos}"
        if not p.is_file():
            continue
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1]
            out += [q.strip() for q in re.findall(r'"([^"]+)"', gloss)]
    return _keep(out)


def gettext_messages() -> list[str]:
    """English msgids of the machine's gettext catalogs (of the language with most catalogs), placeholders,
    accelerators and markup removed."""
    from wisecli.runtime.io import gettext as G

    langs = G.languages()
    if not langs:
        return []
    lang = max(langs, key=lambda k: (langs[k], k))
    out = []
    for f in G.catalogs(lang):
        if f.name.startswith("iso_"):
            continue
        try:
            entries = G.read_mo(f) if f.suffix == ".mo" else G.read_po(f)
        except Exception:  # a broken system catalog is skipped, never fatal
            continue
        for msgid, _ in entries:
            if not msgid or "\n" in msgid.strip():
                continue
            s = msgid
            for ph in G.placeholders(s):
                s = s.replace(ph, " ")
            s = re.sub(r"(?<![\w&_])[_&](?=\w)", "", s)
            out.append(s)
    return _keep(out)


def python_docs() -> list[str]:
    """Sentences of the Python documentation shipped with the standard library (`pydoc_data.topics`)."""
    from pydoc_data.topics import topics

    out = []
    for text in topics.values():
        text = re.sub(r"\s+", " ", text)
        out += re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    return _keep([s for s in out if not re.search(r"[{}<>=*|]|\.\.\.|>>>", s)])


CORPORA = {"wordnet": wordnet_examples, "gettext": gettext_messages, "pydoc": python_docs}


def corpora_found() -> dict[str, int]:
    """The offline corpora present on this machine with their sentence counts."""
    out = {}
    for name, fn in CORPORA.items():
        try:
            n = len(fn())
        except Exception:
            n = 0
        if n:
            out[name] = n
    return out


def load_corpus(name: str | None) -> tuple[str, list[str]]:
    """(name, sentences) of `name`, or of the first corpus found (wordnet, gettext, pydoc) when None."""
    if name is not None:
        if name not in CORPORA:
            raise InputError(f"unknown corpus {name!r}", hint=f"choose one of {', '.join(CORPORA)}")
        sents = CORPORA[name]()
        if not sents:
            found = corpora_found()
            raise InputError(f"corpus {name!r} is not on this machine",
                             hint="corpora found: " + (", ".join(f"{k} ({v})" for k, v in found.items()) or "none")
                             + ("; apt install wordnet-base for WordNet" if name == "wordnet" else ""))
        return name, sents
    for key, fn in CORPORA.items():
        sents = fn()
        if len(sents) >= 500:
            return key, sents
    return "pydoc", python_docs()


# ---------------------------------------------------------------- batches
def collate(seqs: list[list[int]]) -> dict:
    """{'x': [B, T] padded ids, 'lengths': [B]} (T = the longest `<s> … </s>`)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    x = torch.full((len(seqs), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return {"x": x, "lengths": lengths}


class BucketSampler:
    """Batches of similar length, shuffled from (seed, epoch): `set_epoch` makes the order resumable."""

    def __init__(self, lengths: list[int], batch_size: int, *, seed: int = 1, rank: int = 0, world: int = 1):
        self.lengths, self.bs, self.seed, self.rank, self.world = lengths, batch_size, seed, rank, world
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        idx = list(range(len(self.lengths)))
        rng.shuffle(idx)
        chunk = self.bs * 50  # sort within chunks of 50 batches: similar lengths, still shuffled
        out = []
        for i in range(0, len(idx), chunk):
            part = sorted(idx[i:i + chunk], key=lambda j: self.lengths[j])
            out += [part[k:k + self.bs] for k in range(0, len(part), self.bs)]
        rng.shuffle(out)
        return out[self.rank::self.world] if self.world > 1 else out

    def __len__(self) -> int:
        n = -(-len(self.lengths) // self.bs)
        return -(-n // self.world)


class SentenceLoader:
    """An iterable of collated batches over encoded sentences, with a `sampler` the trainer calls `set_epoch` on."""

    def __init__(self, seqs: list[list[int]], batch_size: int, *, seed: int = 1, rank: int = 0, world: int = 1):
        self.seqs = seqs
        self.sampler = BucketSampler([len(s) for s in seqs], batch_size, seed=seed, rank=rank, world=world)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for b in self.sampler.batches():
            yield collate([self.seqs[i] for i in b])
