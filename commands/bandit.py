"""`wise bandit`: instance-wise minimax-optimal logistic bandits (Abeille, Faury, Calauzènes, AISTATS 2021).

Verbs: `run` (simulate OFULog-r and its peers on many replicates with common random numbers), `evaluate` (mean,
bootstrap CIs, paired differences, ordering checks), `demo`, `info`, `benchmark`. Each verb parses, calls
`wisecli.engines.bandit.api.<verb>` once and hands the result to the sink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink

app = MethodApp("bandit", help="Logistic bandits: OFULog-r, ECOLog, GLM-UCB, GLOC, OL2M, TS on many seeds at once.",
                context_settings={"help_option_names": ["-h", "--help"]})

_ENV = "Environment"
_ALG = "Algorithms"
Algos = Annotated[Optional[str], typer.Option("--algos", help="Comma-separated: ofulog-r, ecolog, glm-ucb, gloc, ol2m, "
                                              "ts-laplace.", rich_help_panel=_ALG)]
Replicates = Annotated[Optional[int], typer.Option("--replicates", help="Replicates (the batch).", callback=o.at_least_one)]


def _short(v):
    """Table cells: floats (also inside CI pairs) to 4 significant digits."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, list):
        return [_short(x) for x in v]
    return v


def _rows(rows: list[dict]) -> list[dict]:
    return [{k: _short(v) for k, v in r.items()} for r in rows]


def _final_rows(summary: dict) -> list[dict]:
    return _rows([{"algo": a, "n": s["n"], "errors": s["errors"], "final_regret": s["final_regret_mean"],
                   "ci95": s["ci"]} for a, s in summary["algorithms"].items()])


@app.command()
def run(
    algos: Algos = None,
    dim: Annotated[Optional[int], typer.Option("--dim", help="Dimension d.", callback=o.at_least_one, rich_help_panel=_ENV)] = None,
    arms: Annotated[Optional[int], typer.Option("--arms", help="Arms K per round.", callback=o.at_least_one, rich_help_panel=_ENV)] = None,
    kappa: Annotated[Optional[float], typer.Option("--kappa", help="κ = 1/μ̇(S), S = ‖θ*‖ + 1.", callback=o.positive, rich_help_panel=_ENV)] = None,
    theta_norm: Annotated[Optional[float], typer.Option("--theta-norm", help="‖θ*‖ instead of --kappa.", callback=o.not_negative, rich_help_panel=_ENV)] = None,
    theta_direction: Annotated[Optional[Literal["ones", "random"]], typer.Option("--theta-direction", help="θ* along (1,…,1) or a random direction.", rich_help_panel=_ENV)] = None,
    arm_set: Annotated[Optional[Literal["fixed", "varying", "ball"]], typer.Option("--arm-set", help="Arm set.", rich_help_panel=_ENV)] = None,
    horizon: Annotated[Optional[int], typer.Option("--horizon", help="Rounds T.", callback=o.at_least_one, rich_help_panel=_ENV)] = None,
    replicates: Replicates = None,
    delta: Annotated[Optional[float], typer.Option("--delta", help="Failure level δ in (0, 1).", callback=o.positive, rich_help_panel=_ALG)] = None,
    env: Annotated[Optional[Literal["synthetic", "breast-cancer", "wine", "digits"]], typer.Option("--env", help="Synthetic or semi-synthetic (scikit-learn tables).", rich_help_panel=_ENV)] = None,
    curve_points: Annotated[Optional[int], typer.Option("--curve-points", help="Rounds recorded per curve.", callback=o.at_least_one)] = None,
    save_full: Annotated[bool, typer.Option("--save-full", help="Also write curves.npz (every round).")] = False,
    plot: o.Plot = None,
    norm_constraint: Annotated[Optional[bool], typer.Option("--norm-constraint/--no-norm-constraint", help="OFULog-r's ‖θ‖ ≤ S.", rich_help_panel=_ALG)] = None,
    lazy_every: Annotated[Optional[int], typer.Option("--lazy-every", help="Refit the MLE every N rounds after 200.", callback=o.at_least_one, rich_help_panel=_ALG)] = None,
    projection: Annotated[Optional[Literal["ball", "rescale"]], typer.Option("--projection", help="GLOC/OL2M/ECOLog projection.", rich_help_panel=_ALG)] = None,
    ts_scale: Annotated[Optional[float], typer.Option("--ts-scale", help="TS-Laplace scale v.", callback=o.positive, rich_help_panel=_ALG)] = None,
    beta_scale: Annotated[Optional[float], typer.Option("--beta-scale", help="Multiply OFULog-r's β_t (1: the paper's; the demo plays 0.01).", callback=o.positive, rich_help_panel=_ALG)] = None,
    dtype: Annotated[Optional[Literal["float64", "float32"]], typer.Option("--dtype", help="Compute precision.")] = None,
    out_dir: o.OutDir = None, overwrite: o.Overwrite = False, skip_existing: o.SkipExisting = False,
    device: o.Device = None, seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.", callback=o.not_negative)] = None,
    json: o.Json = False, jsonl: o.Jsonl = False,
) -> None:
    """Simulate; writes curves.jsonl (a record per algorithm × replicate, as each finishes), summary.json,
    regret.png and run.json into -o; prints the mean final regret per algorithm."""
    from wisecli.engines.bandit import api

    sink = Sink(json=json, jsonl=jsonl)
    res = api.run(algos=algos, dim=dim, arms=arms, kappa=kappa, theta_norm=theta_norm, theta_direction=theta_direction,
                  arm_set=arm_set, horizon=horizon, replicates=replicates, seed=seed, delta=delta, env=env,
                  curve_points=curve_points, save_full=save_full, plot=plot, norm_constraint=norm_constraint,
                  lazy_every=lazy_every, projection=projection, ts_scale=ts_scale, beta_scale=beta_scale, dtype=dtype, device=device,
                  out_dir=out_dir, overwrite=overwrite, skip_existing=skip_existing, sink=sink)
    sink.result(res["summary"], rows=_final_rows(res["summary"]), title="wise bandit run")
    sink.finish(res["records"], what="replicates")


@app.command()
def evaluate(
    curves: Annotated[list[str], typer.Argument(help="curves.jsonl files, folders, globs, @- (paths on stdin), - (JSONL on stdin).")],
    at: Annotated[Optional[str], typer.Option("--at", help="Rounds, comma-separated (default: the horizon).")] = None,
    ci: Annotated[Optional[float], typer.Option("--ci", help="CI level.", callback=o.positive)] = None,
    bootstrap: Annotated[Optional[int], typer.Option("--bootstrap", help="Bootstrap resamples.", callback=o.at_least_one)] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", help="Paired differences against this algorithm.")] = None,
    expect_order: Annotated[Optional[str], typer.Option("--expect-order", help='e.g. "ofulog-r<ecolog<glm-ucb" (exit 1 if not significant).')] = None,
    plot: o.Plot = None,
    group_by: Annotated[Optional[Literal["env"]], typer.Option("--group-by", help="Summarise each environment apart.")] = None,
    json: o.Json = False,
) -> None:
    """Summaries with confidence bands: mean, bootstrap CI, median, IQR, paired differences (CI, sign-flip p)."""
    from wisecli.engines.bandit import api

    sink = Sink(json=json)
    res = api.evaluate(curves, at=at, ci=ci, bootstrap=bootstrap, reference=reference, expect_order=expect_order,
                       plot=plot, group_by=group_by)
    sink.result(res, rows=_rows(res["rows"]), title="wise bandit evaluate",
                columns=[c for c in ("group", "algo", "t", "n", "mean", "ci", "median", "diff_vs_ref", "diff_ci",
                                     "p_paired", "d_sqrt_t_over_kstar") if any(c in r for r in res["rows"])])
    if res["order"] is not None:
        for c in res["order"]:
            sink.info(f"{c['pair']} at t={c['t']:g}: diff {c['diff']:.4g}, CI {c['ci']} -> {'ok' if c['ok'] else 'NOT significant'}")
        if not res["ok"]:
            from wisecli.cli.errors import WorkFailed

            raise WorkFailed("an expected order does not hold significantly", hint="see the pairs above")


@app.command()
def demo(quick: o.Quick = False, out_dir: o.OutDir = None, device: o.Device = None,
         seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.", callback=o.not_negative)] = None,
         horizon: Annotated[Optional[int], typer.Option("--horizon", help="Override the preset's T.", callback=o.at_least_one)] = None,
         replicates: Replicates = None, json: o.Json = False) -> None:
    """d = 2, K = 20, κ = 400, T = 400, 8 replicates, all six algorithms (--quick: T = 100, 4 replicates);
    OFULog-r plays β_t × 0.01; ok when its mean final regret is below GLM-UCB's."""
    from wisecli.engines.bandit import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, out_dir=out_dir, seed=seed, horizon=horizon, replicates=replicates)
    if not json:
        sink.table(_rows(result.details["rows"]), title="evaluate (reference ofulog-r)",
                   columns=["algo", "t", "n", "mean", "ci", "diff_vs_ref", "diff_ci", "p_paired"])
    if out_dir is not None:
        sink.info(f"wrote {out_dir}")
    sink.demo(result, title="wise bandit demo")


@app.command()
def info(device: o.Device = None, json: o.Json = False) -> None:
    """Algorithms, constants and sources, arm-set support, defaults, device, whether logbexp is importable."""
    from wisecli.engines.bandit import api

    doc = api.info(device=device)
    rows = [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in doc.items()]
    Sink(json=json).result(doc, rows=rows, title="wise bandit info")


@app.command()
def benchmark(
    algos: Algos = None, replicates: Replicates = None,
    rounds: Annotated[Optional[int], typer.Option("--rounds", help="Rounds 1…N.", callback=o.at_least_one)] = None,
    peer: Annotated[Optional[Literal["auto", "logbexp", "loop"]], typer.Option("--peer", help="The peer.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="8 replicates, 10 rounds (seconds).")] = False,
    device: o.Device = None, json: o.Json = False,
) -> None:
    """Race ours (R replicates in lock-step) against the reference-style loop: seconds per replicate-round."""
    from wisecli.engines.bandit import api

    records = api.benchmark(device=device, quick=quick, algos=algos, replicates=replicates, rounds=rounds, peer=peer)
    Sink(json=json).benchmark(records, title="wise bandit benchmark")
