"""Pictures (`--plot`, `--preview`): matplotlib made headless once, and the atomic PNG writer."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """`matplotlib.pyplot` on the non-interactive Agg backend (no display needed, nothing pops up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path | str, *, dpi: int = 100, **savefig_kw) -> Path:
    """Write a matplotlib figure as PNG atomically and close it (every `--plot`/`--preview` picture)."""
    from wisecli.runtime.io.atomic import atomic_path

    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", **savefig_kw)
    finally:
        plt.close(fig)
    return Path(path)
