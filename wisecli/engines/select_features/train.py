"""Joint training of the FM-module and the task network, and the read-out of the selection.

Spec §2 (Liao, Latty, Yang, IJCNN 2021): one Adam optimiser over g and f, lr 1e-3, cross-entropy on
f(s · m ⊙ x). Choices where the paper is silent, all options:
- batch 128, `drop_last` when n_fit > batch (a final batch of one or two rows would turn the batch mean into a
  per-sample mask), and 60 epochs where the spec says 100 (the spec's own prototype ran digits at 60): on the
  middle band's real-data case, digits, the benchmark's curve mean over k = 4, 8, 16, 32 is 0.8412 at 60
  epochs against 0.8313 at 100 (FM seeds 0-9) for 1.20 instead of 2.21 CPU-s a fit, below RFE-LR's 1.5-1.9;
  the synthetic 1,000 × 100 gate's recall@8 is 0.8375 against 0.825 (seeds 0-9), its curve 0.9060 against
  0.9059 [measured, issue 13.4]. The kept selection is the lowest hold-out loss's epoch, and after epoch 60
  a lower loss came with a worse ranking. The sized paths below stop on patience long before either cap
  (breast cancer + noise 41-58 epochs, MNIST-5k 44-60 at the 100 cap), so the change is the middle band's;
- small tables (issue 13.4; `plan_for`): when the fit split has at most `full_batch` = 512 rows (and there
  is a hold-out), the whole split is one batch, Adam runs at `full_batch_lr` · sqrt(n_fit / batch) (3e-3 at
  128 rows, the square-root rule), the epoch cap is the mini-batch run's number of updates and training
  stops `patience` = 10 epochs after the lowest hold-out loss. On a 2-core CPU an epoch of mini-batches
  costs per-step overhead a small table cannot amortise: breast cancer + 30 noise columns (569 × 60, 398 fit
  rows) went from 3.2× RFE-LR's CPU time to 1.3× [measured]. Why 512 and not more: at 875 fit rows
  (the 1,000 × 100 synthetic recovery gate) the lowest hold-out loss comes at epoch 28–34 while the mask
  still sharpens, and recall@8 of the informative columns fell from ≥ 0.75 to 0.625 (patience 30: 0.71)
  [measured]; a 2,000 × 100 table would have gone from 5.3× to 1.05× RFE-LR, but is not claimed. Larger
  tables up to `large_table` keep the mini-batch path unchanged. `full_batch=0` turns the small-table path off;
- the middle band (512 < fit rows < 2,048) keeps the spec's mini-batches on purpose [measured, issue 13.4]:
  at the spec's 100 epochs digits (1,257 fit rows) cost 2.9 CPU-s a fit (3.95 before the flush and the fused
  Adam) against RFE-LR's 1.3-1.7 (at 60 epochs, above, 1.2), and cheaper plans that hold digits' accuracy (batch 256 at 4.2e-3 for ≤ 50 epochs: 1.2 CPU-s, curve
  mean over k = 4, 8, 16, 32 0.829 against 0.826, seeds 0-2; batch 128 at 3e-3 with patience 10: 2.8 CPU-s,
  0.827; batch 128 at 2e-3 for half the epochs: 1.3 CPU-s, 0.834) lose the synthetic recovery (1,000 × 100,
  700 fit rows, demo's 60 epochs): recall@8 of the informative columns 0.875 → 0.75 (the first two) or 0.833
  (the third; over FM seeds 0-9 0.838 → 0.787), at or toward the gate's edge of 0.75; batch 256 at
  1.4e-3 or 2e-3 for all the epochs: 0.75 [measured]. The ranking there needs the spec's many small steps.
  Nor does stopping when the read-out ranking is stable pay (replayed exactly from full fits, at least 10 epochs,
  the published epoch still the lowest hold-out loss up to the stop): the ordered top 16 changes in 68-100 % of
  the epochs after the tenth (digits, synthetic 1,000 × 100 and 10,000 × 100, seeds 0-2), so "top 16 or top
  ⌈√d⌉ unchanged for 5 or 10 epochs" stops late or never (digits 2.05× RFE-LR's CPU as before; the 1,000 × 100
  table at best 4.3× → 3.2×), and "Spearman ≥ 0.99 for 5 or 10 epochs" stops at 10-26 epochs but loses the top
  of the ranking (digits curve mean over k = 4, 8, 16, 32, seeds 0-9: 0.831 → 0.781; synthetic recall@8, 60 and
  100 epochs, seeds 0-9: 0.84/0.83 → 0.63-0.65; synthetic-10k still 1.9-2.4× RFE-LR) [measured, issue 13.4];
- large tables (issue 13.4; `plan_for`): when the fit split has at least `large_table` = 2,048 rows, batches of
  about n_fit / 8 rows (a power of two, at most 1,024) at 3e-3 · sqrt(batch / 128), stopping `patience` = 10
  epochs after the lowest hold-out loss. `large_table=0` turns it off;
- the selection kept is the epoch with the lowest loss on a 12.5 % stratified hold-out of the training
  split. The validation loss is computed with the mask read out over the whole training split (the mask
  that epoch would publish), not with a batch mask, so "best" means "best selection";
- the standardisation (mean/std) is fitted on the whole training split; a constant column gets std 1;
- the standardised training matrix lives on the device and mini-batches are drawn with a device-side
  `randperm` (no DataLoader); g and f run under bf16 autocast on CUDA, the mean/softmax/read-out in fp32.
- on the CPU the fit runs with one intra-op thread (`one_cpu_thread`): these MLPs are too small to
  share; with two threads on a busy 2-core machine the threads spent their time in barriers (digits, 20
  epochs: 1.9 s CPU with one thread, 29.8 s with two, 8× the wall time) [measured]. On that thread subnormal
  floats are flushed to zero in the training loop (`runtime.device.flush_denormals`): Adam's moments and some
  activations drift below 1.2e-38, where x86 arithmetic is many times slower; the scores stay bit-identical
  (digits, MNIST-5k) and a fit costs 8-9 % less CPU time, 13 % with the fused Adam of `make_adam` (digits,
  100 epochs: 3.37 → 2.93 CPU-s; MNIST-5k, 30 epochs: 4.66 → 4.04; minimum of 2-3 interleaved fits after a
  full-size warm-up, on a loaded 2-core AMD) [measured, issue 13.4]. What remains in the middle band is the
  spec's plan itself: 900 Adam steps of 128 rows on digits cost ~1.8 CPU-s even in a bare loop (forward,
  backward, fused Adam, no trainer, no validation: ~2 ms a step, of which ~0.65 ms is the GEMMs' arithmetic),
  against RFE-LR's 1.3-1.7 [measured].
  The matrix is always kept on the device: the tables this tool is for (up to ~10^5 × 10^3) are far below a
  GPU's memory; streaming larger ones from the host is not implemented.
- `compile` (off by default, spec §7): the fixed-shape training step (g, the batch mean, f and the loss;
  `drop_last` keeps every batch the same shape) goes through `runtime.compiled.compiled_step` (fixed shapes:
  CUDA graphs on CUDA, where the step is launch-bound; a compiler failure is a warning, then eager). The
  optimiser and the read-out stay eager.

The training is written as a `step(model, batch) -> (loss, metrics)` and a `validate(model, epoch) -> dict`
(the shared trainer's contract). `train_run` runs them through `wisecli.runtime.trainer.fit`, which writes the
run folder; `train_selector` runs the same callables through `runtime.trainer.fit_in_memory` (the same loop,
nothing written; rankings bit-identical to the loop it replaced) for `evaluate`, `demo` and `benchmark`, where
one FM fit per seed is a means to a ranking and a run folder per fit would only cost time. With `compile`, the
fixed-shape step is still just the `step` callable the trainer calls, so both paths host it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from wisecli.runtime.compiled import compiled_step
from wisecli.runtime.device import flush_denormals, one_cpu_thread

from .config import FMConfig
from .model import FMSelector, default_k, make_mask_net, make_task_net, mask_entropy, rank_features, readout_mask

METHOD = "select-features"


@dataclass
class Scaler:
    """Per-column standardisation fitted on the training split (spec §2)."""

    mean: np.ndarray
    std: np.ndarray
    constant: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Scaler":
        x = np.asarray(x, dtype=np.float64)
        constant = np.ptp(x, axis=0) == 0
        std = x.std(axis=0)
        std[constant] = 1.0
        return cls(mean=x.mean(axis=0), std=std, constant=constant)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "constant": self.constant.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        return cls(np.asarray(d["mean"], float), np.asarray(d["std"], float), np.asarray(d["constant"], bool))


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit_idx, val_idx): a stratified hold-out of `fraction` of the rows; no hold-out when fraction is 0."""
    n = len(y)
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    from sklearn.model_selection import train_test_split

    fit_idx, val_idx = train_test_split(np.arange(n), test_size=fraction, stratify=y, random_state=seed)
    return np.sort(fit_idx), np.sort(val_idx)


@dataclass(frozen=True)
class Plan:
    """How one fit trains: the batch size, learning rate, epoch cap and early-stopping patience it uses.
    `full_batch` says the small-table path was taken (the whole fit split is one batch)."""

    batch_size: int
    lr: float
    epochs: int
    patience: int | None
    full_batch: bool


def plan_for(n_fit: int, cfg: FMConfig) -> Plan:
    """The small-table path (fit rows ≤ `cfg.full_batch`), the large-table path (fit rows ≥ `cfg.large_table`),
    or between them the mini-batch path of the spec (`cfg.batch_size`, `cfg.lr`, `cfg.epochs`, no early stop).
    Both sized paths need a hold-out to stop on and `cfg.patience` ≥ 1, and stop after `cfg.patience` epochs
    without a lower hold-out loss; their rate follows the square-root scaling rule for Adam (Malladi et al.,
    "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", NeurIPS 2022) from a base of
    `cfg.full_batch_lr` = 3e-3 at `cfg.batch_size` rows.

    Small tables: one batch of all n_fit rows, so an epoch is one Adam step on the exact gradient, at
    3e-3 · sqrt(max(1, n_fit / cfg.batch_size)) rather than from `cfg.lr`: on breast cancer + 30 noise columns
    (398 fit rows, seeds 0, 1, 2) the rule from 1e-3 stops after 65–104 epochs, from 3e-3 after 39–56 with the
    same rankings' accuracy curves, and from 5e-3 a seed loses 1.8 points [measured]. The epoch cap is the
    mini-batch run's number of updates, `cfg.epochs` · ceil(n_fit / cfg.batch_size) (one update per epoch now,
    so never more updates than before).

    Large tables: batches of the power of two at or below n_fit / 8 (at most `cfg.large_batch`), so an epoch is
    about eight steps on GEMMs large enough to run at the CPU's speed instead of its per-step overhead, at
    3e-3 · sqrt(batch / cfg.batch_size), `cfg.epochs` at most. The spec's 100 epochs of 128 rows cost ten times
    RFE-LR on a 10,000 × 100 table and the hold-out loss bottoms out at epoch 30–40 [measured, issue 13.4]."""
    sized = cfg.val_fraction > 0 and cfg.patience is not None and cfg.patience >= 1 and n_fit > 0
    if sized and cfg.full_batch > 0 and n_fit <= cfg.full_batch:
        scale = max(1.0, n_fit / cfg.batch_size)
        return Plan(n_fit, cfg.full_batch_lr * math.sqrt(scale), cfg.epochs * math.ceil(scale), int(cfg.patience),
                    True)
    if sized and cfg.large_table > 0 and n_fit >= cfg.large_table:
        batch = max(cfg.batch_size, min(cfg.large_batch, 2 ** round(math.log2(n_fit / 8))))
        return Plan(batch, cfg.full_batch_lr * math.sqrt(batch / cfg.batch_size), cfg.epochs, int(cfg.patience),
                    False)
    return Plan(cfg.batch_size, cfg.lr, cfg.epochs, None, False)


def make_adam(model: FMSelector, plan: Plan, device: torch.device) -> torch.optim.Adam:
    """Adam at the plan's rate, `fused` on every device: one kernel per parameter on the CPU too, instead of the
    `foreach` update's chain of list ops (digits' spec mini-batches, 1,257 fit rows, without the flush: 3.37 →
    2.93 CPU-s a fit; MNIST-5k at 30 epochs 4.66 → 4.09 [measured, issue 13.4]). The same update up to rounding (a step
    agrees with the textbook formula to 1e-6, tested); the rankings move only where training amplifies that
    rounding (digits curve mean over k = 4, 8, 16, 32, seeds 0-2: 0.8259 → 0.8273; synthetic recall@8 the
    same on every seed). A run saved with the older `foreach` optimiser resumes on it: its param group's
    `foreach`/`fused` flags come back with `load_state_dict`."""
    return torch.optim.Adam(model.parameters(), lr=plan.lr, fused=True)


class DeviceBatches:
    """Mini-batches of device tensors, reshuffled each epoch with a device-side randperm (the global torch
    RNG of the device, so the trainer's RNG checkpointing covers it); `drop_last` when there are more rows
    than one batch, so every batch mean averages `batch_size` rows."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int):
        self.x, self.y = x, y
        self.n = x.shape[0]
        self.batch_size = min(batch_size, self.n)
        self.drop_last = self.n > batch_size

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.n, device=self.x.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


def build_model(cfg: FMConfig, d: int, n_classes: int) -> FMSelector:
    scale = float(d) if str(cfg.mask_scale) == "d" else 1.0
    return FMSelector(make_mask_net(cfg.mask_net, d, cfg.mask_hidden),
                      make_task_net(cfg.task_net, d, n_classes, tuple(cfg.hidden)), d, scale)


def make_step(device: torch.device, amp: bool, compile: bool = False, warn: Callable[[str], None] | None = None
              ) -> Callable:
    """step(model, (x, y)) -> (loss, {}): cross-entropy of f(s · m_batch ⊙ x), g and f under autocast;
    with `compile`, through torch.compile (eager, with a warning, if compiling fails)."""
    use_amp = amp and device.type == "cuda"

    def loss_of(model: FMSelector, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if not use_amp:  # no autocast context at all: entering a disabled one is per-step overhead on the CPU
            return F.cross_entropy(model(xb), yb)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            logits = model(xb)
        return F.cross_entropy(logits, yb)

    def step(model: FMSelector, batch):
        return loss_of(model, *batch), {}

    return compiled_step(step, device, warn=warn) if compile else step


def make_validate(x_all: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                  k: int | None) -> tuple[Callable, dict]:
    """(validate, state): validate(model, epoch) -> metrics of the selection this epoch would publish: the
    mask read out over the whole training split, its entropy, the top-k overlap with the previous epoch
    (NaN in the first), and (with a hold-out) the loss and accuracy of f on the hold-out under that mask.
    The mask itself is left in state["mask"]."""
    state: dict = {"prev": None, "mask": None}

    @torch.no_grad()
    def validate(model: FMSelector, epoch: int) -> dict:
        m = readout_mask(model.mask_net, x_all)
        kk = k or default_k(m)
        top = set(rank_features(m)[:kk].tolist())
        out: dict = {"mask_entropy": mask_entropy(m)}
        out["topk_overlap_prev"] = math.nan if state["prev"] is None else len(top & state["prev"]) / kk
        state["prev"] = top
        if x_val.shape[0]:
            was = model.training  # the trainer calls validate in eval mode: no toggling (a recursive walk) then
            if was:
                model.eval()
            logits = model(x_val, mask=m)
            if was:
                model.train()
            out["val_loss"] = float(F.cross_entropy(logits, y_val))
            out["val_acc"] = float((logits.argmax(1) == y_val).float().mean())
        state["mask"] = m
        return out

    return validate, state


@dataclass
class FitResult:
    """The selection: scores m (fp32 → float64 numpy), the ranking, k_default, and the best model."""

    scores: np.ndarray
    ranking: np.ndarray
    k_default: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    model: FMSelector | None = None
    seconds: float = 0.0
    plan: Plan | None = None
    stopped_early: bool = False


def train_selector(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: FMConfig, device: torch.device,
                   warn: Callable[[str], None] | None = None) -> FitResult:
    """Train g and f jointly, in memory, on standardised `x` (n × d, float32) and labels `y` (0..C−1);
    returns the selection read out from the epoch with the best monitor (hold-out loss). `warn` receives
    the --compile fallback warning."""
    with one_cpu_thread(device):
        return _train_selector(x, y, n_classes, cfg, device, warn)


def _train_selector(x, y, n_classes, cfg: FMConfig, device: torch.device, warn=None) -> FitResult:
    from wisecli.runtime.trainer import fit_in_memory

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    d = x.shape[1]
    fit_idx, val_idx = stratified_holdout(y, cfg.val_fraction, cfg.seed)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    plan = plan_for(len(fit_idx), cfg)
    model = build_model(cfg, d, n_classes).to(device)
    opt = make_adam(model, plan, device)
    batches = DeviceBatches(xt[fit_idx], yt[fit_idx], plan.batch_size)
    step = make_step(device, cfg.amp, cfg.compile, warn)
    validate, vstate = make_validate(xt, xt[val_idx], yt[val_idx], cfg.k)
    monitor = "val_loss" if len(val_idx) else "train_loss"
    raw: list[dict] = []  # validate's own keys, as FitResult.history has always named them
    best: dict = {"value": math.inf, "state": None, "mask": None, "epoch": -1}

    def validate_kept(model, epoch):
        out = validate(model, epoch)
        raw.append(out)
        return out

    def on_epoch_end(epoch: int, record: dict) -> None:
        """Keep the weights and mask of the epoch with the best monitor (the trainer's epochs count from 1)."""
        if record[monitor] < best["value"]:
            best.update(value=record[monitor], epoch=epoch - 1, mask=vstate["mask"],
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})

    history, stopped_early = [], False
    if cfg.epochs > 0:  # AMP is the step's own (bf16 around g and f only), so the trainer's is off
        with flush_denormals(device):  # the training loop only: imports under it would cache a zero subnormal
            res = fit_in_memory(model, opt, batches, step, epochs=plan.epochs, device=device, amp=False,
                                validate=validate_kept, monitor=monitor, on_epoch_end=on_epoch_end,
                                patience=plan.patience)
        stopped_early = res.stopped_early
        history = [{"epoch": i, "train_loss": r["train_loss"], **v} for i, (r, v) in enumerate(zip(res.history, raw))]

    best_state, best_mask = best["state"], best["mask"]
    if best_state is None:  # zero epochs (or no finite monitor): the current mask
        best_state, best_mask = model.state_dict(), readout_mask(model.mask_net, xt)
    model.load_state_dict(best_state)
    return FitResult(scores=best_mask.double().cpu().numpy(), ranking=rank_features(best_mask).numpy(),
                     k_default=default_k(best_mask), best_epoch=best["epoch"], history=history, model=model,
                     seconds=time.perf_counter() - t0, plan=plan, stopped_early=stopped_early)


def fit_scaled(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: FMConfig, device, **kw) -> tuple[FitResult, Scaler]:
    """Standardise `x` on itself, then `train_selector`; returns the fit and the scaler."""
    scaler = Scaler.fit(x)
    return train_selector(scaler.transform(x), y, n_classes, cfg, device, **kw), scaler


def train_run(ds, run_dir, cfg: FMConfig, *, data_path, target: str, device: torch.device, id_col=None,
              impute_how: str = "none", resume: bool = False, overwrite: bool = False, epochs_given: bool = False,
              progress: bool = True, resolved=None, sink=None) -> dict:
    """Fit FM on the loaded `ds` (a `data.Dataset`) and write the run folder: config.json, metrics.jsonl,
    checkpoints/last.pt|best.pt, selection.json/.csv (after every improving epoch) and run.json. Returns the
    selection document of the best epoch.

    The folder follows `runtime.rundir.prepare_run_dir` (refused when not empty unless `resume`/`overwrite`).
    `resume` continues from checkpoints/last.pt with its stored configuration; `epochs_given` (the user set
    --epochs) lets this call's `cfg.epochs` extend or shorten the run; --compile is always this run's choice."""
    from wisecli.runtime.checkpoints import load_checkpoint
    from wisecli.runtime.io.atomic import sha256_file
    from wisecli.runtime.rundir import last_checkpoint, prepare_run_dir
    from wisecli.runtime.runrecord import RunRecord
    from wisecli.runtime.trainer import TrainSpec, fit

    from . import selection as sel
    from .data import check_stratifiable, impute

    t0 = time.perf_counter()
    warn = sink.warn if sink else None
    (x,) = impute(ds.x, how=impute_how)
    d = x.shape[1]
    if cfg.k is not None:
        sel.check_k(cfg.k, d)
    if cfg.val_fraction > 0:
        check_stratifiable(ds.y, ds.classes, "validation hold-out")
    run_dir = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    ckpt_dir = run_dir / "checkpoints"
    best_value = math.inf
    last = last_checkpoint(run_dir) if resume else None
    if last is not None:
        doc = load_checkpoint(last, method=METHOD)
        # a run saved before the sized paths existed resumes on the path it began with (both off)
        cfg = FMConfig.from_dict({"full_batch": 0, "large_table": 0, **doc["config"]["fm"], "compile": cfg.compile,
                                  **({"epochs": cfg.epochs} if epochs_given else {})})
        best_value = float(doc["best"]["value"])
    sha = None if str(data_path) == "-" else sha256_file(data_path)
    scaler = Scaler.fit(x)
    config = {"fm": cfg.to_dict(), "data": str(data_path), "target": target, "id_col": id_col, "impute": impute_how,
              "n": int(x.shape[0]), "d": d, "classes": ds.classes}
    arch = f"fm-{cfg.mask_net}+{cfg.task_net}"
    # "scaler" is the trainer's AMP GradScaler key in last.pt, so the standardisation goes under "feature_scaler"
    extra = {"feature_names": ds.feature_names, "feature_scaler": scaler.to_dict(), "classes": ds.classes,
             "target": target}

    torch.manual_seed(cfg.seed)
    fit_idx, val_idx = stratified_holdout(ds.y, cfg.val_fraction, cfg.seed)
    xt = torch.as_tensor(scaler.transform(x), device=device)
    yt = torch.as_tensor(ds.y, device=device)
    plan = plan_for(len(fit_idx), cfg)
    model = build_model(cfg, d, ds.n_classes).to(device)
    opt = make_adam(model, plan, device)
    validate, vstate = make_validate(xt, xt[val_idx], yt[val_idx], cfg.k)
    monitor = "val_loss" if len(val_idx) else "train_loss"

    def selection_doc(mask, epoch):
        k = cfg.k if cfg.k is not None else default_k(mask)
        return sel.build(mask.double().cpu().numpy(), rank_features(mask).numpy(), ds.feature_names,
                         scaler.constant, k=k, k_rule="--k" if cfg.k is not None else "m>=1/d", target=target,
                         batch_size=plan.batch_size, seed=cfg.seed, scaler=scaler.to_dict(), run_dir=str(run_dir),
                         data_sha256=sha, id_col=id_col, classes=ds.classes, epoch=epoch)

    def on_epoch_end(epoch, record):
        """selection.json follows best.pt: rewritten (atomically) after every improving epoch."""
        nonlocal best_value
        value = record[monitor]
        if math.isfinite(value) and value < best_value:
            best_value = value
            sel.write(selection_doc(vstate["mask"], epoch), run_dir)

    spec = TrainSpec(epochs=plan.epochs, run_dir=run_dir, method=METHOD, arch=arch, config=config, amp=cfg.amp,
                     monitor=monitor, resume=resume, progress=progress, patience=plan.patience)
    with one_cpu_thread(device), flush_denormals(device):
        fit(model, opt, DeviceBatches(xt[fit_idx], yt[fit_idx], plan.batch_size),
            make_step(device, cfg.amp, cfg.compile, warn), spec,
            device=device, validate=validate, on_epoch_end=on_epoch_end, checkpoint_extra=lambda: extra)
    best = load_checkpoint(ckpt_dir / "best.pt", method=METHOD)
    model.load_state_dict(best["state_dict"])
    doc = selection_doc(readout_mask(model.mask_net, xt), int(best["epoch"]))
    sel.write(doc, run_dir)
    rec = RunRecord("select-features train", config=resolved, device=str(device), seed=cfg.seed,
                    inputs=[str(data_path)])
    rec.timing("train", time.perf_counter() - t0)
    for name in ("selection.json", "selection.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        rec.add_output(run_dir / name)
    rec.write(run_dir)
    return doc
