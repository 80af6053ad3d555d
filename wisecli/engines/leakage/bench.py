"""Our side of the races (spec §7), on `cnn-32` (BN-free) with `shapes32` images, one process, one device:

- `per-sample-grads`: `vmap(grad)` vs a per-sample backward loop (and Opacus `GradSampleModule` if installed);
  agreement = max abs difference.
- `sensitivity-hutchinson-P` (P = 1, 8, 32; 128 in `size="full"`): Hutchinson vs the exact basis sweep; per-sample
  seconds and the worst relative error over layers of the layer means of ||J||_F² against exact.
- `sensitivity-ones-vjp`: GradDefense's recipe, speed only, marked "different quantity".
- `end-to-end-shapes32` (not with `quick`): the spec §5 protocol on `shapes32` through the `run` verb's code
  (cnn-32, 10 FedAvg rounds, audits at rounds 0, 5, 10; 600 observations of B = 8, 5 grouped folds, linear and
  quadratic probes at D = 256; Hutchinson-8 sensitivity on 256 samples), timed once, no peer (target ≤ 30 s on
  one H100). FedAvg at η = 0.05 [reconstructed]: the `run` default 0.2 diverged on cnn-32 with shapes32.
Sizes: quick (CPU smoke): 16 samples for the gradients, 2 for the exact sweep at 16×16 and width 1/4; default
(GPU preset): 512 samples and 64 for the exact sweep at 32×32 full width; full: 256 for the exact sweep.
"""

from __future__ import annotations

import torch

from wisecli.runtime.results import BenchRecords


PROTOCOL_SHAPES32 = {"dataset": "shapes32", "arch": "cnn-32", "fl_rounds": 10, "lr": 0.05, "audit_rounds": "0,5,10",
                     "n_obs": 600, "batch_size": 8, "folds": 5, "families": "linear,quadratic", "sketch": 256,
                     "sensitivity": "hutchinson", "probes": 8, "n_sens": 256, "control": True, "seed": 0}


def run(device, *, quick: bool = False, size: str = "quick", run_defaults: dict | None = None) -> BenchRecords:
    from wisecli.nn.zoo import build
    from wisecli.runtime.bench import race
    from wisecli.runtime.device import as_device, device_name, one_cpu_thread, timed
    from wisecli.runtime.results import BenchRecord

    from . import peers
    from .algorithm import params_of, per_sample_grads
    from .sensitivity import exact_norms, hutchinson, ones_vjp
    from .synthetic import shapes32

    device = as_device(device)
    img = 16 if quick else 32
    n_grad = 16 if quick else 512
    n_exact = 2 if quick else (256 if size == "full" else 64)
    raw = shapes32(n=max(n_grad, n_exact), clients=2, seed=0, size=img)
    torch.manual_seed(0)
    model = build("cnn-32", in_channels=3, num_classes=10, image_size=img, width=0.25 if quick else 1.0,
                  norm="none").to(device).eval()
    X = torch.as_tensor(raw["X"], device=device)
    y = torch.as_tensor(raw["y"], device=device)
    params = params_of(model)
    recs = BenchRecords(summary={"device": device_name(device), "model": f"cnn-32 width {0.25 if quick else 1.0}",
                                 "image": f"3x{img}x{img}", "n_grad": n_grad, "n_exact": n_exact})
    with one_cpu_thread(device):
        xg, yg = X[:n_grad], y[:n_grad]

        def check(a, b):
            return {"max_abs_diff": max(float((a[k] - b[k]).abs().max()) for k in a)}

        r = race("per-sample-grads", lambda: per_sample_grads(model, params, xg, yg, chunk=128),
                 lambda: peers.per_sample_loop(model, xg, yg), device=device, peer_name="per-sample backward loop",
                 repeats=1 if quick else 3, check=check, n=n_grad)
        r.extra.update(ours_per_sample_s=r.ours_s / n_grad, peer_per_sample_s=(r.peer_s or 0) / n_grad)
        recs.append(r)
        if peers.opacus_available():
            recs.append(race("per-sample-grads-opacus", lambda: per_sample_grads(model, params, xg, yg, chunk=128),
                             lambda: peers.opacus_grads(model, xg, yg), device=device, peer_name="opacus GradSampleModule",
                             repeats=1 if quick else 3, check=check, n=n_grad))
        xe, ye = X[:n_exact], y[:n_exact]
        exact_out, exact_s = None, None

        def exact():
            return exact_norms(model, params, xe, ye, method="sweep", chunk=64 if quick else 512)

        exact_out, exact_s = timed(exact, device)
        for P in ((1, 8) if quick else ((1, 8, 32, 128) if size == "full" else (1, 8, 32))):
            gen = torch.Generator().manual_seed(P)
            out, s = timed(lambda: hutchinson(model, params, xe, ye, P, generator=gen), device, repeats=1 if quick else 3)
            err = max(abs(float(out["fro2"][k].mean()) / float(exact_out[k].mean()) - 1) for k in exact_out
                      if float(exact_out[k].mean()) > 0)
            recs.append(BenchRecord(case=f"sensitivity-hutchinson-{P}", ours_s=s / n_exact, peer_s=exact_s / n_exact,
                                    peer="exact basis sweep", device=device_name(device),
                                    extra={"estimator": "hutchinson", "probes": P, "rel_err_vs_exact": err,
                                           "per": "sample"}))
        r = race("sensitivity-ones-vjp", lambda: hutchinson(model, params, xe, ye, 8, generator=torch.Generator().manual_seed(8)),
                 lambda: ones_vjp(model, params, xe, ye), device=device, peer_name="GradDefense ones-VJP (different quantity)",
                 repeats=1, estimator="hutchinson", probes=8, note="speed only: the peer measures ||J^T 1||, not ||J||_F")
        recs.append(r)
    if not quick and run_defaults is not None:
        recs.append(end_to_end(device, run_defaults))
    return recs


def end_to_end(device, run_defaults: dict, **overrides):
    """The `end-to-end-shapes32` record: `PROTOCOL_SHAPES32` (with `overrides`) through the `run` verb's code, no
    output folder, timed once on `device`."""
    from wisecli.runtime.device import as_device, device_name, timed
    from wisecli.runtime.results import BenchRecord

    from .pipeline import run as run_pipeline

    device = as_device(device)
    cfg = {k: v for k, v in {**run_defaults, **PROTOCOL_SHAPES32, **overrides}.items() if k != "device"}
    doc, s = timed(lambda: run_pipeline(None, None, cfg, device=device, progress=False), device, repeats=1, warmup=0)
    return BenchRecord(case="end-to-end-shapes32", ours_s=s, peer_s=None, peer="none (target: 30 s on one H100)",
                       device=device_name(device),
                       extra={"protocol": f"spec §5 on shapes32 (cnn-32, {cfg['fl_rounds']} FedAvg rounds, audits "
                                          f"{cfg['audit_rounds']}, n_obs {cfg['n_obs']}, B {cfg['batch_size']})",
                              "accuracy": doc["accuracy"], "best_layer": doc["best_layer"],
                              "best_bits": doc["best_bits"], "control_max_abs": doc["control_max_abs"]})
