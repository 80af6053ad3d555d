"""The training loop every learned method uses: epochs, AMP, gradient clipping, per-epoch LR schedules,
`metrics.jsonl`, checkpoints, exact resume and DistributedDataParallel under `torchrun`.

A run folder holds `config.json`, `metrics.jsonl` (one JSON line per epoch) and `checkpoints/last.pt`,
`checkpoints/best.pt`. Choices where the contract is silent:
- Record keys: `epoch`, `train_loss`, `train_<m>` for each metric `step` returns (sample-weighted means
  over the epoch, averaged over all ranks), the `validate` metrics prefixed `val_` unless they already are,
  `lr` (the first parameter group's rate the epoch trained with), `seconds` (the whole epoch) and
  `samples_per_s` (training samples over training time, all ranks together).
- `monitor` names any record key. The default `val_loss` falls back to `train_loss` when there is no
  `validate`; any other missing key is an error. best.pt is written when the monitor strictly improves.
- last.pt holds everything `resume` needs (model, optimizer, scheduler, AMP scaler, epoch, best, history,
  the torch/CUDA/numpy/python RNG states), so a resumed run continues bit for bit on CPU. best.pt holds the
  model, its metrics and the best record only: it is for `predict`, not for resuming.
- `resume=True` with no last.pt starts from epoch 1 (a job script can always pass `--resume`); without
  `resume`, metrics.jsonl starts empty. Refusing an existing run folder is the command's decision.
- `validate(model, epoch)` runs on every rank, on the unwrapped model in eval mode under `torch.no_grad()`
  and autocast, so every rank sees the same monitor; `on_epoch_end` runs on rank 0 only.
- A non-finite epoch loss stops the run with WorkFailed (exit 1) after last.pt of the previous epoch.
- `steps_per_epoch` caps an epoch at that many batches, starting the loader again when it runs out.
- `scheduler_interval="step"` steps the LR scheduler after every optimizer step (warm-up and inverse square
  root schedules counted in updates) instead of once per epoch (the default, "epoch"); its state is saved
  in last.pt either way, so a resumed run continues at the same rate.
- `patience=N` (default None: off) stops after N epochs in a row without a strict improvement of the monitor
  (early stopping; counted from the best epoch, so a resumed run counts on): the last record gets
  `"early_stop": true` and `TrainResult.stopped_early` is set. Without it no record changes.
- `log_every > 0` prints the running loss every that many steps and one summary line per epoch on stderr
  (for cluster logs, where no progress bar is drawn).
AMP (Micikevicius et al. 2018, "Mixed precision training"): bf16 autocast where the GPU supports it, fp16
with dynamic loss scaling (GradScaler) otherwise; none on CPU. Gradient clipping is by global norm
(Pascanu et al. 2013, "On the difficulty of training recurrent neural networks").
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wisecli.cli.errors import InputError, WorkFailed
from wisecli.cli.output import dumps
from wisecli.runtime.checkpoints import load_checkpoint, save_checkpoint
from wisecli.runtime.device import amp_dtype, init_distributed
from wisecli.runtime.io.atomic import write_json, write_text
from wisecli.runtime.progress import progress


@dataclass
class TrainSpec:
    """How to train: epochs, where the run folder is (None: in memory, nothing written), AMP, monitor, resume."""

    epochs: int
    run_dir: Path | None
    method: str
    arch: str
    config: dict
    grad_clip: float | None = None
    amp: bool = True
    monitor: str = "val_loss"
    mode: str = "min"
    resume: bool = False
    progress: bool = True
    steps_per_epoch: int | None = None
    log_every: int = 0
    scheduler_interval: str = "epoch"
    patience: int | None = None


@dataclass
class TrainResult:
    """What `fit` returns: the best monitored value and epoch, the last epoch's record, the history, the model."""

    best_metric: float | None
    best_epoch: int | None
    last_metrics: dict
    history: list[dict] = field(default_factory=list)
    model: nn.Module | None = None
    stopped_early: bool = False


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor (1 when it holds none)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for v in values:
        if isinstance(v, (Tensor, dict, list, tuple)):
            return _batch_size(v)
    return 1


def _rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def _dist() -> tuple[int, int]:
    """(rank, world size) of the running process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _improved(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast in the trainer's AMP dtype (the policy is `device.amp_dtype`); nothing without one."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fit(model: nn.Module, optimizer, train_loader: Iterable, step: Callable[[nn.Module, Any], tuple[Tensor, dict]],
        spec: TrainSpec, *, device: torch.device, scheduler=None,
        validate: Callable[[nn.Module, int], dict] | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None,
        checkpoint_extra: Callable[[], dict] | None = None) -> TrainResult:
    """Train `model` for `spec.epochs` epochs; `step(model, batch) -> (loss, metrics)` computes one batch's
    mean loss (the trainer moves the batch to `device`, runs backward, clips, steps the optimizer)."""
    if spec.mode not in ("min", "max"):
        raise ValueError(f"TrainSpec.mode must be 'min' or 'max', not {spec.mode!r}")
    if spec.scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"TrainSpec.scheduler_interval must be 'epoch' or 'step', not {spec.scheduler_interval!r}")
    per_step = scheduler is not None and spec.scheduler_interval == "step"
    if spec.patience is not None and int(spec.patience) < 1:
        raise ValueError(f"TrainSpec.patience must be None or at least 1, not {spec.patience!r}")
    if spec.epochs < 1:
        raise InputError(f"epochs must be at least 1, not {spec.epochs}", hint="pass --epochs 1 or more")

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and _dist()[1] == 1:
        _, device = init_distributed(str(device))
    rank, world = _dist()
    is_main = rank == 0
    writes = is_main and spec.run_dir is not None  # in memory (run_dir None): no folder, no checkpoints
    run_dir = Path(spec.run_dir or ".")
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    if spec.resume and spec.run_dir is None:
        raise ValueError("resume needs a run folder")

    model.to(device)
    dtype = amp_dtype(device) if spec.amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    monitor = spec.monitor if (validate is not None or spec.monitor != "val_loss") else "train_loss"

    start_epoch, best, best_epoch, history = 1, None, None, []
    last = ckpt_dir / "last.pt"
    if spec.resume and last.is_file():
        doc = load_checkpoint(last, method=spec.method)  # on CPU: RNG states must stay there
        if doc.get("arch") != spec.arch:
            raise InputError(f"{last} was trained with arch '{doc.get('arch')}', not '{spec.arch}'",
                             hint="resume with the same architecture, or start a new run folder")
        model.load_state_dict(doc["state_dict"])
        optimizer.load_state_dict(doc["optimizer"])
        if scheduler is not None and doc.get("scheduler") is not None:
            scheduler.load_state_dict(doc["scheduler"])
        if scaler is not None and doc.get("scaler") is not None:
            scaler.load_state_dict(doc["scaler"])
        start_epoch = int(doc["epoch"]) + 1
        best, best_epoch = doc["best"]["value"], doc["best"]["epoch"]
        history = list(doc["history"])
        _set_rng_state(doc["rng"])
    elif spec.resume and is_main:
        _log(f"no checkpoint to resume in {ckpt_dir}; starting at epoch 1")

    if writes:
        write_json(run_dir / "config.json", {
            "method": spec.method, "arch": spec.arch, "config": spec.config,
            "train": {"epochs": spec.epochs, "grad_clip": spec.grad_clip, "amp": spec.amp,
                      "amp_dtype": str(dtype).replace("torch.", "") if dtype else None,
                      "monitor": monitor, "mode": spec.mode, "steps_per_epoch": spec.steps_per_epoch,
                      "world_size": world, "device": str(device)},
        })
        # metrics.jsonl always agrees with the checkpoint the run continues from
        write_text(metrics_path, "".join(dumps(r) + "\n" for r in history))

    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = None
        if device.type == "cuda":
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
        net = DistributedDataParallel(model, device_ids=ids)

    sampler = getattr(train_loader, "sampler", None)
    try:
        per_epoch = spec.steps_per_epoch or len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        per_epoch = None

    def _stale(epoch: int) -> bool:
        return spec.patience is not None and epoch - (best_epoch or 0) >= int(spec.patience)

    stopped = bool(history) and _stale(start_epoch - 1)  # a resumed run that had already stopped
    for epoch in range(start_epoch, spec.epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        lr = float(optimizer.param_groups[0]["lr"])
        net.train()
        sums: Tensor | None = None
        names: list[str] = []
        count, steps = 0, 0
        with progress(f"epoch {epoch}/{spec.epochs}", per_epoch, show=spec.progress and is_main) as advance:
            for batch in _batches(train_loader, spec.steps_per_epoch):
                batch = _to_device(batch, device)
                n = _batch_size(batch)
                optimizer.zero_grad(set_to_none=True)
                with _autocast(device, dtype):
                    loss, metrics = step(net, batch)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if spec.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if per_step:
                    scheduler.step()
                if sums is None:
                    names = ["loss", *metrics]
                values = torch.stack([loss.detach().float().reshape(())] +
                                     [torch.as_tensor(metrics[k], device=device).detach().float().reshape(())
                                      for k in names[1:]])
                sums = values * n if sums is None else sums + values * n
                count += n
                steps += 1
                advance(1)
                if spec.log_every and is_main and steps % spec.log_every == 0:
                    _log(f"epoch {epoch} step {steps}: loss {float(sums[0]) / count:.6g}")
        if sums is None:
            raise ValueError(f"the training loader gave no batches in epoch {epoch}")
        train_seconds = time.perf_counter() - t0
        totals = torch.cat([sums, torch.tensor([float(count)], device=sums.device)])
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(totals)
        means = (totals[:-1] / totals[-1]).tolist()
        samples = float(totals[-1])
        record: dict[str, Any] = {"epoch": epoch}
        record.update({f"train_{k}": float(v) for k, v in zip(names, means)})
        if not math.isfinite(record["train_loss"]):
            raise WorkFailed(f"training diverged: the loss is {record['train_loss']} in epoch {epoch}",
                             hint="lower the learning rate or set a gradient clip; last.pt holds the previous epoch")
        if validate is not None:
            model.eval()
            with torch.no_grad(), _autocast(device, dtype):
                val = validate(model, epoch)
            model.train()
            record.update({(k if k.startswith("val_") else f"val_{k}"): float(v) for k, v in val.items()})
        if monitor not in record:
            raise KeyError(f"monitor '{monitor}' is not among the epoch's metrics: {sorted(record)}")
        record["lr"] = lr
        if scheduler is not None and not per_step:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(record[monitor])
            else:
                scheduler.step()
        record["seconds"] = time.perf_counter() - t0
        record["samples_per_s"] = samples / train_seconds if train_seconds > 0 else float("nan")
        history.append(record)
        improved = _improved(record[monitor], best, spec.mode)
        if improved:
            best, best_epoch = float(record[monitor]), epoch
        if _stale(epoch):
            stopped = True
            record["early_stop"] = True
        if writes:
            extra = checkpoint_extra() if checkpoint_extra is not None else {}
            best_doc = {"metric": monitor, "mode": spec.mode, "value": best, "epoch": best_epoch}
            common = dict(method=spec.method, arch=spec.arch, config=spec.config, state_dict=model.state_dict(),
                          metrics=record, best=best_doc, epoch=epoch, **extra)
            save_checkpoint(last, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict() if scheduler is not None else None,
                            scaler=scaler.state_dict() if scaler is not None else None,
                            history=history, rng=_rng_state(), **common)
            if improved:
                save_checkpoint(ckpt_dir / "best.pt", **common)
            with open(metrics_path, "a", encoding="utf-8") as fh:
                fh.write(dumps(record) + "\n")
        if is_main:
            if spec.log_every:
                _log(" ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)

    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return TrainResult(best_metric=best, best_epoch=best_epoch, last_metrics=history[-1] if history else {},
                       history=history, model=model, stopped_early=stopped)


def fit_in_memory(model: nn.Module, optimizer, train_loader: Iterable,
                  step: Callable[[nn.Module, Any], tuple[Tensor, dict]], *, epochs: int, device: torch.device,
                  amp: bool = True, grad_clip: float | None = None, scheduler=None,
                  steps_per_epoch: int | None = None, validate: Callable[[nn.Module, int], dict] | None = None,
                  monitor: str = "val_loss", mode: str = "min", show_progress: bool = False,
                  on_epoch_end: Callable[[int, dict], None] | None = None,
                  patience: int | None = None) -> TrainResult:
    """`fit` without a run folder: the same loop (AMP, clipping, schedules, per-epoch records, divergence
    check), nothing written. For demos, benchmarks, refits and inner loops that keep the model in memory."""
    spec = TrainSpec(epochs=epochs, run_dir=None, method="", arch="", config={}, grad_clip=grad_clip, amp=amp,
                     monitor=monitor, mode=mode, progress=show_progress, steps_per_epoch=steps_per_epoch, patience=patience)
    return fit(model, optimizer, train_loader, step, spec, device=device, scheduler=scheduler, validate=validate,
               on_epoch_end=on_epoch_end)


def _batches(loader: Iterable, steps: int | None):
    """The loader's batches, capped at `steps` and restarted when it runs out first."""
    if steps is None:
        yield from loader
        return
    done = 0
    while done < steps:
        before = done
        for batch in loader:
            yield batch
            done += 1
            if done >= steps:
                return
        if done == before:
            return
