"""Valid, fast examples of every verb of bandit, for the conformance suite (tests/suite).

Sizes are tiny (d = 2, a handful of arms, rounds and replicates) so each example runs in about a second; the
demo and benchmark examples shrink their presets with --horizon/--replicates and --rounds/--replicates.
`evaluate` reads a curves.jsonl written here by hand in the format `wise bandit run` writes; its CURVES
argument is a `str` because it also takes `-` (the JSONL stream on stdin) and `@-`.
"""

from __future__ import annotations

import json
from pathlib import Path

ENV = {"env": "synthetic", "dim": 2, "arms": 4, "arm_set": "fixed", "kappa": 400.0, "S": 5.986446,
       "theta_norm": 4.986446, "theta_direction": "ones", "horizon": 10, "delta": 0.05}


def _curves(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    lines = []
    for a, algo in enumerate(("ofulog-r", "glm-ucb")):
        for r in range(3):
            cum = [round((1 + a) * (0.3 + 0.05 * r) * t, 4) for t in (1, 5, 10)]
            lines.append(json.dumps({"algo": algo, "replicate": r, "seed": [0, r],
                                     "env": {**ENV, "kappa_star": 20.0 + r, "kappa_arms_max": 90.0},
                                     "t": [1, 5, 10], "cum_regret": cum, "final_regret": cum[-1], "status": "ok"}))
    path = tmp / "curves.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise bandit <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only under `tmp / "out"` (or `-o tmp/out.ext`)."""
    curves = _curves(tmp)
    out = str(tmp / "out")
    cpu = ["--device", "cpu"]
    return {
        "run": ["--algos", "glm-ucb,gloc", "--horizon", "5", "--replicates", "2", "--arms", "3",
                "--curve-points", "5", "-o", out, *cpu],
        "evaluate": [str(curves), "--reference", "ofulog-r", "--bootstrap", "200"],
        "demo": ["--quick", "--horizon", "3", "--replicates", "2", *cpu],
        "info": cpu,
        "benchmark": ["--quick", "--algos", "ecolog", "--replicates", "2", "--rounds", "2", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """bandit has no batch verb over input files (run simulates one environment)."""
    return None


# "verb --option": which of {"0", "-1", "nan", "inf"} are VALID (a zero norm of θ* and seed 0 are legitimate)
VALID_EDGES: dict[str, set[str]] = {"run --theta-norm": {"0"}, "run --seed": {"0"}, "demo --seed": {"0"}}
STDIN: set[str] = {"evaluate CURVES"}  # `-` reads the JSONL stream, `@-` a list of paths
