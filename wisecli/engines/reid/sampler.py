"""P x K identity sampler (Hermans et al. 2017; BoT's RandomIdentitySampler in spirit): each batch holds P
identities with K images each, so every anchor has positives and negatives for the batch-hard triplet loss.

Per epoch (seeded by seed + epoch): each eligible identity is cut into max(1, n_i // K) chunks of K images
(drawn with replacement when n_i < K); batches take P distinct identities among those with chunks left, until
fewer than P remain.  Identities need at least 2 images to be eligible.  Under DDP the identities are shuffled
with the shared seed and dealt round-robin to the ranks, so each rank sees its own identities and all ranks
yield the same number of batches.
"""

from __future__ import annotations

import numpy as np

from wisecli.cli.errors import InputError


class PKSampler:
    """Iterable of index batches (lists of P*K dataset indices); `set_epoch` reseeds."""

    def __init__(self, ids, p: int = 16, k: int = 4, *, seed: int = 0, rank: int = 0, world_size: int = 1):
        ids = np.asarray(ids)
        self.p, self.k, self.seed, self.rank, self.world = p, k, seed, rank, world_size
        self.epoch = 0
        uniq, counts = np.unique(ids, return_counts=True)
        eligible = uniq[counts >= 2]
        if len(eligible) < p * world_size:
            raise InputError(
                f"the P x K sampler needs at least {p * world_size} identities with >= 2 images; found "
                f"{len(eligible)} (of {len(uniq)} identities, {int((counts == 1).sum())} with a single image)",
                hint="lower --p, or add images of more identities")
        self.index = {int(u): np.flatnonzero(ids == u) for u in eligible}
        self._len = self._count()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chunks(self, rng: np.random.Generator) -> dict[int, list[np.ndarray]]:
        ids = np.array(sorted(self.index))
        rng.shuffle(ids)
        mine = ids[self.rank::self.world]
        out = {}
        for u in mine:
            idx = self.index[int(u)]
            idx = rng.choice(idx, size=self.k, replace=True) if len(idx) < self.k else rng.permutation(idx)
            n = max(1, len(idx) // self.k)
            out[int(u)] = [idx[j * self.k:(j + 1) * self.k] for j in range(n)]
        return out

    def _count(self) -> int:
        # identical on every rank: the smallest rank share decides
        counts = []
        for r in range(self.world):
            ids = sorted(self.index)[r::self.world]
            counts.append(sum(max(1, len(self.index[u]) // self.k) for u in ids) // self.p)
        return max(1, min(counts))

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        rng = np.random.default_rng(self.seed + 1000003 * self.epoch)
        chunks = self._chunks(rng)
        for _ in range(self._len):
            alive = [u for u, c in chunks.items() if c]
            if len(alive) < self.p:  # refill so every rank yields the same number of batches
                fresh = self._chunks(rng)
                for u, c in fresh.items():
                    if not chunks.get(u):
                        chunks[u] = c
                alive = [u for u, c in chunks.items() if c]
            pick = rng.choice(np.array(alive), size=self.p, replace=False)
            yield [int(i) for u in pick for i in chunks[int(u)].pop()]
