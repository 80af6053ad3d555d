"""Start-up cost of the `wise` script itself: `wise --help` and one TAB completion, each the median of
several fresh processes. The goal (DESIGN.md) is under 0.3 s on 2 cores; `wise benchmark` reports it."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def _command() -> list[str]:
    script = Path(sys.executable).with_name("wise")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wisecli"]


def _median_seconds(argv: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms the file cache and is dropped
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def measure(repeats: int = 5) -> list[dict]:
    """Benchmark records for the start-up of `wise --help` and of a TAB completion (median seconds)."""
    cmd = _command()
    base = dict(os.environ)
    complete = {**base, "_WISE_COMPLETE": "complete_bash", "COMP_WORDS": "wise ", "COMP_CWORD": "1"}
    out = []
    for case, argv, env in (("startup: wise --help", cmd + ["--help"], base),
                            ("startup: TAB completion", cmd, complete)):
        s = _median_seconds(argv, env, repeats)
        out.append({"case": case, "ours_s": round(s, 4), "peer_s": TARGET_S, "speedup": round(TARGET_S / s, 2),
                    "target": f"< {TARGET_S} s", "ok": s < TARGET_S, "device": "cpu"})
    return out
