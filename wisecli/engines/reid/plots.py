"""Pictures of reid: the VCAM channel weights per viewpoint (`evaluate --explain`) and the rank-list
montage (`query --plot`); matplotlib only through `runtime.plots`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_explain(folder: Path, gates: dict, probs: torch.Tensor | None) -> dict:
    """Mean channel weight a_i per predicted viewpoint class: `vcam_gates.csv` and a heatmap PNG (classes x
    channels, sorted by the variance across classes) - the paper's study of which channels each viewpoint
    up- or down-weights."""
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.plots import pyplot, save_figure

    from .vcam import VIEWPOINTS_5, VIEWPOINTS_8

    plt = pyplot()

    K = probs.shape[1]
    names = VIEWPOINTS_8 if K == 8 else VIEWPOINTS_5
    cls = probs.argmax(1)
    rows = ["viewpoint,stage,channel,mean_gate,images"]
    blocks = []
    for stage in sorted(gates):
        a = gates[stage]
        means = torch.stack([a[cls == c].mean(0) if (cls == c).any() else torch.full((a.shape[1],), float("nan"))
                             for c in range(K)])
        blocks.append(means)
        for c in range(K):
            n = int((cls == c).sum())
            if n:
                rows += [f"{names[c]},{stage},{j},{means[c, j]:.6f},{n}" for j in range(a.shape[1])]
    write_text(folder / "vcam_gates.csv", "\n".join(rows) + "\n")
    M = torch.cat(blocks, dim=1).numpy()
    present = ~np.isnan(M).all(1)
    Mp = M[present]
    order = np.argsort(-np.nan_to_num(Mp.var(0)), kind="stable")
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.5 * len(Mp)))
    im = ax.imshow(Mp[:, order], aspect="auto", cmap="coolwarm", vmin=0, vmax=2, interpolation="nearest")
    ax.set_yticks(range(len(Mp)), [n for n, p in zip(names, present) if p])
    ax.set_xlabel("channel (all VCAM stages), sorted by variance across viewpoints")
    fig.colorbar(im, ax=ax, label="mean channel weight a_i")
    save_figure(fig, folder / "vcam_gates.png", dpi=100, bbox_inches="tight")
    return {"csv": str(folder / "vcam_gates.csv"), "png": str(folder / "vcam_gates.png"),
            "images_per_class": {names[c]: int((cls == c).sum()) for c in range(K)}}


def plot_ranks(path: Path, records: list[dict], query_labels: list) -> Path:
    """A rank-list montage: one row per query (query, then its top matches; green border = same id, red =
    other id, grey = unknown), written atomically as PNG."""
    import cv2

    from wisecli.runtime.io.atomic import atomic_path

    tile, pad = 96, 4
    cols = 1 + max(len(r["results"]) for r in records)
    canvas = np.full((len(records) * (tile + 2 * pad), cols * (tile + 2 * pad), 3), 255, dtype=np.uint8)

    def put(img_path, row, col, colour):
        im = cv2.imread(str(img_path))
        im = np.zeros((tile, tile, 3), np.uint8) if im is None else cv2.resize(im, (tile, tile))
        y, x = row * (tile + 2 * pad), col * (tile + 2 * pad)
        canvas[y:y + tile + 2 * pad, x:x + tile + 2 * pad] = colour
        canvas[y + pad:y + pad + tile, x + pad:x + pad + tile] = im

    for r, rec in enumerate(records):
        qid = query_labels[r][0] if query_labels[r] else None
        put(rec["query"], r, 0, (0, 0, 0))
        for c, res in enumerate(rec["results"], start=1):
            colour = (160, 160, 160) if qid is None or res["id"] < 0 else (0, 180, 0) if res["id"] == qid else (0, 0, 220)
            put(res["path"], r, c, colour)
    path = Path(path)
    ok, buf = cv2.imencode(".png", canvas)
    if not ok:
        from wisecli.cli.errors import OutputError

        raise OutputError(f"cannot encode the rank-list montage for {path}", hint="try fewer queries or a smaller --top")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path
