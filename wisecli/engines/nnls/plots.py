"""The PNGs of `wise nnls`: abundance maps (`run --maps`), sampled fronts (`pareto --plot`), error versus budget
(`evaluate --plot`) and the demo's reconstructions. Every file is written atomically (`runtime.plots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wisecli.runtime.plots import pyplot, save_figure


def _save(fig, path, **kw) -> Path:
    from wisecli.cli.errors import OutputError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {path.parent}: {exc.strerror}", hint="check the folder") from None
    save_figure(fig, path, dpi=90, **kw)
    return path


def write_maps(out: Path, stem: str, X: np.ndarray, spatial) -> list[Path]:
    """One PNG abundance map per atom, {stem}.mapNN.png: row i of X (r×n) reshaped to the cube's spatial shape."""
    from wisecli.runtime.io.atomic import atomic_path

    plt = pyplot()
    paths = []
    for i in range(X.shape[0]):
        path = Path(out) / f"{stem}.map{i:02d}.png"
        with atomic_path(path) as tmp:
            plt.imsave(tmp, X[i].reshape(spatial), cmap="viridis", format="png")
        paths.append(path)
    return paths


def plot_fronts(path, fr) -> Path:
    """20 sampled fronts (relative error vs k) and the total error versus q (the LP bound for every budget)."""
    from .select import lp_curve

    plt = pyplot()
    n, K1 = fr.err.shape
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for j in np.linspace(0, n - 1, min(20, n)).astype(int):
        rel = np.sqrt(fr.err[j] / max(fr.beta[j], 1e-300))
        a1.plot(np.arange(K1), rel, marker=".", lw=0.8, alpha=0.7)
    a1.set_xlabel("nonzeros k")
    a1.set_ylabel("relative error of the column")
    a1.set_title(f"sampled fronts ({fr.method})")
    qs = np.arange(0, n * (K1 - 1) + 1, max(1, n // 50))
    tot = lp_curve(fr.err, fr.on_front, qs)
    a2.plot(qs / n, np.sqrt(np.maximum(tot, 0) / max(fr.beta.sum(), 1e-300)))
    a2.set_xlabel("q / n")
    a2.set_ylabel("relative error (LP bound)")
    a2.set_title("total error vs budget")
    fig.tight_layout()
    return _save(fig, path)


def plot_eval(path, recs: list[dict]) -> Path:
    """Relative error (%) against the average nonzeros per column, one line per method."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in dict.fromkeys(r["method"] for r in recs):
        pts = sorted((r["avg_nnz"], r["rel_error_pct"]) for r in recs if r["method"] == m)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    ax.set_xlabel("average nonzeros per column")
    ax.set_ylabel("relative error (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_reconstruction(path, A: np.ndarray, B: np.ndarray, sols: dict, spatial=None) -> Path:
    """The demo's figure: with ``spatial`` (a cube), the abundance map of every atom at the largest budget in
    ``sols`` ({avg_nnz: X}); otherwise 8 original images and their reconstructions A·X at each budget."""
    plt = pyplot()
    if spatial is not None:
        X = sols[max(sols)]
        fig, axes = plt.subplots(1, A.shape[1], figsize=(2 * A.shape[1], 2.2))
        for i, ax in enumerate(axes):
            ax.imshow(X[i].reshape(spatial), cmap="viridis")
            ax.set_title(f"atom {i}")
            ax.axis("off")
    else:
        side = int(round(np.sqrt(B.shape[0])))
        cols = np.linspace(0, B.shape[1] - 1, 8).astype(int)
        rows = [("original", B)] + [(f"q/n = {a:g}", A @ X) for a, X in sorted(sols.items())]
        fig, axes = plt.subplots(len(rows), 8, figsize=(12, 1.7 * len(rows)))
        for i, (name, M) in enumerate(rows):
            for j, c in enumerate(cols):
                axes[i, j].imshow(M[:, c].reshape(side, side), cmap="gray")
                axes[i, j].axis("off")
            axes[i, 0].set_title(name, fontsize=9, loc="left")
    return _save(fig, path, bbox_inches="tight")
