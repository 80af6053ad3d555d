"""SR `predict`: one image at a time through `runtime.batch.run_batch` (see `predict.py` for the choices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError

OVERLAP = 16


def _forward(model, lr: torch.Tensor, rho: float, exec_: str, kw: dict, tile: int):
    """SR of one (1, 3, h, w) LR image; (sr, P, mask, stats). Any size works as it is: the masks take partial
    border tiles and the gather path pads internally (zeros, as the dense convs), so rho is exact on the image."""
    from .gating import Stats

    st = Stats(1, lr.device)
    sr, P, masks = model(lr, rho, exec_=exec_, stats=st, return_maps=True, **kw)
    return sr, P, (masks[0] if masks else None), st


def super_resolve(model, lr, rho, exec_, kw, chunk: int):
    """SR of a whole image, in overlapping chunks of at most `chunk` LR pixels a side."""
    tile = int(kw["tile"])
    h, w = lr.shape[-2:]
    if max(h, w) <= chunk:
        return _forward(model, lr, rho, exec_, kw, tile)
    s = model.scale
    out = torch.zeros(1, 3, s * h, s * w, device=lr.device)
    pmap = torch.zeros(1, 1, h, w, device=lr.device)
    mmap = torch.zeros(1, 1, h, w, device=lr.device)
    step = max(1, chunk - 2 * OVERLAP)
    dense = counted = 0.0
    for i in range(0, h, step):
        for j in range(0, w, step):
            i0, j0 = max(0, i - OVERLAP), max(0, j - OVERLAP)
            i1, j1 = min(h, i + step + OVERLAP), min(w, j + step + OVERLAP)
            sr, P, m, st = _forward(model, lr[..., i0:i1, j0:j1], rho, exec_, kw, tile)
            a, b = i - i0, j - j0
            ie, je = min(h, i + step) - i0, min(w, j + step) - j0
            out[..., s * i:s * (i0 + ie), s * j:s * (j0 + je)] = sr[..., s * a:s * ie, s * b:s * je]
            if P is not None:
                pmap[..., i:i0 + ie, j:j0 + je] = P[..., a:ie, b:je]
                mmap[..., i:i0 + ie, j:j0 + je] = m[..., a:ie, b:je]
            dense, counted = dense + st.dense, counted + st.counted
    st.dense, st.counted = dense, counted
    return out, pmap, mmap, st


def predict_sr(paths, model, doc, rho, exec_, output, v, *, save_masks, shard, overwrite, skip_existing, sink,
               argv) -> dict:
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.device import device_name, oom_guard
    from wisecli.runtime.io.images import write_image
    from wisecli.runtime.runrecord import RunRecord

    from .data import read_image

    if output is None:
        raise InputError("SR predict needs -o DIR for the images", hint="e.g. -o out/")
    out_dir = Path(output)
    s = int(doc["scale"])
    mask = doc.get("mask", {})
    kw = {"rule": mask.get("rule", "regional"), "tile": int(mask.get("tile", 8)), "slack": float(mask.get("slack", 1.5))}
    device = next(model.parameters()).device
    notes = {"grey": 0, "alpha": 0}

    def outs(p):
        st = stem_of(p)
        names = [f"{st}_x{s}.png"] + ([f"{st}_importance.png", f"{st}_mask.png"] if save_masks else [])
        return [out_dir / n for n in names]

    def process(p):
        a, bits, nn_ = read_image(Path(p))
        for n in nn_:
            notes[n] += 1
            if sink is not None:
                sink.warn(f"{p}: {'grey replicated to RGB' if n == 'grey' else 'alpha dropped'}")
        lr = torch.from_numpy(a.transpose(2, 0, 1).copy())[None].to(device)
        with torch.no_grad():
            sr, P, m, st = oom_guard(lambda: super_resolve(model, lr, rho, exec_, kw, int(v["chunk"])),
                                     option_hint="--chunk")
        peak = 65535 if bits == 16 else 255
        img = (sr[0].clamp(0, 1) * peak).round().cpu().numpy().transpose(1, 2, 0)
        files = outs(p)
        write_image(files[0], img.astype(np.uint16 if bits == 16 else np.uint8))
        if save_masks and P is not None:
            write_image(files[1], (P[0, 0].clamp(0, 1) * 255).round().byte().cpu().numpy())
            write_image(files[2], (m[0, 0] * 255).byte().cpu().numpy())
        d, c = float(torch.as_tensor(st.dense).sum()), float(torch.as_tensor(st.counted).sum())
        return {"output": str(files[0]), "outputs": [str(f) for f in files], "scale": s, "density": rho,
                "mac_saving": 1 - c / d, "tile_occupancy": float(st.as_dict()["tile_occupancy"][0]), "exec": exec_}

    rec = RunRecord("sparse-cnn predict", config={"density": rho, "exec": exec_, "scale": s}, device=device_name(device),
                    seed=None, inputs=[str(p) for p in paths], argv=argv)
    rec.set("converted", notes)
    records = run_batch(paths, process, outputs_for=outs,
                        options=BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite),
                        sink=sink, run_record=rec)
    return {"output": str(out_dir), "density": rho, "exec": exec_, "records": records}
