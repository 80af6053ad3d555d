"""The regret plot: mean cumulative regret per algorithm with a 95 % band (mean ± 1.96 standard errors over
replicates at each recorded round; the bootstrap CIs are in `evaluate`'s rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def regret_plot(records: list[dict], path: Path) -> Path:
    """Write the PNG and return its path."""
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    algos = []
    for r in records:
        if r["algo"] not in algos:
            algos.append(r["algo"])
    for algo in algos:
        recs = [r for r in records if r["algo"] == algo and r.get("status", "ok") == "ok"]
        if not recs:
            continue
        t = np.asarray(recs[0]["t"], dtype=float)
        curves = np.array([np.interp(t, r["t"], r["cum_regret"]) for r in recs])
        m = curves.mean(0)
        se = curves.std(0, ddof=1) / np.sqrt(len(recs)) if len(recs) > 1 else np.zeros_like(m)
        ax.plot(t, m, label=f"{algo} (n={len(recs)})")
        ax.fill_between(t, m - 1.96 * se, m + 1.96 * se, alpha=0.2)
    env = records[0]["env"] if records else {}
    ax.set_title(f"d={env.get('dim')}, K={env.get('arms')}, κ={env.get('kappa', 0):.0f}, {env.get('arm_set')}")
    ax.set_xlabel("round t")
    ax.set_ylabel("cumulative pseudo-regret")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, Path(path))
