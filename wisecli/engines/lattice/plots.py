"""Pictures of designs: struts shaded by ρ (lattices) or element densities (continuum grids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def design_png(mesh, rho, path: Path | str, *, title: str = "") -> Path:
    """Write `path`: every strut as a bar from joint centre to joint centre, darker and wider for larger ρ;
    joints as squares (solid black unless they are design variables too)."""
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    rho = np.asarray(rho, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if mesh.kind == "lattice":
        n_struts = len(mesh.struts)
        rs = np.ones(n_struts)
        rs[mesh.design_struts] = rho[: len(mesh.design_struts)]
        w = mesh.meta["joint_width"]
        for (a, b), r in zip(mesh.strut_ends, rs):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=plt.cm.Greys(0.15 + 0.85 * r), lw=1 + 6 * r,
                    solid_capstyle="butt", zorder=1)
        pitch = mesh.meta["pitch"]
        for i, j in mesh.joints:
            ax.add_patch(plt.Rectangle((i * pitch, j * pitch), w, w, color="black", zorder=2))
        ax.set_aspect("equal")
        ax.margins(0.05)
    else:
        nelx, nely = mesh.meta["nelx"], mesh.meta["nely"]
        img = np.zeros((nelx, nely))
        img[mesh.cells[:, 0], mesh.cells[:, 1]] = rho[mesh.var]
        ax.imshow(img.T, origin="lower", cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return save_figure(fig, path)
