"""`evaluate`: compare audits (spec §3). Reads `leakage.json` reports (a file or its run folder); per layer of
the last audited round of each report: the V-information of its best family and the attribute-directed
sensitivity, their differences from the base report (`against`, default the first), with a 95 % bootstrap CI
of the V-information difference when both reports saved features (`features/round_<r>.npz` holds the per-item
held-out bits; the two reports' items are resampled independently) and "no CI" otherwise; per report the
Spearman ρ between the V-information and sensitivity rankings across layers, the argmax layer of each metric and
the top-3 overlap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

from .metrics import spearman


def read_report(path: Path) -> tuple[dict, Path]:
    """(the report, its file); a folder means its leakage.json. Errors are InputError naming the file."""
    p = Path(path)
    if p.is_dir():
        p = p / "leakage.json"
    if not p.is_file():
        raise InputError(f"report not found: {p}", hint="give a leakage.json written by 'wise leakage run -o DIR'")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
        raise InputError(f"cannot read report {p}: {type(exc).__name__}", hint="give a leakage.json written by 'run'") from None
    if not isinstance(doc, dict) or doc.get("method") != "leakage" or not isinstance(doc.get("records"), list) \
            or not doc["records"]:
        raise InputError(f"{p} is not a leakage report", hint="give a leakage.json written by 'wise leakage run'")
    return doc, p


def _layers(doc: dict) -> tuple[int, dict[str, dict]]:
    last = max(int(r["round"]) for r in doc["records"])
    per: dict[str, dict] = {}
    for r in doc["records"]:
        if int(r["round"]) != last or r["family"] == "best":
            continue
        cur = per.get(r["layer"])
        if cur is None or r["vinfo_bits"] > cur["vinfo_bits"]:
            per[r["layer"]] = r
    return last, per


def _pointwise(path: Path, rnd: int, layer: str, family: str) -> np.ndarray | None:
    f = path.parent / "features" / f"round_{rnd}.npz"
    key = f"pw_{layer.replace('.', '_')}__{family}"
    if not f.is_file():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            return z[key] if key in z.files else None
    except (ValueError, OSError, EOFError):
        raise InputError(f"cannot read {f}", hint="rerun the audit with --save-features") from None


def compare(reports: list[Path], against: Path | None, *, metric: str, resamples: int, seed: int) -> dict:
    """The evaluate document {reports: [...], rows: [...]} (see the module docstring)."""
    from wisecli.cli.config import one_of

    one_of("--metric", metric, ("vinfo", "sens", "both"))
    if not reports:
        raise InputError("no report given", hint="wise leakage evaluate audit/leakage.json --against base/leakage.json")
    loaded = [read_report(p) for p in reports]
    base = read_report(against) if against is not None else loaded[0]
    rng = np.random.default_rng(seed)
    b_round, b_layers = _layers(base[0])
    rows, summaries = [], []
    for doc, path in loaded:
        rnd, layers = _layers(doc)
        names = list(layers)
        v = [layers[n]["vinfo_bits"] for n in names]
        s = [layers[n].get("sens_attr_per_param") for n in names]
        summ = {"report": str(path), "round": rnd, "vinfo_argmax": names[int(np.argmax(v))]}
        if all(x is not None for x in s):
            summ.update(sens_argmax=names[int(np.argmax(s))], spearman=spearman(v, s),
                        top3_overlap=len({names[i] for i in np.argsort(v)[::-1][:3]} & {names[i] for i in np.argsort(s)[::-1][:3]}))
        summaries.append(summ)
        for n in names:
            r, b = layers[n], b_layers.get(n)
            row = {"report": path.parent.name or str(path), "round": rnd, "layer": n, "family": r["family"]}
            if metric in ("vinfo", "both"):
                row["vinfo_bits"] = r["vinfo_bits"]
                row["vinfo_diff"] = None if b is None else r["vinfo_bits"] - b["vinfo_bits"]
                ci = "no CI"
                if b is not None:
                    pa = _pointwise(path, rnd, n, r["family"])
                    pb = _pointwise(base[1], b_round, n, b["family"])
                    if pa is not None and pb is not None:
                        ia = rng.integers(0, len(pa), (resamples, len(pa)))
                        ib = rng.integers(0, len(pb), (resamples, len(pb)))
                        d = pa[ia].mean(1) - pb[ib].mean(1)
                        ci = [float(x) for x in np.percentile(d, [2.5, 97.5])]
                row["vinfo_diff_ci95"] = ci
            if metric in ("sens", "both"):
                sa = r.get("sens_attr_per_param")
                sb = None if b is None else b.get("sens_attr_per_param")
                row["sens_attr_per_param"] = sa
                row["sens_ratio"] = None if sa is None or not sb else sa / sb
            rows.append(row)
    return {"method": "leakage", "against": str(base[1]), "metric": metric, "reports": summaries, "rows": rows}
