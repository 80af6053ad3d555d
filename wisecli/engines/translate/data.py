"""Parallel text in, token batches out: the training/validation pairs (`--src/--tgt`, `--tsv`, `--gettext`,
synthetic), the hash split, and the token-bucket loader.

- Validation: `--valid-src/--valid-tgt` or `--valid-tsv`, else a split by a hash of the source (2 %, at most
  2,000 pairs): the same source always lands on the same side, whatever the order or the machine.
- Pairs whose source or target is longer than `max_len` tokens (after BPE, `</s>` included) are dropped and
  counted; empty sides are dropped too (counted as `empty`).
- Batches hold at most `max_tokens` tokens (the longer side × sentences); lengths are bucketed by sorting with
  a seeded jitter, and the batch order is reshuffled in `set_epoch` (the trainer calls it every interval), so a
  resumed run sees the same batches.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import torch

from wisecli.cli.errors import InputError

from .tokenizer import BOS, EOS

GETTEXT_HINT = "languages with catalogs are listed by 'wise translate info'; or give --src/--tgt or --tsv"


def read_pairs(*, src: list | None = None, tgt: list | None = None, tsv: list | None = None, src_col: int = 0,
               tgt_col: int = 1, gettext: str | None = None, direction: str | None = None,
               gettext_dir: Path | None = None, placeholders: str = "drop", encoding: str = "utf-8",
               synthetic: int = 0, seed: int = 1) -> tuple[list[str], list[str], dict]:
    """Source and target lines from files (repeatable), TSV files, the gettext catalogs or the synthetic
    grammar; with a record of where they came from."""
    from wisecli.runtime.io import gettext as G
    from wisecli.runtime.io.text import read_parallel, read_tsv

    S, T, rec = [], [], {}
    src, tgt, tsv = list(src or []), list(tgt or []), list(tsv or [])
    if src or tgt:
        if len(src) != len(tgt):
            raise InputError(f"{len(src)} --src file(s) but {len(tgt)} --tgt file(s)",
                             hint="give one --tgt for each --src, in the same order")
        for s, t in zip(src, tgt):
            a, b = read_parallel(s, t, encoding=encoding)
            S += a
            T += b
        rec["files"] = [str(p) for p in src + tgt]
    for f in tsv:
        a, b = read_tsv(f, src_col=src_col, tgt_col=tgt_col, encoding=encoding)
        S += a
        T += b
        rec.setdefault("files", []).append(str(f))
    if gettext:
        dirs = [Path(gettext_dir)] if gettext_dir else list(G.LOCALE_DIRS)
        found = G.languages(dirs)
        if gettext not in found:
            have = ", ".join(f"{k} ({v})" for k, v in found.items()) or "none"
            raise InputError(f"no gettext catalogs for '{gettext}' under {', '.join(map(str, dirs))}",
                             hint=f"languages found: {have}; " + GETTEXT_HINT)
        if direction not in (None, f"en-{gettext}", f"{gettext}-en"):
            raise InputError(f"--direction must be en-{gettext} or {gettext}-en, not {direction}",
                             hint="the catalogs translate English messages")
        doc = G.load_pairs(gettext, dirs=dirs, direction=direction, placeholders=placeholders)
        if not doc["src"]:
            per = ", ".join(f"{k} {v}" for k, v in doc["dropped"].items() if v)
            raise InputError(f"no '{gettext}' pairs left after cleaning ({doc['raw']} entries; dropped: {per})",
                             hint="try --placeholders mask, or give --src/--tgt")
        S += doc["src"]
        T += doc["tgt"]
        rec["gettext"] = {k: v for k, v in doc.items() if k not in ("src", "tgt")}
    if synthetic:
        from .synthetic import pairs

        a, b = pairs(synthetic, seed=seed)
        S += a
        T += b
        rec["synthetic"] = {"pairs": synthetic, "seed": seed}
    return S, T, rec


def in_valid_split(src: str, percent: float = 2.0) -> bool:
    """Whether a source sentence falls in the hash-split validation part."""
    h = int.from_bytes(hashlib.sha256(src.encode("utf-8")).digest()[:8], "big")
    return (h % 10000) < percent * 100


def hash_split(src: list[str], tgt: list[str], *, percent: float = 2.0, cap: int = 2000):
    """(train_src, train_tgt, valid_src, valid_tgt) split by a hash of the source."""
    ts, tt, vs, vt = [], [], [], []
    for s, t in zip(src, tgt):
        if in_valid_split(s, percent) and len(vs) < cap:
            vs.append(s)
            vt.append(t)
        else:
            ts.append(s)
            tt.append(t)
    return ts, tt, vs, vt


def encode_pairs(tok, src: list[str], tgt: list[str], max_len: int) -> tuple[list[tuple[list[int], list[int]]], dict]:
    """Token ids of each pair (`</s>` appended to both sides); over-long and empty pairs dropped and counted."""
    out, long, empty = [], 0, 0
    for s, t in zip(src, tgt):
        if not s.strip() or not t.strip():
            empty += 1
            continue
        a, b = tok.encode(s) + [EOS], tok.encode(t) + [EOS]
        if len(a) > max_len or len(b) > max_len:
            long += 1
            continue
        out.append((a, b))
    return out, {"over_max_len": long, "empty": empty}


def collate(pairs: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Padded `src` [B, S], `tgt_in` (`<s>` y) and `tgt_out` (y `</s>`) [B, T]."""
    b = len(pairs)
    s_len = max(len(a) for a, _ in pairs)
    t_len = max(len(t) for _, t in pairs)
    src = torch.zeros(b, s_len, dtype=torch.long)
    tin = torch.zeros(b, t_len, dtype=torch.long)
    tout = torch.zeros(b, t_len, dtype=torch.long)
    for i, (a, t) in enumerate(pairs):
        src[i, : len(a)] = torch.tensor(a)
        tout[i, : len(t)] = torch.tensor(t)
        tin[i, 0] = BOS
        tin[i, 1: len(t)] = torch.tensor(t[:-1])
    return {"src": src, "tgt_in": tin, "tgt_out": tout}


def pack_by_tokens(order: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Cut `order` into consecutive index batches whose padded size (longest × count) stays within `max_tokens`
    (a single longer item gets a batch of its own)."""
    batches, cur, longest = [], [], 0
    for i in order:
        n = lengths[i]
        if cur and max(longest, n) * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    return batches


def token_batches(pairs, max_tokens: int, seed: int) -> list[list[int]]:
    """Index batches of at most `max_tokens` tokens, lengths bucketed with a seeded jitter."""
    rng = random.Random(seed)
    lengths = [max(len(a), len(t)) for a, t in pairs]
    order = sorted(range(len(pairs)), key=lambda i: (lengths[i] + rng.random() * 2, i))
    batches = pack_by_tokens(order, lengths, max_tokens)
    rng.shuffle(batches)
    return batches


class TokenLoader:
    """The training loader: token-bucket batches, reshuffled per interval by `set_epoch`; shards by rank under
    DDP. It is its own `sampler` (the trainer calls `loader.sampler.set_epoch`)."""

    def __init__(self, pairs, max_tokens: int, seed: int = 1, rank: int = 0, world: int = 1):
        self.pairs, self.max_tokens, self.seed, self.rank, self.world = pairs, max_tokens, seed, rank, world
        self.sampler = self
        self.epoch = 0
        self._batches = self._make()

    def _make(self):
        b = token_batches(self.pairs, self.max_tokens, self.seed * 100003 + self.epoch)
        # every rank takes the same number of steps (one more on one rank would hang the gradient all-reduce):
        # the last len % world batches of this interval's shuffle sit out, other ones each interval
        return b[: len(b) - len(b) % self.world][self.rank::self.world]

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the buckets for this interval."""
        self.epoch = epoch
        self._batches = self._make()

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self):
        for idx in self._batches:
            yield collate([self.pairs[i] for i in idx])
