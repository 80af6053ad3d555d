"""A byte-level BPE tokenizer (no dependency), stored inside the checkpoint as tensors and strings.

- Text is NFC-normalised, nothing else (no lowercasing, no Moses tokenisation); `decode(encode(s)) == NFC(s)`,
  so for NFC text (the gettext cleaning makes it so) the round trip is exact.
- A regex cuts chunks: an optional leading space and a run of letters, of digits or of other non-space
  characters (punctuation, symbols, combining marks); whitespace runs alone (the last space of a run joins
  the next word). Merges never cross chunks.
- Ids: pad 0, `<s>` 1, `</s>` 2, `<unk>` 3 (never produced), the 256 bytes 4..259, then the merges in order.
- Learning: pair counts over unique chunks weighted by frequency, a heap of counts with lazy deletion, and a
  pair → chunk index, so each merge touches only the chunks holding the pair; ties go to the smaller pair of
  ids (deterministic); learning stops at `vocab_size` or when no pair occurs twice.
- Encoding caches each chunk's ids.

`--tokenizer sentencepiece` (extra `wisecli[mt]`) is a unigram SentencePiece model with byte fallback trained
in process on NFC text, with the same special ids (pad 0, `<s>` 1, `</s>` 2, `<unk>` 3). Our settings where
SentencePiece's defaults would break the exact round trip: identity normalisation (we apply NFC ourselves), no
dummy prefix, whitespace runs kept; `hard_vocab_limit=False`, so `--vocab-size` is an upper bound on a small
corpus. The serialized model is stored in the checkpoint as a uint8 tensor. `tokenizer_from_state` rebuilds
either kind from a checkpoint.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections import Counter, defaultdict

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
OFFSET = 4
PATTERN = r" ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"


class ByteBPE:
    """Byte-level BPE: `encode(text) -> list[int]`, `decode(ids) -> str`, `state()` for the checkpoint."""

    def __init__(self, merges: list[tuple[int, int]], pattern: str = PATTERN):
        self.merges = [tuple(int(x) for x in m) for m in merges]
        self.pattern = pattern
        self._re = re.compile(pattern)
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.bytes_of: list[bytes] = [b""] * OFFSET + [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.bytes_of.append(self.bytes_of[a] + self.bytes_of[b])
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids (specials, bytes, merges)."""
        return OFFSET + 256 + len(self.merges)

    def chunks(self, text: str) -> list[str]:
        """The regex chunks of NFC text (their concatenation is the text)."""
        return self._re.findall(unicodedata.normalize("NFC", text))

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = [b + OFFSET for b in chunk.encode("utf-8")]
        ranks = self.ranks
        while len(ids) > 1:
            best, pos = None, -1
            for i in range(len(ids) - 1):
                r = ranks.get((ids[i], ids[i + 1]))
                if r is not None and (best is None or r < best):
                    best, pos = r, i
            if best is None:
                break
            pair, new = self.merges[best], OFFSET + 256 + best
            out, i = [], 0
            while i < len(ids):
                if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of a text (no `<s>`/`</s>`)."""
        out: list[int] = []
        cache = self._cache
        for ch in self.chunks(text):
            ids = cache.get(ch)
            if ids is None:
                ids = self._encode_chunk(ch)
                if len(cache) < 500_000:
                    cache[ch] = ids
            out.extend(ids)
        return out

    def decode(self, ids) -> str:
        """Text of token ids; special ids are skipped, invalid UTF-8 (a model's output) is replaced."""
        data = b"".join(self.bytes_of[i] for i in ids if OFFSET <= int(i) < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def state(self) -> dict:
        """Checkpoint form: merges as an int64 tensor [M, 2], the regex and the specials as strings."""
        import torch

        merges = torch.tensor(self.merges, dtype=torch.int64).reshape(-1, 2)
        return {"kind": "bpe", "merges": merges, "pattern": self.pattern, "specials": list(SPECIALS)}

    @classmethod
    def from_state(cls, state: dict) -> "ByteBPE":
        """Rebuild from `state()` (as loaded with weights_only=True)."""
        return cls([tuple(m) for m in state["merges"].tolist()], state["pattern"])

    def fingerprint(self) -> str:
        """A short hash of the merges and the regex (resume checks that the tokenizer is the same)."""
        import hashlib

        h = hashlib.sha256(self.pattern.encode())
        h.update(repr(self.merges).encode())
        return h.hexdigest()[:16]


def learn_bpe(texts, vocab_size: int = 8000, pattern: str = PATTERN) -> ByteBPE:
    """Learn merges on `texts` (an iterable of strings) until `vocab_size` ids or no pair occurs twice."""
    rx = re.compile(pattern)
    freq: Counter = Counter()
    for t in texts:
        freq.update(rx.findall(unicodedata.normalize("NFC", t)))
    words = [[b + OFFSET for b in w.encode("utf-8")] for w in freq]
    counts = list(freq.values())
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_count[p] += counts[wi]
            where[p].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    n_merges = max(0, vocab_size - OFFSET - 256)
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc:
            continue  # stale entry
        if -negc < 2:
            break
        new = OFFSET + 256 + len(merges)
        merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for wi in list(where.pop(pair, ())):
            w, c = words[wi], counts[wi]
            for p in zip(w, w[1:]):
                pair_count[p] -= c
                changed.add(p)
                where[p].discard(wi)
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == pair[0] and w[i + 1] == pair[1]:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for p in zip(out, out[1:]):
                pair_count[p] += c
                changed.add(p)
                where[p].add(wi)
        pair_count.pop(pair, None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
    return ByteBPE(merges, pattern)


class SentencePiece:
    """Unigram SentencePiece with byte fallback: the same interface as `ByteBPE`."""

    def __init__(self, proto: bytes):
        import sentencepiece as spm

        self.proto = bytes(proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.proto)

    @property
    def vocab_size(self) -> int:
        """Number of ids (specials, bytes, pieces)."""
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of a text (no `<s>`/`</s>`)."""
        return self._sp.encode(unicodedata.normalize("NFC", text))

    def decode(self, ids) -> str:
        """Text of token ids; special ids are skipped."""
        return self._sp.decode([int(i) for i in ids if int(i) > UNK])

    def state(self) -> dict:
        """Checkpoint form: the serialized model as a uint8 tensor."""
        import torch

        proto = torch.frombuffer(bytearray(self.proto), dtype=torch.uint8).clone()
        return {"kind": "sentencepiece", "proto": proto, "specials": list(SPECIALS)}

    @classmethod
    def from_state(cls, state: dict) -> "SentencePiece":
        """Rebuild from `state()` (as loaded with weights_only=True)."""
        return cls(state["proto"].numpy().tobytes())

    def fingerprint(self) -> str:
        """A short hash of the serialized model."""
        import hashlib

        return hashlib.sha256(self.proto).hexdigest()[:16]


def learn_sentencepiece(texts, vocab_size: int = 8000, *, seed: int = 1) -> SentencePiece:
    """Train a unigram model with byte fallback on `texts` (one thread, a fixed seed: the same data gives the
    same model); at most 2M sentences are sampled."""
    import io

    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    lines = [unicodedata.normalize("NFC", t) for t in texts if t and "\n" not in t]
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=out, vocab_size=int(vocab_size), model_type="unigram",
        byte_fallback=True, character_coverage=1.0, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
        normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        hard_vocab_limit=False, input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=1,
        minloglevel=2)
    return SentencePiece(out.getvalue())


def tokenizer_from_state(state: dict):
    """The tokenizer stored in a checkpoint (`ByteBPE` or `SentencePiece`)."""
    if state.get("kind", "bpe") == "sentencepiece":
        from importlib.util import find_spec

        if find_spec("sentencepiece") is None:
            from wisecli.cli.errors import InputError

            raise InputError("this model's tokenizer is SentencePiece, and the sentencepiece package is missing",
                             hint='pip install "wisecli[mt]"')
        return SentencePiece.from_state(state)
    return ByteBPE.from_state(state)


def learn_tokenizer(kind: str, texts, vocab_size: int):
    """Learn the tokenizer `kind` ("bpe" or "sentencepiece") on `texts`."""
    return learn_sentencepiece(texts, vocab_size) if kind == "sentencepiece" else learn_bpe(texts, vocab_size)
