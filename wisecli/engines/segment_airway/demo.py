"""The `demo` verb end to end on phantoms: phantoms → cached cases → AdamW steps of a half-width WingsNet with
group-supervised GUL (`runtime.trainer.fit_in_memory`, one step an "epoch" so OneCycle steps per batch) →
held-out prediction (the full `predict` pipeline) → ATM'22 metrics, with the spec's gate (held-out DSC ≥ 50 %).
Nothing is left in $TMPDIR: the case cache lives in a TemporaryDirectory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

METHOD = "segment-airway"
DSC_GATE = 50.0


class _Batches:
    """One batch per iteration of the trainer's loader, drawn from an endless stream over sampler epochs."""

    def __init__(self, sampler, batch_size: int):
        self.stream = self._stream(sampler, batch_size)

    @staticmethod
    def _stream(sampler, bs):
        import torch

        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            it = iter(sampler)
            while True:
                items = [next(it, None) for _ in range(bs)]
                if any(x is None for x in items):
                    break
                yield tuple(torch.stack([x[k] for x in items]) for k in range(3))
            epoch += 1

    def __iter__(self):
        yield next(self.stream)

    def __len__(self):
        return 1


def run_demo(*, quick: bool, device, seed: int, sink=None, steps: int | None = None, n_train: int | None = None,
             n_test: int | None = None, size=None, spacing=None, model_width=None, loss_name: str = "gul",
             overfit: bool = False):
    """Full: 8 train + 2 held-out `demo` phantoms, ≈120 steps at 48³, gate held-out DSC ≥ 50 %. Quick: 1 + 1
    coarse `tiny` phantoms (4 mm), a few steps at 32³, gate: the loss is finite. `overfit` scores the training
    phantoms instead (the spec's check that training can fit: §9 Train). Returns a `DemoResult`."""
    import tempfile

    import torch

    from wisecli.runtime.device import seed_everything
    from wisecli.runtime.results import DemoResult, Gate
    from wisecli.runtime.trainer import fit_in_memory

    from .data import ArrayVolume, PatchSampler, build_case
    from .metrics import prepare_reference, score
    from .model import WingsNet, cpu_layout
    from .predict import PredictOptions, segment
    from .synthetic import make_phantom
    from .train import make_step

    t0 = time.perf_counter()
    dev = device
    seed_everything(seed)
    if quick:
        preset, kw, n_tr, n_te, width, crop, patch, n_steps, bs = "tiny", dict(size=(48, 40, 40), spacing=(4, 4, 4)), \
            1, 1, 0.25, 32, 40, 4, 1
        popts = PredictOptions(roi=32, overlap=0.0, sw_batch=2, crop=False)
    else:
        preset, kw, n_tr, n_te, width, crop, patch, n_steps, bs = "demo", {}, 8, 2, 0.5, 48, 64, 120, 2
        popts = PredictOptions(roi=48, overlap=0.25, sw_batch=2)
    n_tr, n_te = n_train or n_tr, n_test or n_te
    n_steps = steps or n_steps
    width = model_width or width
    if size is not None or spacing is not None:
        kw = {**kw, **({"size": size} if size else {}), **({"spacing": spacing} if spacing else {})}
    phs = [make_phantom(preset, seed=seed + i, **kw) for i in range(n_tr + n_te)]
    windows = ((-1000.0, 400.0),)
    with tempfile.TemporaryDirectory(prefix="wise-airway-demo-") as tmp:
        cases = [build_case(f"case{i}", ArrayVolume(p.image, p.spacing, p.origin, Path(f"case{i}")),
                            ArrayVolume(p.label, p.spacing, p.origin, Path(f"case{i}")), Path(tmp))
                 for i, p in enumerate(phs[:n_tr])]
        sampler = PatchSampler(cases, patch=patch, patches_per_case=max(2, (n_steps * bs) // max(n_tr, 1) + 2),
                               seed=seed)
        torch.manual_seed(seed)
        model = cpu_layout(WingsNet(width=width).to(dev), dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=n_steps, pct_start=0.15)
        step = make_step(crop=crop, binarise=0.7, alpha=0.1, loss_name=loss_name, enc_weight=1.0,
                         reduce="batch", windows=windows)
        t_train = time.perf_counter()
        res = fit_in_memory(model, opt, _Batches(sampler, bs), step, epochs=n_steps, device=dev, scheduler=sched)
        t_train = time.perf_counter() - t_train
    losses = [r["train_loss"] for r in res.history]
    model.eval()
    rows = []
    t_pred = time.perf_counter()
    for i, p in enumerate(phs[:n_tr] if overfit else phs[n_tr:]):
        seg = segment(model, p.image.astype(np.float32), (1, 0, 0, 0, 1, 0, 0, 0, 1), p.spacing, popts, dev,
                      windows=windows)
        m = score(seg.mask, prepare_reference(p.label, p.spacing))
        rows.append({"case": f"{'train' if overfit else 'held-out'} {i}",
                     **{k: round(m[k], 2) for k in ("td", "bd", "dsc", "precision", "atm_score")},
                     "branches": m["n_branches"]})
    t_pred = time.perf_counter() - t_pred
    head = {k: float(np.mean([r[k] for r in rows])) if rows else float("nan")
            for k in ("dsc", "td", "bd", "precision", "atm_score")}
    last = float(np.mean(losses[-10:])) if losses else float("nan")
    gates = [Gate("final training loss is finite", last, "<", float("inf"))]
    if not quick:
        gates.append(Gate("held-out DSC %" if not overfit else "training DSC %", head["dsc"], ">=", DSC_GATE))
    return DemoResult(
        method=METHOD, gates=gates, headline=head,
        details={"quick": quick, "rows": rows,
                 "train": {"steps": len(losses), "first_loss": losses[0] if losses else None, "last_loss": last,
                           "seconds": round(t_train, 2), "width": width, "crop": crop, "loss": loss_name},
                 "predict_seconds": round(t_pred, 2), "seconds": round(time.perf_counter() - t0, 2)})
