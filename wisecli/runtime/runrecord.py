"""`run.json`: what a `train`, `predict` or `run` did — effective configuration with where each value came
from, versions, device, seed, inputs, outputs and timings — written beside its outputs."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wisecli.runtime.bench import versions
from wisecli.runtime.io.atomic import write_json


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second (checkpoints, run records)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """The `run.json` of one `train`, `predict` or `run`: fill it as the work goes, `write()` it at the end."""

    def __init__(self, command: str, *, config: Any = None, device: str | None = None, seed: int | None = None,
                 inputs: list | None = None, argv: list[str] | None = None):
        self.started = time.time()
        self.doc: dict[str, Any] = {
            "command": command,
            "argv": list(sys.argv if argv is None else argv),
            "config": config.as_record() if hasattr(config, "as_record") else (config or {}),
            "device": device,
            "seed": seed,
            "inputs": [str(p) for p in (inputs or [])],
            "outputs": [],
            "timings": {},
            "versions": versions(),
            "created": now_iso(),
        }

    def add_output(self, path) -> None:
        """Note a written output file."""
        self.doc["outputs"].append(str(path))

    def timing(self, name: str, seconds: float) -> None:
        """Record a named duration in seconds."""
        self.doc["timings"][name] = round(float(seconds), 6)

    def set(self, key: str, value: Any) -> None:
        """Set any other top-level field of the record."""
        self.doc[key] = value

    def write(self, folder: Path | str) -> Path:
        """Write `run.json` into `folder` atomically (the total time is filled in if not set)."""
        self.doc["timings"].setdefault("total", round(time.time() - self.started, 6))
        return write_json(Path(folder) / "run.json", self.doc)
