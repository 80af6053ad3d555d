"""The methods `wise` mounts: one entry each (name, command module, help panel, one-line help).

Add a method by adding one `MethodEntry` line; `main.py` mounts every entry and a registry test checks each
one's verbs against the allowed list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodEntry:
    name: str
    module: str
    panel: str
    help: str


VERBS = ("train", "predict", "evaluate", "run", "demo", "info", "benchmark")
METHOD_VERBS = {
    "segment-airway": ("phantom",),
    "nnls": ("pareto",),
    "smooth": ("fit", "record"),
    "fas": ("simulate",),
    "reid": ("query",),
}

METHODS: list[MethodEntry] = [
    MethodEntry("fas", "wisecli.commands.fas", "Vision",
                "Face anti-spoofing: pixel-wise and pyramid supervision (CDCN, ResNet), PAD metrics."),
    MethodEntry("smooth", "wisecli.commands.smooth", "Time series",
                "Correlation-wise smoothing: small, sensor-count-independent signatures of monitoring data."),
]
