"""Training glue (spec §2.3): two stages of WingsNet + group-supervised GUL over the patch sampler.

Schedule [public code: lr, α]: stage 1 α 0.1 (labels binarised at 0.7), lr ×0.1 at 60 % and 90 % of its
epochs (60 and 90 of 100); stage 2 from stage 1, α 0.2 (binarised at 0.9), lr ×0.1 at 50 % and 83 % (15 and 25
of 30). The optimizer is unpublished: SGD (momentum 0.9, Nesterov, wd 1e-4, lr 0.01) or AdamW (lr 1e-3).
Hard-skeleton targets are refreshed with the model in training every 20 epochs in stage 1 (from epoch 20) and
every 10 in stage 2; validation runs every 5 epochs and `best.pt` follows the ATM score.
"""

from __future__ import annotations

import numpy as np

TRAIN_DEFAULTS = {
    "schedule.stage": "both",
    "schedule.epochs1": 100,
    "schedule.epochs2": 30,
    "schedule.alpha1": 0.1,
    "schedule.alpha2": 0.2,
    "schedule.refresh1": 20,
    "schedule.refresh2": 10,
    "schedule.val_every": 5,
    "optim.name": "sgd",
    "optim.lr": 0.0,          # 0 = the optimizer's default (SGD 0.01, AdamW 1e-3)
    "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4,
    "data.batch_size": 4,
    "data.patches_per_case": 16,
    "data.patch": 160,
    "data.crop": 128,
    "data.workers": 2,
    "data.val_fraction": 0.0,
    "data.binarise1": 0.7,
    "data.binarise2": 0.9,
    "loss.name": "gul",
    "loss.enc_weight": 1.0,
    "loss.reduce": "batch",
    "model.width": 1.0,
    "model.hu_windows": "-1000:400",
    "val.roi": 128,
    "val.sw_batch": 4,
}


def parse_windows(spec: str):
    """'-1000:400,-1000:-300' → ((−1000, 400), (−1000, −300))."""
    from wisecli.cli.errors import InputError

    try:
        out = tuple(tuple(float(v) for v in w.split(":")) for w in str(spec).split(",") if w.strip())
        assert out and all(len(w) == 2 and w[1] > w[0] for w in out)
    except (ValueError, AssertionError):
        raise InputError(f"model.hu_windows {spec!r} is not a list of lo:hi windows",
                         hint="for example --set model.hu_windows=-1000:400,-1000:-300") from None
    return out


def make_optimizer(model, cfg: dict):
    import torch

    name = cfg["optim.name"]
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["optim.lr"] or 0.01, momentum=cfg["optim.momentum"],
                               nesterov=True, weight_decay=cfg["optim.weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg["optim.lr"] or 1e-3, weight_decay=cfg["optim.weight_decay"])
    from wisecli.cli.errors import InputError

    raise InputError(f"unknown optimizer {name!r}", hint="sgd or adamw")


def milestones(stage: int, epochs: int) -> list[int]:
    """Stage 1: 60 % and 90 % of its epochs; stage 2: 50 % and 83 % (the public 60/90 of 100, 15/25 of 30)."""
    fr = (0.6, 0.9) if stage == 1 else (0.5, 25 / 30)
    return sorted({max(1, int(round(f * epochs))) for f in fr})


def make_step(*, crop: int, binarise: float, alpha: float, loss_name: str, enc_weight: float, reduce: str,
              windows, generator=None):
    """step(model, batch) → (loss, metrics) for the shared trainer; augmentation runs on the batch's device."""
    from .data import augment
    from .loss import group_loss

    def step(model, batch):
        img, lab, q = batch
        x, g, qq = augment(img, lab, q, crop=crop, binarise=binarise, windows=windows, rng=generator)
        out = model(x)
        enc, dec = out if isinstance(out, tuple) else (None, out)
        loss = group_loss(enc, dec, g, qq if loss_name == "gul" else None, name=loss_name, alpha=alpha,
                          enc_weight=enc_weight, reduce=reduce)
        return loss, {"alpha": alpha, "fg_fraction": float(g.mean())}

    return step


def predict_case(model, img: np.ndarray, *, roi: int, sw_batch: int, windows, device, amp=True) -> np.ndarray:
    """Binary LCC prediction of a cached (canonical, cropped) case, used by validation and hard mining."""
    import torch

    from .predict import PredictOptions, normalise, postprocess, window_pass

    opts = PredictOptions(roi=roi, sw_batch=sw_batch, amp=amp)
    was = model.training
    model.eval()
    x = normalise(torch.from_numpy(np.asarray(img, np.float32)).to(device), windows)
    prob = window_pass(model, x, opts, device)[0, 0]
    model.train(was)
    return postprocess((prob >= 0.5).cpu().numpy(), 6, True)


def refresh_hard(model, sampler, *, roi, sw_batch, windows, device, rank=0, world=1):
    """Hard-skeleton targets: GT skeleton voxels missed by LCC(prediction), per case of this rank."""
    for case in sampler.cases[rank::world]:
        img, _, _ = case.arrays()
        pred = predict_case(model, img, roi=roi, sw_batch=sw_batch, windows=windows, device=device)
        sk = case.skeleton
        missed = sk[pred[tuple(sk.T)] == 0] if len(sk) else sk
        sampler.hard[case.name] = missed


def validate_cases(model, cases, *, roi, sw_batch, windows, device) -> dict:
    """Mean ATM metrics over the validation cases (cached arrays)."""
    from .metrics import prepare_reference, score

    rows = []
    for case in cases:
        img, lab, _ = case.arrays()
        pred = predict_case(model, img, roi=roi, sw_batch=sw_batch, windows=windows, device=device)
        ref = prepare_reference(np.asarray(lab), case.spacing_zyx[::-1])
        rows.append(score(pred, ref))
    if not rows:
        return {}
    return {f"val_{k}": float(np.mean([r[k] for r in rows])) for k in ("atm_score", "td", "bd", "dsc", "precision")}
