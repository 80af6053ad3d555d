"""`evaluate`: compare audits (spec §3). Reads `leakage.json` reports (a file or its run folder); per layer of
the last audited round of each report: the V-information of its best family and the attribute-directed
sensitivity, their differences from the base report (`against`, default the first), with a 95 % bootstrap CI
of the V-information difference when both reports saved features (`features/round_<r>.npz` holds the per-item
held-out bits; the two reports' items are resampled independently) and "no CI" otherwise; per report the
Spearman ρ between the V-information and sensitivity rankings across layers, the argmax layer of each metric and
the top-3 overlap (`metrics.rank_layers`).

`rounds="all"` does the same for every audited round of each report (a layer is compared with the base report's
same round when it has one, else with its last round); `summary` is the short form the command prints: one row
per report × round with the data set, model, batch size, the leading layer of each metric, its bits, ρ and the
largest |control|. The reported-not-gated study of the spec §9 (digits and shapes32, rounds 0/5/10, batch sizes
1/8/32) is six `run`s and one `evaluate --rounds all --summary` (README).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError



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


def _layers(doc: dict, rnd: int | None = None) -> tuple[int, dict[str, dict]]:
    """(round, {layer: the record of its best family}) of round `rnd` (default, or when absent: the last)."""
    have = {int(r["round"]) for r in doc["records"]}
    last = rnd if rnd in have else max(have)
    per: dict[str, dict] = {}
    for r in doc["records"]:
        if int(r["round"]) != last or r["family"] == "best" or r.get("vinfo_bits") is None:
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


def compare(reports: list[Path], against: Path | None, *, metric: str, resamples: int, seed: int,
            rounds: str = "last") -> dict:
    """The evaluate document {reports: [...], rows: [...], summary: [...]} (see the module docstring)."""
    from wisecli.cli.config import one_of

    from .metrics import rank_layers

    one_of("--metric", metric, ("vinfo", "sens", "both"))
    one_of("--rounds", rounds, ("last", "all"))
    if not reports:
        raise InputError("no report given", hint="wise leakage evaluate audit/leakage.json --against base/leakage.json")
    loaded = [read_report(p) for p in reports]
    base = read_report(against) if against is not None else loaded[0]
    rng = np.random.default_rng(seed)
    rows, summaries, short = [], [], []
    for doc, path in loaded:
        have = sorted({int(r["round"]) for r in doc["records"]})
        cfg = doc.get("config") or {}
        for rnd in (have if rounds == "all" else have[-1:]):
            rnd, layers = _layers(doc, rnd)
            b_round, b_layers = _layers(base[0], rnd)
            rank = rank_layers([r for r in doc["records"] if int(r["round"]) == rnd])
            summaries.append({"report": str(path), **rank})
            ci = rank.get("vinfo_ci95")
            short.append({"report": path.parent.name or str(path), "data": doc.get("source"), "model": doc.get("model"),
                          "batch_size": cfg.get("batch_size"), "round": rnd, "vinfo_argmax": rank.get("vinfo_argmax"),
                          "vinfo_bits": rank.get("vinfo_bits"),
                          "vinfo_ci95": None if ci is None else [round(float(x), 4) for x in ci],
                          "sens_argmax": rank.get("sens_argmax"), "spearman": rank.get("spearman"),
                          "top3_overlap": rank.get("top3_overlap"), "control_max_abs": rank.get("control_max_abs")})
            for n, r in layers.items():
                b = b_layers.get(n)
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
    return {"method": "leakage", "against": str(base[1]), "metric": metric, "rounds": rounds, "reports": summaries,
            "rows": rows, "summary": short}
