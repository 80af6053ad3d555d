"""`--compile` for a training step, with an eager fallback: one mechanism for every method that offers it.

`compiled_step(step, device)` wraps the trainer's `step(model, batch) -> (loss, metrics)`. The first call
compiles it with `torch.compile` and proves the forward and a backward pass once (a trial `autograd.grad`, so a
compiler that fails on either pass is caught before the optimiser sees anything); any compiler failure (no C++
toolchain, an unsupported op or platform) is one warning and the run goes on eagerly. With fixed shapes
(`dynamic=False`) on CUDA the step runs as CUDA graphs ("reduce-overhead"), and each call marks a new
iteration so the last step's graph outputs can be reused. Variable shapes (token buckets) use `dynamic=True`.
The first compile costs seconds to a minute: it pays off on long GPU runs, not on small CPU ones.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch


def _stderr_warning(msg: str) -> None:
    print(f"Warning: {msg}", file=sys.stderr)


def compiled_step(step: Callable[[Any, Any], tuple], device: torch.device, *, dynamic: bool = False,
                  warn: Callable[[str], None] | None = None) -> Callable[[Any, Any], tuple]:
    """`step` through torch.compile, falling back to `step` itself (with one warning) if compiling fails."""
    graphs = device.type == "cuda" and not dynamic
    state: dict = {"fn": None}

    def run(model, batch):
        if state["fn"] is None:  # first call: compile, and prove the forward and backward passes once
            try:
                fn = torch.compile(step, dynamic=dynamic, mode="reduce-overhead" if graphs else None)
                if graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                trial = fn(model, batch)[0]
                torch.autograd.grad(trial, [p for p in model.parameters() if p.requires_grad])
                state["fn"] = fn
            except Exception as exc:  # any compiler failure: the run goes on eagerly
                text = str(exc).strip().splitlines()
                (warn or _stderr_warning)(f"--compile: torch.compile failed ({type(exc).__name__}"
                                          f"{': ' + text[0][:200] if text else ''}); training eagerly")
                state["fn"] = step
        if graphs and state["fn"] is not step:
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: the last step's graph outputs are spent
        return state["fn"](model, batch)

    return run
