"""Regret invariants: an oracle policy has zero pseudo-regret, common random numbers make identical algorithms
give identical curves, a replicate's curve depends neither on R nor on the other algorithms, a run is
reproducible byte for byte (timings aside), ball arm sets work for the peers, and evaluate's statistics agree
with plain recomputations."""

import json

import numpy as np
import pytest
import torch

from wisecli.engines.bandit import algorithm as alg
from wisecli.engines.bandit import api, metrics, predict
from wisecli.engines.bandit import synthetic as syn

CFG = {"norm_constraint": True, "lazy_every": 1, "projection": "ball", "ts_scale": 1.0}
CPU = torch.device("cpu")


def _env(reps, T=12, arm_set="fixed", K=5):
    S = syn.s_from_kappa(50)
    return syn.make_env(dim=2, arms=K, theta_norm=S - 1, S=S, arm_set=arm_set, horizon=T, seed=3,
                        replicates=reps), S


def _sim(algo, env, S, T=12):
    return predict.simulate(algo, env, horizon=T, S=S, delta=0.05, seed=3, cfg=CFG, dtype=torch.float64, device=CPU)


class _Oracle(alg.Policy):
    name = "oracle"

    def choose(self, arms, t):
        return (arms * self.theta_star.unsqueeze(1)).sum(-1).argmax(-1)

    def update(self, x, y):
        pass


def test_oracle_policy_has_zero_regret(monkeypatch):
    for arm_set in ("fixed", "varying"):
        env, S = _env([0, 1, 2], arm_set=arm_set)
        _Oracle.theta_star = env.theta_star
        monkeypatch.setitem(alg.POLICIES, "glm-ucb", _Oracle)
        out = _sim("glm-ucb", env, S)
        assert np.abs(out["regret"]).max() == 0.0


def test_regret_is_nonnegative_and_identical_algorithms_agree():
    env, S = _env([0, 1])
    a, b = _sim("gloc", env, S), _sim("gloc", env, S)
    assert np.array_equal(a["regret"], b["regret"])
    assert (a["regret"] >= 0).all()


@pytest.mark.parametrize("algo", ["ofulog-r", "ecolog", "ts-laplace", "ol2m"])
def test_replicate_curve_independent_of_R(algo):
    T = 8
    env3, S = _env([0, 1, 2], T=T)
    env1, _ = _env([2], T=T)
    a = _sim(algo, env3, S, T)["regret"][2]
    b = _sim(algo, env1, S, T)["regret"][0]
    # the same arithmetic per replicate, but batched BLAS may sum in another order: agree to rounding
    assert np.abs(a - b).max() < 1e-9


@pytest.mark.parametrize("algo", ["ecolog", "glm-ucb", "gloc", "ol2m", "ts-laplace"])
def test_ball_arm_set_plays_unit_vectors(algo):
    env, S = _env([0, 1], T=6, arm_set="ball")
    out = _sim(algo, env, S, 6)
    assert np.isfinite(out["regret"]).all() and (out["regret"] >= -1e-12).all()


def test_same_seed_same_curves_and_r_independent_of_algos(tmp_path):
    kw = dict(horizon=6, replicates=2, arms=4, curve_points=6, device="cpu")
    api.run(algos="gloc,ol2m", out_dir=tmp_path / "a", **kw)
    api.run(algos="gloc,ol2m", out_dir=tmp_path / "b", **kw)
    api.run(algos="ol2m", out_dir=tmp_path / "c", **kw)

    def load(p):
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"}
                for line in (p / "curves.jsonl").read_text().splitlines()]
    a, b, c = load(tmp_path / "a"), load(tmp_path / "b"), load(tmp_path / "c")
    assert a == b
    assert [r for r in a if r["algo"] == "ol2m"] == c


def test_bootstrap_and_sign_flip_match_plain_recomputation():
    v = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    lo, hi = metrics.bootstrap_ci(v, resamples=500, seed=0)
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, v.size, size=(500, v.size))].mean(1)
    assert (lo, hi) == (np.quantile(means, 0.025), np.quantile(means, 0.975))
    d = np.array([-1.0, -2.0, -1.5, -0.5, -3.0, -1.0, -2.0, -0.7])
    p = metrics.sign_flip_p(d, flips=2000)
    # all-negative differences: only the all-minus and all-plus sign patterns (2 of 256) reach |mean| ⇒ p ≈ 2/256
    assert abs(p - 2 / 256) < 0.01


def test_value_at_interpolates_and_is_exact_on_grid():
    rec = {"t": [1, 3, 5], "cum_regret": [1.0, 2.0, 4.0]}
    assert metrics.value_at(rec, 3) == 2.0 and metrics.value_at(rec, 4) == 3.0 and metrics.value_at(rec, 5) == 4.0


def test_semi_synthetic_rows_and_theta():
    from wisecli.engines.bandit.data import feature_count, semi_synthetic

    assert feature_count("wine") == 13
    Z, th = semi_synthetic("wine", 3, 2.5)
    assert Z.shape == (178, 3) and np.linalg.norm(Z, axis=1).max() == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.norm(th) == pytest.approx(2.5, rel=1e-12)
    env = syn.make_env(dim=3, arms=4, theta_norm=2.5, S=3.5, arm_set="fixed", horizon=5, seed=0, replicates=[0],
                       pool=Z, pool_theta=th)
    assert env.arm_set == "varying" and env.arms.shape == (1, 5, 4, 3)
    rows = env.arms[0, 0].numpy()
    assert len({tuple(r) for r in rows}) == 4  # drawn without replacement


def test_beta_scale_shrinks_ofulog_r_set_and_is_recorded(tmp_path):
    """--beta-scale multiplies β_t: on the same environment a much smaller set changes OFULog-r's play; the setting
    is in the records (and their hash) only when it is not 1, so older runs resume unchanged."""
    from wisecli.cli.errors import InputError

    kw = dict(algos="ofulog-r", horizon=30, replicates=2, arms=5, curve_points=30, device="cpu")
    a = api.run(out_dir=tmp_path / "a", **kw)
    b = api.run(out_dir=tmp_path / "b", beta_scale=0.01, **kw)
    assert "beta_scale" not in a["records"][0]["settings"]
    assert b["records"][0]["settings"]["beta_scale"] == 0.01
    assert a["records"][0]["env_hash"] != b["records"][0]["env_hash"]
    assert [r["cum_regret"] for r in a["records"]] != [r["cum_regret"] for r in b["records"]]
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="beta-scale"):
            api.run(out_dir=tmp_path / "c", beta_scale=bad, **kw)
    assert not (tmp_path / "c").exists()
