"""`leakage.png`: V-information per layer with 95 % CI bars per family (the control in grey), and the Jacobian
sensitivity per layer on a log scale (spec §3)."""

from __future__ import annotations

from pathlib import Path


def plot_report(records: list[dict], path: Path | str, title: str = "") -> Path:
    """Two panels from the records of the LAST audited round."""
    from wisecli.runtime.plots import pyplot, save_figure

    plt = pyplot()
    last = max(r["round"] for r in records)
    recs = [r for r in records if r["round"] == last and r["family"] != "best"]
    layers = list(dict.fromkeys(r["layer"] for r in recs))
    fams = list(dict.fromkeys(r["family"] for r in recs))
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(layers) + 4), 4))
    w = 0.8 / (len(fams) + 1)
    for k, fam in enumerate(fams):
        rr = {r["layer"]: r for r in recs if r["family"] == fam}
        xs = [i + k * w for i in range(len(layers))]
        v = [rr[l]["vinfo_bits"] for l in layers]
        lo = [rr[l]["vinfo_bits"] - rr[l]["ci95"][0] for l in layers]
        hi = [rr[l]["ci95"][1] - rr[l]["vinfo_bits"] for l in layers]
        a.bar(xs, v, w, yerr=[lo, hi], capsize=2, label=fam)
    ctl = {r["layer"]: r.get("control_bits") for r in recs if r["family"] == fams[0]}
    if any(c is not None for c in ctl.values()):
        a.bar([i + len(fams) * w for i in range(len(layers))], [ctl[l] or 0.0 for l in layers], w, color="grey",
              label="control")
    a.axhline(0, color="k", lw=0.5)
    a.set_xticks([i + 0.4 - w / 2 for i in range(len(layers))], layers, rotation=45, ha="right", fontsize=7)
    a.set_ylabel("V-information (bits)")
    a.legend(fontsize=7)
    a.set_title(f"round {last}")
    first = {r["layer"]: r for r in recs if r["family"] == fams[0]}
    if any("sens_fro_per_param" in r for r in first.values()):
        vals = [first[l].get("sens_fro_per_param") or float("nan") for l in layers]
        att = [first[l].get("sens_attr_per_param") or float("nan") for l in layers]
        b.plot(range(len(layers)), vals, "o-", label="S_F/sqrt|θ|")
        b.plot(range(len(layers)), att, "s--", label="S_s")
        b.set_yscale("log")
        b.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
        b.set_ylabel(first[layers[0]].get("sens_estimator", "sensitivity"))
        b.legend(fontsize=7)
    fig.suptitle(title or "wise leakage")
    fig.tight_layout()
    return save_figure(fig, path)
