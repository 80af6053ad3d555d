"""``--convention dcdb`` against a plain transcription of DCDB's Wintermute CS operator (issue 13 point 3), and a
model fitted on .npy applied to a CSV with other column names (exit 2, ``--by-position``).

The oracle below is written from the facts of DCDB's ``CSOperator.cpp`` (``computeMinMax``,
``convertToCorrelation``, ``computePermutation``, ``normalize``, ``getAvg``, ``getDer``, ``computeSignature``):
loops over sensors and window samples, no vectorisation. ``integer=True`` also reproduces DCDB's int64 readings
(truncation of every normalised value, mean and block mean), which the engine documents as not reproduced.
"""

import json
import math

import numpy as np
import pytest
from conftest import run_wise

from wisecli.engines.smooth import algorithm as A

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


# ----------------------------------------------------------------------------- the oracle: DCDB, one window at a time
def dcdb_train(X):
    """X: T × S training readings → (perm, min, max) as computePermutation/computeMinMax do."""
    T, S = X.shape
    mn = [min(X[:, i]) for i in range(S)]
    mx = [max(X[:, i]) for i in range(S)]
    mean = [sum(X[:, i]) / T for i in range(S)]
    m = [[sum((X[t, i] - mean[i]) * (X[t, j] - mean[j]) for t in range(T)) / T for j in range(S)] for i in range(S)]
    for i in range(S):  # convertToCorrelation: off-diagonal Pearson with + 0.00001
        for j in range(S):
            if i != j:
                m[i][j] = m[i][j] / (math.sqrt(m[i][i]) * math.sqrt(m[j][j]) + 0.00001)
    for i in range(S):  # the diagonal holds the mean off-diagonal correlation
        m[i][i] = 0.0
        for j in range(S):
            if i != j:
                m[i][i] += m[i][j]
        m[i][i] /= S - 1
    perm, avail = [], list(range(S))
    best, idx = -1000.0, 0
    for i in range(S):
        if m[i][i] > best:
            best, idx = m[i][i], i
    perm.append(idx)
    avail.remove(idx)
    while avail:
        best, idx = -1000.0, 0
        for j in avail:  # std::set: ascending order, strict > keeps the lowest index on ties
            c = m[j][j] * m[perm[-1]][j]
            if c > best:
                best, idx = c, j
        perm.append(idx)
        avail.remove(idx)
    return perm, mn, mx


def dcdb_signature(win, perm, mn, mx, blocks, scale, integer=False):
    """win: the W readings of the window (W × S) → [avg blocks..., der blocks...]."""
    W, S = win.shape
    avg, der = [0.0] * S, [0.0] * S
    for i in range(S):
        denom = scale / (mx[i] - mn[i]) if mx[i] != mn[i] else scale
        v = []
        for t in range(W):
            x = min(max(win[t, i], mn[i]), mx[i])
            y = (x - mn[i]) * denom
            v.append(float(int(y)) if integer else y)
        a = sum(v)
        d = sum(v[t] - v[t - 1] for t in range(1, W))
        if integer:
            avg[i] = float(int(a / W))
            der[i] = float(int(d / (W - 1))) if W > 1 else 0.0
        else:
            avg[i] = a / W
            der[i] = d / (W - 1) if W > 1 else 0.0
    nb = min(blocks, S)
    L = np.float32(S) / np.float32(nb)
    out_a, out_d = [], []
    for b in range(nb):
        lo = int(math.floor(L * np.float32(b)))
        hi = min(S, int(math.ceil(L * np.float32(b + 1))))  # DCDB reads past the end here; the engine clamps
        sa = sum(avg[perm[k]] for k in range(lo, hi))
        sd = sum(der[perm[k]] for k in range(lo, hi))
        if integer:
            out_a.append(float(int(sa / (hi - lo))))
            out_d.append(float(int(sd / (hi - lo))))
        else:
            out_a.append(sa / (hi - lo))
            out_d.append(sd / (hi - lo))
    return np.array(out_a + out_d)


def data(S, T, seed=0, integer=False):
    rng = np.random.default_rng(seed)
    lat = np.cumsum(rng.normal(size=(T, 3)), axis=0)
    X = lat @ rng.normal(size=(3, S)) + rng.normal(size=(T, S)) * 0.5
    X = X * rng.uniform(10, 1e3, size=(1, S)) + rng.uniform(0, 1e4, size=(1, S))
    if S >= 5:
        X[:, 2] = 4200.0  # a constant sensor
    return np.round(X) if integer else X


@pytest.mark.parametrize("S,B,W,step", [(5, 5, 6, 3), (9, 4, 10, 5), (21, 20, 8, 4), (48, 40, 5, 7), (3, 20, 1, 2)])
def test_dcdb_convention_matches_the_transcription(S, B, W, step):
    # (48, 40): DCDB's float32 block length 1.2 makes block 4 end at ⌈6.0000005⌉ = 7, not 6 (an extra row)
    X = data(S, 70, seed=S + W)
    perm, mn, mx = dcdb_train(X)
    m = A.fit(X, blocks=B, window=W, step=step, convention="dcdb")
    assert m.order.tolist() == perm and m.eps == 0.0
    ends = A.window_ends(len(X), W, step)
    want = np.array([dcdb_signature(X[e - W + 1:e + 1], perm, mn, mx, B, 1.0) for e in ends])
    got = A.signatures(m, X)
    # fp64 on both sides; the engine sums by prefix differences instead of per window: rounding of ~1e-15
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)
    st = A.Stream(m)
    rows = np.array([r for r in (st.push(x) for x in X) if r is not None])
    np.testing.assert_allclose(rows, want, rtol=0, atol=1e-11)


def test_dcdb_integer_readings_within_truncation():
    # DCDB's int64 arithmetic at its default scaling factor 1e6: each truncation moves a value by < 1 unit, and a
    # block mean carries at most three (value, window mean, block mean), so |ours - DCDB| < 3 units of 1e6.
    X = data(12, 90, seed=3, integer=True)
    perm, mn, mx = dcdb_train(X)
    m = A.fit(X, blocks=5, window=9, step=4, convention="dcdb", scale=1e6)
    want = np.array([dcdb_signature(X[e - 8:e + 1], perm, mn, mx, 5, 1e6, integer=True)
                     for e in A.window_ends(len(X), 9, 4)])
    diff = np.abs(A.signatures(m, X) - want)
    assert diff.max() < 3.0 and diff.max() > 0  # the truncation is real, and bounded


def test_the_two_conventions_differ_where_the_issue_says():
    X = data(30, 200, seed=11)
    s, d = A.fit(X, blocks=30, window=10, step=5), A.fit(X, blocks=30, window=10, step=5, convention="dcdb")
    assert s.convention == "scripts" and s.eps == 1e-4
    assert s.order.tolist() != d.order.tolist()  # the walks differ on this data
    d.order = s.order.copy()
    d.eps = s.eps
    gs, gd = A.signatures(s, X), A.signatures(d, X)
    np.testing.assert_allclose(gs[:, :30], gd[:, :30], rtol=0, atol=1e-12)  # same averages (B = S: exact blocks)
    # scripts: (N[e] − N[e−W])/W; dcdb: (N[e] − N[e−W+1])/(W − 1): recompute both from the normalised data
    N = np.clip((X - s.fmin) / (s.fmax - s.fmin + s.eps), 0, 1)[:, s.order]
    e = A.window_ends(len(X), 10, 5)
    np.testing.assert_allclose(gs[:, 30:], (N[e] - N[e - 10]) / 10, atol=1e-12)
    np.testing.assert_allclose(gd[:, 30:], (N[e] - N[e - 9]) / 9, atol=1e-12)


def test_model_file_keeps_the_convention_and_old_files_read_as_scripts(tmp_path):
    X = data(6, 80)
    m = A.fit(X, blocks=3, window=5, step=2, convention="dcdb")
    A.save(m, tmp_path / "m.json")
    back = A.load(tmp_path / "m.json")
    assert back.convention == "dcdb" and back.eps == 0.0
    np.testing.assert_array_equal(A.signatures(back, X), A.signatures(m, X))
    doc = json.loads((tmp_path / "m.json").read_text())
    del doc["convention"]
    assert A.from_dict(doc).convention == "scripts"
    doc["convention"] = "matlab"
    with pytest.raises(A.InputError, match="unknown convention"):
        A.from_dict(doc, "m.json")


# ------------------------------------------------------------------------------------------------------ the CLI
class R:
    def __init__(self, *args, input=None):
        self.exit_code, self.stdout, self.stderr = run_wise(*map(str, args), input=input)
        self.output = self.stderr


def invoke(args, input=None):
    return R(*args, input=input)


def _csv(path, X, names):
    rows = ["time," + ",".join(names)] + [f"{t}," + ",".join(repr(float(v)) for v in x) for t, x in enumerate(X)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_cli_fit_dcdb_run_follows_it_and_info_lists_both(tmp_path):
    X = data(6, 80)
    csv = _csv(tmp_path / "node.csv", X, [f"c{i}" for i in range(6)])
    r = invoke(["smooth", "fit", str(csv), "-o", str(tmp_path / "m.json"), "--window", "5", "--step",
                            "2", "--blocks", "3", "--convention", "dcdb"])
    assert r.exit_code == 0, r.output
    m = A.load(tmp_path / "m.json")
    assert m.convention == "dcdb" and m.eps == 0.0
    r = invoke(["smooth", "run", str(tmp_path / "m.json"), str(csv), "-o", str(tmp_path / "o"),
                            "--format", "npy"])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "o" / "node.sig.npy"), A.signatures(m, X), atol=1e-12)
    r = invoke(["smooth", "fit", str(csv), "-o", str(tmp_path / "x.json"), "--convention", "dcbd"])
    assert r.exit_code == 2 and not r.stdout
    r = invoke(["smooth", "info", "--json"])
    doc = json.loads(r.stdout)
    assert set(doc["conventions"]) == {"scripts", "dcdb"} and doc["defaults"]["fit"]["convention"] == "scripts"


def test_npy_model_on_a_csv_with_other_names_exit_2_then_by_position(tmp_path):
    X = data(5, 60)
    np.save(tmp_path / "a.npy", X)
    r = invoke(["smooth", "fit", str(tmp_path / "a.npy"), "-o", str(tmp_path / "m.json"), "--window",
                            "6", "--step", "3", "--blocks", "2"])
    assert r.exit_code == 0, r.output
    csv = _csv(tmp_path / "b.csv", X, [f"cpu{i}" for i in range(5)])
    r = invoke(["smooth", "run", str(tmp_path / "m.json"), str(csv), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and not r.stdout
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert errs == [f"Error: {csv}: model sensors missing: s0, s1, s2, s3, s4"]
    assert "--by-position" in r.stderr and "stack" not in r.stderr
    r = invoke(["smooth", "run", str(tmp_path / "m.json"), str(csv), "-o", str(tmp_path / "o"),
                            "--by-position", "--format", "npy"])
    assert r.exit_code == 0, r.output
    m = A.load(tmp_path / "m.json")
    np.testing.assert_allclose(np.load(tmp_path / "o" / "b.sig.npy"), A.signatures(m, X), atol=1e-12)
    # by position, the count must match: one column too many is exit 2 with the counts
    csv6 = _csv(tmp_path / "c.csv", np.c_[X, X[:, :1]], [f"cpu{i}" for i in range(6)])
    r = invoke(["smooth", "run", str(tmp_path / "m.json"), str(csv6), "-o", str(tmp_path / "o2"),
                            "--by-position"])
    assert r.exit_code == 2 and "6 sensors, the model has 5" in r.stderr
    # the stream: same rule
    r = invoke(["smooth", "run", str(tmp_path / "m.json"), "-"], input=csv.read_text())
    assert r.exit_code == 2 and "model sensors missing: s0" in r.stderr
    r = invoke(["smooth", "run", str(tmp_path / "m.json"), "-", "--by-position"], input=csv.read_text())
    assert r.exit_code == 0
    rows = np.array([[float(v) for v in ln.split(",")[2:]] for ln in r.stdout.splitlines()[1:]])
    np.testing.assert_allclose(rows, A.signatures(m, X), atol=1e-9)
