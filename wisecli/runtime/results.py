"""The result types of the `demo` and `benchmark` verbs, the same in every method (standard library only, so
the commands and `wise demo`/`wise benchmark` can read them without loading the engine's stack).

A demo's `ok` is the conjunction of its gates: each gate compares a measured value with the threshold the
method's spec states, so `ok` means the method's claim held, never just that the code ran. A failed gate
makes `wise <method> demo` exit 1 after printing the table.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field
from typing import Any

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass
class Gate:
    """One claim a demo checks: `value op threshold` (NaN never passes)."""

    name: str
    value: float
    op: str
    threshold: float

    @property
    def ok(self) -> bool:
        """Whether the gate holds."""
        v = float(self.value)
        return math.isfinite(v) and _OPS[self.op](v, float(self.threshold))

    def as_dict(self) -> dict[str, Any]:
        """The gate as a JSON-ready record, `ok` included."""
        return {"gate": self.name, "value": self.value, "op": self.op, "threshold": self.threshold,
                "ok": self.ok}


@dataclass
class DemoResult:
    """What a demo returns: its gates, a few headline numbers, and any details (records, written files)."""

    method: str
    gates: list[Gate]
    headline: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every gate holds (a demo without gates claims nothing and is ok)."""
        return all(g.ok for g in self.gates)

    def as_dict(self) -> dict[str, Any]:
        """The demo as one JSON-ready document (`wise demo --json` and `<method> demo --json`)."""
        return {"method": self.method, "ok": self.ok, "headline": dict(self.headline),
                "gates": [g.as_dict() for g in self.gates], **self.details}


@dataclass
class BenchRecord:
    """One race of ours against a peer on one case: median seconds each and the ratio peer/ours."""

    case: str
    ours_s: float
    peer_s: float | None
    peer: str
    device: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """Peer seconds over ours (> 1: we are faster); None without a peer time."""
        if self.peer_s is None or not self.ours_s:
            return None
        return self.peer_s / self.ours_s

    def as_dict(self) -> dict[str, Any]:
        """The record flat and JSON-ready, `speedup` included."""
        doc = asdict(self)
        extra = doc.pop("extra")
        return {**doc, "speedup": self.speedup, **extra}


class BenchRecords(list):
    """A `list[BenchRecord]` with a `summary` dict: figures a method's spec asks for beside the records (device,
    preset, shapes, agreement checks); `Sink.benchmark` prints it beside the records in the `--json` document."""

    def __init__(self, records=(), summary: dict[str, Any] | None = None):
        super().__init__(records)
        self.summary: dict[str, Any] = dict(summary or {})


def finished_runs(path) -> dict[tuple[str, int], dict]:
    """The records of a resumable study's `results.jsonl`, keyed by (setting, seed): a rerun skips these. A
    line that does not parse or lacks the keys (a run cut off while writing) counts as not finished."""
    import json
    from pathlib import Path

    done: dict[tuple[str, int], dict] = {}
    path = Path(path)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done[(r["setting"], int(r["seed"]))] = r
            except (ValueError, KeyError, TypeError):
                continue
    return done
