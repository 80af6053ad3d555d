"""`wise explain demo`: train `small-cnn` (`wisecli.nn`) on two-colour digit canvases (`synthetic.py`) with the
shared in-memory trainer, then explain the test canvases in memory with MC-RISE and RISE and score the maps against
random maps (spec §3, §9 claim gate).

Recipe [reconstructed]: small-cnn without BatchNorm (it learns the colour gating faster here), 3,000 training
canvases, batch 32, Adam lr 1e-3, 5 epochs, per-channel normalisation of the training canvases, seed 0, one CPU
thread. One epoch does not learn the task (accuracy ≈ 0.2), so `--quick` explains the shipped weights
`demo_weights.npz` (0.5 MB), made by this very recipe (`python -m wisecli.engines.explain.demo`); the slow gate
retrains from the recipe. Explained: 16 test canvases with N = 2000 (quick: 4,
N = 500), grid 7 → cell 5 px, with the run defaults: RISE p1 = 0.5, MC-RISE q = 0.9, colours red, green, blue. At
q = 0.5 (the spec's reconstructed default) half of each canvas is painted with solid colour cells, the classifier's
score is near chance on almost every perturbed canvas, and the colour claim holds on only 4 of 8 canvases
(S_green ≈ ±0.005, noise); at q = 0.9 it holds on 8 of 8 (S_green −0.02 to −0.12) and MC-RISE passes deletion and
insertion too (measured at N = 1000): `run` defaults to q = 0.9 for this reason (the sweep is in `predict.py`). Pointing tolerance: the reference's 15 px
at 224² scaled to the 32² canvas (2 px); the random point's rate is its expected hit rate (3 draws per canvas).
Gates (spec §9): accuracy ≥ 0.8 (quick: 0.5), RISE and MC-RISE deletion AUC at least 0.05 below the random maps'
(3 seeds) and insertion 0.05 above, RISE pointing ≥ 0.75 and above the random point, and S_green over the red
digit's strokes negative on ≥ 7/8 of the canvases (quick: ≥ 3/4). `photos` scores deletion/insertion only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from wisecli.runtime.results import DemoResult, Gate

from .predict import MCRISE_KEEP, RISE_KEEP


def _train(data: dict, device, epochs: int, seed: int):
    from wisecli.nn.zoo import build
    from wisecli.runtime.trainer import fit_in_memory

    torch.manual_seed(seed)
    x = torch.from_numpy(data["x"])
    y = torch.from_numpy(data["y"])
    mean = x.mean((0, 2, 3))
    std = x.std((0, 2, 3)).clamp_min(1e-3)
    net = build("small-cnn", in_channels=3, num_classes=len(data["classes"]), image_size=x.shape[-1], norm="none")
    xn = (x - mean[None, :, None, None]) / std[None, :, None, None]
    g = torch.Generator().manual_seed(seed)

    class Loader:
        def __iter__(self):
            perm = torch.randperm(len(xn), generator=g)
            for s in range(0, len(perm), 32):
                idx = perm[s:s + 32]
                yield xn[idx], y[idx]

        def __len__(self):
            return (len(xn) + 31) // 32

    def step(model, batch):
        xb, yb = batch
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        return loss, {}

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    fit_in_memory(net, opt, Loader(), step, epochs=epochs, device=device, amp=False, monitor="train_loss")
    return net.eval(), mean.tolist(), std.tolist()


WEIGHTS = Path(__file__).with_name("demo_weights.npz")
N_TRAIN = 3000
MC_KEEP = MCRISE_KEEP   # MC-RISE keep probability q of the demo: the run default (module docstring)
N_ACC = 300     # test canvases for the accuracy (the explained ones are few)
EPOCHS = 5
TRAINED_ON = "3,000 two-colour digit canvases (synthetic.canvases, digits, part train, seed 0)"


def train_digits(device="cpu", seed: int = 0, data: str = "digits", epochs: int = EPOCHS):
    """The recipe (module docstring): (net, mean, std, classes)."""
    from .synthetic import canvases, photo_crops

    train = photo_crops(N_TRAIN, part="train", seed=seed) if data == "photos" else \
        canvases(N_TRAIN, source=data, part="train", seed=seed)
    net, mean, std = _train(train, torch.device(device), epochs, seed)
    return net, mean, std, train["classes"]


def save_weights(path=WEIGHTS, seed: int = 0) -> Path:
    """Retrain the digits demo model from the recipe and write the shipped weights (`runtime.demo_weights`)."""
    from wisecli.runtime import demo_weights
    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device("cpu")):
        net, mean, std, _ = train_digits("cpu", seed)
    return demo_weights.save(path, {"net": net.state_dict(), "norm": {"mean": mean, "std": std}},
                             {"recipe": {"n_train": N_TRAIN, "epochs": EPOCHS, "seed": seed, "batch": 32, "lr": 1e-3,
                                         "arch": "small-cnn", "norm": "none"}, "trained_on": TRAINED_ON})


def load_weights(path=WEIGHTS):
    """(net, mean, std) of the shipped weights; OSError when they are missing or do not read."""
    from wisecli.nn.zoo import build
    from wisecli.runtime import demo_weights

    shipped = demo_weights.load(path)
    if shipped is None:
        raise OSError(f"the shipped demo weights {path} are missing or unreadable")
    _, g = shipped
    net = build("small-cnn", in_channels=3, num_classes=10, image_size=32, norm="none")
    return demo_weights.load_into(net, g["net"]), g["norm"]["mean"].tolist(), g["norm"]["std"].tolist()


def _deletion_pair(box, xin, rank_map, cls, step, prob_fn, seeds=3):
    from . import metrics as M

    cur = M.deletion_insertion(prob_fn, xin, rank_map, cls, step)
    d, i = M.auc(cur["deletion"].cpu().numpy()), M.auc(cur["insertion"].cpu().numpy())
    rd, ri = [], []
    for s in range(seeds):
        rc = M.deletion_insertion(prob_fn, xin, M.random_saliency(rank_map.shape, 100 + s, xin.device), cls, step)
        rd.append(M.auc(rc["deletion"].cpu().numpy()))
        ri.append(M.auc(rc["insertion"].cpu().numpy()))
    return d, i, float(np.mean(rd)), float(np.mean(ri))


def run_demo(*, quick: bool, device="auto", data: str = "digits", seed: int = 0, out_dir=None, sink=None,
             n_test: int | None = None, masks: int | None = None, epochs: int | None = None,
             shipped: bool | None = None) -> DemoResult:
    from wisecli.runtime.device import as_device, one_cpu_thread

    dev = as_device(device, sink=sink)
    with one_cpu_thread(dev):
        return _run(quick=quick, dev=dev, data=data, seed=seed, out_dir=out_dir, n_test=n_test, masks=masks,
                    epochs=epochs, shipped=shipped)


def _run(*, quick, dev, data, seed, out_dir, n_test, masks, epochs, shipped) -> DemoResult:

    from . import metrics as M
    from .model import from_module
    from .predict import explain_images
    from .synthetic import canvases, photo_crops

    t0 = time.perf_counter()
    n_test = n_test or (4 if quick else 16)
    masks = masks or (500 if quick else 2000)
    shipped = (quick and data == "digits" and seed == 0 and WEIGHTS.is_file()) if shipped is None else shipped
    epochs = 0 if shipped else (epochs or EPOCHS)
    test = photo_crops(n_test, part="test", seed=seed + 1) if data == "photos" else \
        canvases(n_test, source=data, part="test", seed=seed + 1)
    if shipped:
        net, mean, std = load_weights()
    else:
        net, mean, std, _ = train_digits(dev, seed, data, epochs)
    box = from_module(net, channels=3, size=test["x"].shape[-2:], classes=test["classes"], mean=mean, std=std,
                      device=dev)
    acc_set = photo_crops(N_ACC, part="test", seed=seed + 2) if data == "photos" else \
        canvases(N_ACC, source=data, part="test", seed=seed + 2)
    with torch.inference_mode():
        acc_pred = box(box.to_input(torch.from_numpy(acc_set["x"]).to(dev))).argmax(1).cpu().numpy()
        acc = float((acc_pred == acc_set["y"]).mean())
        x01 = torch.from_numpy(test["x"]).to(dev)
        pred = box(box.to_input(x01)).argmax(1).cpu().numpy()
    common = dict(masks=masks, grid=7, amp=False, seed=seed, softmax="on")
    mc = explain_images(box, x01, method="mcrise", colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                        keep_prob=MC_KEEP, **common)
    rs = explain_images(box, x01, method="rise", keep_prob=RISE_KEEP, **common)
    H, W = box.size
    step = M.auto_step(H, W)
    rows, agg = [], {k: [] for k in ("rd", "ri", "rrd", "rri", "md", "mi", "mrd", "mri", "pt", "ptr", "sg")}

    def prob_fn(z):
        return torch.softmax(box(z).float(), -1)

    with torch.inference_mode():
        for i in range(n_test):
            xin = box.to_input(x01[i:i + 1])[0]
            cls = int(pred[i])
            smap = rs["maps"][i, 0, 0].to(dev)
            mmap = mc["maps"][i, :, 0].to(dev)                       # (K, H, W)
            rd, ri, rrd, rri = _deletion_pair(box, xin, smap, cls, step, prob_fn)
            md, mi, mrd, mri = _deletion_pair(box, xin, mmap.abs().sum(0), cls, step, prob_fn)
            row = {"canvas": i, "label": int(test["y"][i]), "pred": cls, "rise_del": rd, "rise_ins": ri,
                   "mcrise_del": md, "mcrise_ins": mi, "random_del": rrd, "random_ins": rri}
            for k, v in zip(("rd", "ri", "rrd", "rri", "md", "mi", "mrd", "mri"), (rd, ri, rrd, rri, md, mi, mrd, mri)):
                agg[k].append(v)
            if "red_box" in test:
                x0, y0, x1, y1 = test["red_box"][i]
                mask = M.box_mask([(x0, y0, x1, y1)], H, W)
                tol = 15.0 * H / 224
                hit = M.pointing_hit(M.max_point(smap.cpu().numpy()), mask, tol)
                rng = np.random.default_rng(seed * 1000 + i)
                rnd = np.mean([M.pointing_hit(rng.integers(0, H, 2), mask, tol) for _ in range(3)])
                sg = float(mmap[1].cpu().numpy()[test["red_mask"][i]].mean())
                row.update(pointing=hit, s_green_red=sg)
                agg["pt"].append(float(hit))
                agg["ptr"].append(float(rnd))
                agg["sg"].append(sg)
            rows.append(row)
    m = {k: float(np.mean(v)) if v else float("nan") for k, v in agg.items()}
    gates = [Gate("test accuracy", acc, ">=", 0.8),
             Gate("RISE deletion AUC margin below random", m["rrd"] - m["rd"], ">=", 0.05),
             Gate("RISE insertion AUC margin above random", m["ri"] - m["rri"], ">=", 0.05),
             Gate("MC-RISE deletion AUC margin below random", m["mrd"] - m["md"], ">=", 0.05),
             Gate("MC-RISE insertion AUC margin above random", m["mi"] - m["mri"], ">=", 0.05)]
    headline = {"accuracy": acc, "deletion_auc": m["rd"], "deletion_auc_random": m["rrd"],
                "insertion_auc": m["ri"], "mcrise_deletion_auc": m["md"]}
    if agg["sg"]:
        neg = float(np.mean(np.asarray(agg["sg"]) < 0))
        gates += [Gate("RISE pointing hit rate (red digit)", m["pt"], ">=", 0.75),
                  Gate("RISE pointing above random point", m["pt"] - m["ptr"], ">", 0.0),
                  Gate("share of canvases with S_green < 0 on red strokes", neg, ">=", 0.75 if quick else 7 / 8)]
        headline.update(pointing=m["pt"], pointing_random=m["ptr"], s_green_red=m["sg"])
    if out_dir is not None:
        _write_pngs(out_dir, test, rs, mc, n_test)
    seconds = time.perf_counter() - t0
    return DemoResult("explain", gates, headline=headline,
                      details={"title": f"wise explain demo ({data}, {'quick' if quick else 'full'})",
                               "rows": rows, "seconds": seconds, "masks": masks, "epochs": epochs, "n_test": n_test,
                               "device": str(dev),
                               "weights": "shipped demo_weights.npz" if shipped else f"trained {epochs} epochs"})


def _write_pngs(out_dir, test, rs, mc, n):
    from pathlib import Path

    from wisecli.runtime.rundir import made_dir

    from .plots import overlay_mcrise, overlay_rise

    out = Path(out_dir)
    with made_dir(out):
        for i in range(n):
            img8 = (test["x"][i].transpose(1, 2, 0) * 255).round().astype(np.uint8)
            overlay_rise(out / f"canvas{i}.rise.png", img8, rs["maps"][i, 0, 0].numpy())
            overlay_mcrise(out / f"canvas{i}.colors.png", img8, mc["maps"][i, :, 0].numpy(),
                           [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


if __name__ == "__main__":  # regenerate the shipped weights from the recipe
    print(save_weights())
