"""The signature preview (``run --preview``, the demo's ``signature.png``): avg rows above der rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def write_preview(path: Path, sig: np.ndarray, nb: int, title: str = "") -> Path:
    """avg rows (viridis) above der rows (diverging), one column per window, averaged down to ≤ 4 000 columns."""
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    if np.iscomplexobj(sig):
        avg, der = sig.real, sig.imag
    else:
        avg, der = sig[:, :nb], (sig[:, nb:] if sig.shape[1] > nb else None)
    n = avg.shape[0]
    if n > 4000:
        k = math.ceil(n / 4000)
        m = (n // k) * k

        def down(a):
            return a[:m].reshape(-1, k, a.shape[1]).mean(axis=1)

        avg = down(avg)
        der = None if der is None else down(der)
    rows = 1 if der is None else 2
    fig, ax = plt.subplots(rows, 1, figsize=(10, 2 + 0.12 * nb * rows), squeeze=False)
    im = ax[0, 0].imshow(avg.T, aspect="auto", cmap="viridis", interpolation="nearest")
    ax[0, 0].set_ylabel("avg block")
    fig.colorbar(im, ax=ax[0, 0])
    if der is not None:
        lim = float(np.abs(der).max()) or 1.0
        im2 = ax[1, 0].imshow(der.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax[1, 0].set_ylabel("der block")
        fig.colorbar(im2, ax=ax[1, 0])
    ax[-1, 0].set_xlabel("window")
    if title:
        ax[0, 0].set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    return Path(path)
