"""Pictures of `evaluate` and `demo`: accuracy against k, and the FM mask as an image (`--mask-image HxW`).
matplotlib comes headless from `runtime.plots.pyplot()` and every PNG is written by `save_figure` (atomic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError


def plot_curves(summary: dict, path: Path, title: str = "", refit: str = "logreg") -> Path:
    """Accuracy against k, one line per method (mean ± std over seeds), the all-features level dashed."""
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, c in summary["curves"].items():
        ks = list(c)
        mean = np.array([c[k]["mean"] for k in ks])
        std = np.array([c[k]["std"] for k in ks])
        ax.plot(ks, mean, marker="o", label=m, lw=2.5 if m == "fm" else 1.2)
        ax.fill_between(ks, mean - std, mean + std, alpha=0.15)
    if summary.get("all_features_accuracy") is not None:
        ax.axhline(summary["all_features_accuracy"], ls="--", color="gray", label="all features")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (selected features)")
    ax.set_ylabel(f"test accuracy ({refit} refit)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return Path(path)


def mask_shape(text: str, d: int) -> tuple[int, int]:
    """`--mask-image HxW`, checked against d before any work starts."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--mask-image {text!r}: expected HxW, for example 8x8", hint="give the image shape") from None
    if h < 1 or w < 1 or h * w != d:
        raise InputError(f"--mask-image {text}: {h}×{w} ≠ {d} features", hint="H·W must equal the number of features")
    return h, w


def mask_image(scores: np.ndarray, shape: tuple[int, int], path: Path, title: str = "FM mask (seed 0)") -> Path:
    """The mask scores as an H×W image (pixel data)."""
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(np.asarray(scores).reshape(shape), cmap="viridis")
    ax.set_title(title)
    ax.axis("off")
    save_figure(fig, path, dpi=100)
    return Path(path)
