"""The `query` verb: the top gallery matches of query images, from features parts or an image folder
(embedded once, optionally cached with `--gallery-cache`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError


def query_gallery(queries: list, *, gallery: list[Path], weights: Path, top: int = 10, rerank: bool = False, k1: int = 20,
          k2: int = 6, lam: float = 0.3, exclude_same_camera: bool = False, camera: int | None = None,
          plot: Path | None = None, gallery_cache: Path | None = None, device="auto", amp: bool = True,
          batch_size: int = 256, sink=None) -> list[dict]:
    """Top gallery matches of each query image; the gallery is features parts or one image folder."""
    from wisecli.cli.inputs import expand_inputs
    from wisecli.runtime.device import as_device

    from .data import parse_veri_name
    from .metrics import check_rerank
    from .plots import plot_ranks
    from .predict import IMAGE_EXT, announce_device, embed_paths, load_features, load_model, save_features
    from .rerank import re_ranking

    queries = expand_inputs([str(x) for x in queries], extensions=IMAGE_EXT)
    if weights is None or not gallery:
        raise InputError("query needs --weights and --gallery",
                         hint="wise reid query car.jpg --gallery g.npz --weights best.pt")
    gallery = [Path(g) for g in gallery]
    for g in gallery:
        if not g.exists():
            raise InputError(f"no such gallery: {g}", hint="features .npz parts or one image folder")
    if len(gallery) > 1 and any(g.is_dir() for g in gallery):
        raise InputError("a gallery folder cannot be mixed with other --gallery items", hint="give one folder")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise InputError("--plot must name a .png file", hint="e.g. --plot ranks.png")
    if gallery_cache is not None and Path(gallery_cache).suffix != ".npz":
        raise InputError("--gallery-cache must name a .npz file", hint="e.g. --gallery-cache gallery.npz")
    if int(batch_size) < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}", hint="the default is 256")
    if top < 1:
        raise InputError("--top must be >= 1", hint="e.g. --top 10")
    if rerank:
        check_rerank(k1, k2, lam)
    spec, device = device, as_device(device)
    model, mc, sha = load_model(weights, device)
    announce_device(sink, spec, device)
    if len(gallery) == 1 and gallery[0].is_dir():
        cache = None if gallery_cache is None else Path(gallery_cache)
        gd = None
        if cache is not None and cache.is_file():
            gd = load_features([cache], "gallery")
            if gd.get("model_sha256") != sha:
                sink.warn(f"gallery cache {cache} was made by another model: embedding again")
                gd = None
        if gd is None:
            gpaths = expand_inputs([str(gallery[0])], extensions=IMAGE_EXT)
            gf, gp, _, ok, errs = embed_paths(model, gpaths, mc["input_size"], device, batch=batch_size, amp=amp)
            for i, msg in errs:
                sink.warn(f"gallery image skipped: {msg}")
            kept = [p for p, k in zip(gpaths, ok) if k]
            parsed = [parse_veri_name(p.name) for p in kept]
            gids = np.array([p[0] if p else -1 for p in parsed], dtype=np.int64)
            gcams = np.array([p[1] if p else -1 for p in parsed], dtype=np.int64)
            if cache is not None:
                save_features(cache, features=gf, paths=[str(p) for p in kept], ids=gids, cams=gcams, probs=gp,
                              sha=sha, embed=mc["embed"])
                sink.info(f"gallery embedded once and cached in {cache}")
            gd = {"features": gf.numpy(), "ids": gids, "cameras": gcams, "paths": np.array([str(p) for p in kept])}
    else:
        gd = load_features(gallery, "gallery")
    gf = torch.as_tensor(gd["features"]).float()
    if gf.shape[1] != model.feat_dim:
        raise InputError(f"gallery features have {gf.shape[1]} dimensions, the model {model.feat_dim}",
                         hint="embed the gallery with the same model")
    qf, _, _, ok, errs = embed_paths(model, queries, mc["input_size"], device, batch=batch_size, amp=amp)
    if errs:
        raise InputError(f"query image unreadable: {errs[0][1]}", hint="give readable JPEG/PNG files")
    parsed = [parse_veri_name(p.name) for p in queries]
    q_cams = [camera if camera is not None else (p[1] if p else None) for p in parsed]
    if exclude_same_camera and any(c is None for c in q_cams):
        raise InputError("--exclude-same-camera needs the query camera",
                         hint="name queries VVVV_cCCC_... or pass --camera N")
    qn = torch.nn.functional.normalize(qf.to(device), dim=1)
    gn = torch.nn.functional.normalize(gf.to(device), dim=1)
    dist = re_ranking(qn, gn, k1, k2, lam) if rerank else 1.0 - qn @ gn.T
    g_cams = torch.as_tensor(gd["cameras"], device=device)
    out = []
    for i, qpath in enumerate(queries):
        d = dist[i].clone()
        if exclude_same_camera:
            d[g_cams == q_cams[i]] = float("inf")
        order = torch.sort(d, stable=True).indices[:top]
        order = order[torch.isfinite(d[order])].tolist()
        results = [{"rank": r + 1, "path": str(gd["paths"][j]), "distance": float(dist[i, j]),
                    "id": int(gd["ids"][j]), "camera": int(gd["cameras"][j])} for r, j in enumerate(order)]
        out.append({"query": str(qpath), "results": results})
    if plot is not None:
        plot_ranks(plot, out, [parse_veri_name(p.name) for p in queries])
    return out
