"""The AI City Challenge 2020 Track 2 submission file (`wise reid evaluate --aic-submit FILE`).

Format, from public code (the Track 2 writers of heshuting555/AICITY2020_DMT_VehicleReID, `utils/metrics.py`,
and the AIC 2021 ensembles that follow them): one line per query, in `name_query.txt` order; on each line the
100 best test images, best first, as their image numbers (`000123.jpg` -> 123), separated by single spaces.
Those writers print the sorted gallery index + 1 over the test images sorted by name, which is the image number
because the test images are numbered 1..N; we print the number parsed from each name, which stays right when a
list is partial or not sorted.

Choices where the challenge text we could check is silent:
- Ranking: d = 1 - cos of the L2-normalised embeddings (as `evaluate`), or the k-reciprocal re-ranked distance
  with `--rerank`; a stable ascending sort (ties by gallery position) in query blocks on the device, of which the
  first 100 columns are kept.  Nothing is dropped as junk: test ids and cameras are unknown.
- Fewer than 100 test images is an input error (exit 2): every line must hold 100 numbers.
- From features files (`--query q.npz --gallery g.npz`) the image numbers come from the stored `paths`, and the
  lines follow ascending query number, which is the `name_query.txt` order of the challenge data whatever the
  order of `--shard` parts.
- The file is refused when it exists unless `--overwrite`, and written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

TOP = 100


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse a submission path whose folder is missing, or which exists without `overwrite`."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}", hint="create it first")
    if path.exists() and not overwrite:
        raise InputError(f"output exists: {path}", hint="pass --overwrite to replace it, or choose another --aic-submit")


def check_gallery_size(num_gallery: int, top: int = TOP) -> None:
    if num_gallery < top:
        raise InputError(f"the test set has {num_gallery} images; a Track 2 submission lists {top} per query",
                         hint="give the full image_test/ (or all gallery feature parts)")


@torch.no_grad()
def rank_top(qf: torch.Tensor | None, gf: torch.Tensor | None, top: int, device: torch.device, *,
             dist: torch.Tensor | None = None, fast: bool = False) -> torch.Tensor:
    """Indices (Q x top, int64, CPU) of the `top` nearest gallery items of every query, best first, ties by
    gallery index.  Give features (cosine distance, computed block by block on `device`) or a Q x G distance
    matrix `dist` (e.g. after re-ranking)."""
    from .distance import distance_blocks

    check_gallery_size(len(gf) if dist is None else dist.shape[1], top)
    out = [torch.sort(d.float(), dim=1, stable=True).indices[:, :top].cpu()
           for _, d in distance_blocks(qf, gf, distmat=dist, device=device, fast=fast)]
    return torch.cat(out) if out else torch.zeros(0, top, dtype=torch.long)


def write_submission(path: Path, order: torch.Tensor, gallery_numbers: np.ndarray) -> dict:
    """Write one line per row of `order` (gallery positions, best first) as image numbers; atomic."""
    from wisecli.runtime.io.atomic import write_text

    numbers = np.asarray(gallery_numbers, dtype=np.int64)[order.numpy()]
    write_text(path, "".join(" ".join(map(str, row)) + "\n" for row in numbers.tolist()))
    return {"file": str(path), "queries": int(numbers.shape[0]), "gallery": int(len(gallery_numbers)),
            "top": int(numbers.shape[1]) if numbers.ndim == 2 else 0}
