"""`runtime.compiled.compiled_step`: the compiled step is used when compiling works, and any failure of the
compiler (at the forward or at the trial backward) is one warning and the eager step, with the eager result."""

from __future__ import annotations

import torch
from torch import nn

from wisecli.runtime.compiled import compiled_step

CPU = torch.device("cpu")


def _step(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean(), {"n": x.shape[0]}


def _setup():
    torch.manual_seed(0)
    return nn.Linear(3, 1), (torch.randn(8, 3), torch.randn(8, 1))


def test_a_working_compiler_is_used_from_the_first_call(monkeypatch):
    calls = []

    def fake_compile(fn, **kw):  # a "compiler" that records its options and runs the step
        calls.append(kw)
        return lambda *a: (fn(*a)[0] * 1.0, {"compiled": True})

    monkeypatch.setattr(torch, "compile", fake_compile)
    model, batch = _setup()
    step = compiled_step(_step, CPU, dynamic=True, warn=lambda m: (_ for _ in ()).throw(AssertionError(m)))
    loss, metrics = step(model, batch)
    assert metrics == {"compiled": True} and calls == [{"dynamic": True, "mode": None}]
    torch.testing.assert_close(loss, _step(model, batch)[0])
    step(model, batch)
    assert len(calls) == 1  # compiled once


def test_a_failing_forward_or_backward_falls_back_once_with_a_warning(monkeypatch):
    for where in ("forward", "backward"):
        def broken(fn, **kw):
            def run(model, batch):
                if where == "forward":
                    raise RuntimeError("no compiler here")
                return model.weight.detach().sum() * 0 + 1.0, {}  # no path to the parameters: backward fails
            return run

        monkeypatch.setattr(torch, "compile", broken)
        model, batch = _setup()
        warnings: list[str] = []
        step = compiled_step(_step, CPU, warn=warnings.append)
        for _ in range(3):
            loss, metrics = step(model, batch)
        assert len(warnings) == 1 and "eagerly" in warnings[0] and "--compile" in warnings[0], where
        assert metrics == {"n": 8}
        torch.testing.assert_close(loss, _step(model, batch)[0])
