"""Pictures of `wise spin`: the texture (in-plane arrows coloured by S_z beside the |n_k|² map) and a wall profile."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wisecli.runtime.plots import pyplot, save_figure


def texture(path: Path, spins: np.ndarray, cfg: dict) -> Path:
    """texture.png: arrows (S_x, S_y) at the sites r = m·a1 + n·a2, coloured by S_z; beside it the three
    |n_k|² on the plaquettes as an RGB map (Q1 red, Q2 green, Q3 blue)."""
    from .metrics import order_parameters

    plt = pyplot()
    L1, L2 = spins.shape[1:]
    m, n = np.meshgrid(np.arange(L1), np.arange(L2), indexing="ij")
    x, y = m + 0.5 * n, math.sqrt(3) / 2 * n
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(min(16, 2 + L1 / 8), 2 + 2 * min(8, L2 / 4)))
    q = ax1.quiver(x, y, spins[0], spins[1], spins[2], cmap="viridis", clim=(-1, 1), pivot="mid", angles="xy",
                   scale_units="xy", scale=1.25, width=0.004)
    fig.colorbar(q, ax=ax1, label="S_z")
    ax1.set_aspect("equal")
    ax1.set_title("spins (in-plane arrows, colour S_z)")
    rgb = np.clip((order_parameters(spins) ** 2).sum(1), 0, 1).transpose(2, 1, 0)  # (L2, L1-1, 3)
    ax2.imshow(rgb, origin="lower", aspect="auto", interpolation="nearest")
    ax2.set_title("|n_1|², |n_2|², |n_3|² (red, green, blue)")
    ax2.set_xlabel("m (across)")
    return save_figure(fig, path)


def profile_plot(path: Path, spins_file: dict, rec: dict) -> Path:
    """The |n_k|² profiles across the wall with the tanh fit."""
    from .metrics import profiles

    plt = pyplot()
    a = spins_file["a_nm"] or 0.2761
    prof = profiles(spins_file["spins"])
    x = (np.arange(prof.shape[1]) + 0.5) * math.sqrt(3) / 2 * a
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in range(3):
        ax.plot(x, prof[k], label=f"|n_{k + 1}|²")
    xa = rec["modes"][0]
    fit = 0.5 * (1 - np.tanh((x - rec["x0_nm"]) / rec["delta_nm"]))
    if prof[xa - 1, 0] < prof[xa - 1, -1]:
        fit = 0.5 * (1 + np.tanh((x - rec["x0_nm"]) / rec["delta_nm"]))
    ax.plot(x, fit, "k--", label=f"fit: w = {rec['width_nm']:.2f} nm ({rec['convention']})")
    ax.set_xlabel("x across the wall (nm)")
    ax.set_ylabel("|n_k|²")
    ax.legend()
    return save_figure(fig, path)
