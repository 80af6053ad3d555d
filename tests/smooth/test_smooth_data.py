"""Inputs, outputs, model files, baselines, evaluation protocols and the quirks Q1, Q3, Q5-Q9."""

import json
import math

import numpy as np
import pytest

from wisecli.cli.errors import InputError
from wisecli.engines.smooth import algorithm as A
from wisecli.engines.smooth import peers as BL
from wisecli.engines.smooth import data as D
from wisecli.engines.smooth import metrics as E
from wisecli.engines.smooth import algorithm as MIO
from wisecli.engines.smooth.train import fit as api_fit

# one torch and one BLAS thread for the whole module (conftest's fixture; issue 13.11): nothing asserted depends on it
pytestmark = pytest.mark.usefixtures("one_thread_module")


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def walk(T, S, seed=0):
    return np.cumsum(np.random.default_rng(seed).normal(size=(T, S)), axis=0)


# ------------------------------------------------------------------------------------------------ inputs
def test_wide_csv_time_detection_units_and_selection(tmp_path):
    X = walk(20, 3)
    rows = [[i, 1_600_000_000_000 + 1000 * i, *X[i], "a"] for i in range(20)]
    p = write_csv(tmp_path / "x.csv", ["idx", "timestamp", "cpu", "mem", "io", "label"], rows)
    (s,) = D.read_input(p, D.ReadOptions(label_col="label", exclude=["idx"]))
    assert s.sensors == ["cpu", "mem", "io"]
    np.testing.assert_allclose(s.time, 1_600_000_000 + np.arange(20.0))  # ms → s by magnitude
    np.testing.assert_allclose(s.values, X)
    assert list(s.labels) == ["a"] * 20
    (s2,) = D.read_input(p, D.ReadOptions(label_col="label", sensors=["c*", "io"], exclude=["idx"]))
    assert s2.sensors == ["cpu", "io"]


def test_iso_times_tsv_and_ffill(tmp_path):
    lines = ["time\ta\tb"] + [f"2021-01-01T00:00:{i:02d}Z\t{i}\t{'' if 2 <= i <= 6 else i * 2}" for i in range(10)]
    p = tmp_path / "x.tsv"
    p.write_text("\n".join(lines) + "\n")
    (s,) = D.read_input(p, D.ReadOptions())
    assert s.time[1] - s.time[0] == 1.0 and s.time[0] == 1609459200.0
    b = s.values[:, 1]
    assert list(b[:5]) == [0, 2, 2, 2, 2]  # three samples filled from the last value
    assert math.isnan(b[5]) and math.isnan(b[6]) and b[7] == 14


def test_time_errors_and_repairs(tmp_path):
    p = write_csv(tmp_path / "u.csv", ["time", "a"], [[0, 1], [2, 2], [1, 3], [3, 4]])
    with pytest.raises(InputError, match="backwards") as e:
        D.read_input(p, D.ReadOptions())
    assert "--sort-time" in e.value.hint
    (s,) = D.read_input(p, D.ReadOptions(sort_time=True))
    assert list(s.values[:, 0]) == [1, 3, 2, 4]
    p2 = write_csv(tmp_path / "d.csv", ["time", "a"], [[0, 1], [1, 2], [1, 3], [2, 4]])
    with pytest.raises(InputError, match="duplicate") as e:
        D.read_input(p2, D.ReadOptions())
    assert "--dedupe last" in e.value.hint
    (s,) = D.read_input(p2, D.ReadOptions(dedupe="last"))
    assert list(s.values[:, 0]) == [1, 3, 4]
    p3 = write_csv(tmp_path / "n.csv", ["time", "a", "b"], [[0, 1, 2], [1, 2, "x7"]])
    with pytest.raises(InputError, match=r"'x7' at row 3, column 'b'"):
        D.read_input(p3, D.ReadOptions())


def test_gaps_split_and_all_nan_dropped(tmp_path):
    t = [0, 1, 2, 3, 10, 11, 12]
    p = write_csv(tmp_path / "g.csv", ["time", "a", "dead"], [[ti, ti, ""] for ti in t])
    warns = []
    segs = D.read_input(p, D.ReadOptions(), warns.append)
    assert [sg.T for sg in segs] == [4, 3] and segs[1].start == 4
    assert segs[0].sensors == ["a"] and segs[0].dropped == ["dead"] and any("all-NaN" in w for w in warns)
    doc = api_fit([p], tmp_path / "m.json", opts=D.ReadOptions(gaps="ignore"), window=2, step=1)
    assert doc["all_nan_sensors"] == ["dead"] and MIO.load(tmp_path / "m.json").fit_info["all_nan_sensors"] == ["dead"]
    assert len(D.read_input(p, D.ReadOptions(gaps="ignore"))) == 1
    with pytest.raises(InputError, match="gap"):
        D.read_input(p, D.ReadOptions(gaps="fail"))


def test_npy_2d_and_3d(tmp_path):
    a = walk(30, 4)
    np.save(tmp_path / "a.npy", a)
    (s,) = D.read_input(tmp_path / "a.npy", D.ReadOptions())
    np.testing.assert_array_equal(s.values, a)
    b = np.stack([walk(30, 4, 1), walk(30, 4, 2)])
    np.save(tmp_path / "b.npy", b)
    ss = D.read_input(tmp_path / "b.npy", D.ReadOptions())
    assert len(ss) == 2 and ss[1].name == "b[1]"
    np.testing.assert_array_equal(ss[1].values, b[1])
    np.save(tmp_path / "c.npy", np.zeros(5))
    with pytest.raises(InputError, match="2-D"):
        D.read_input(tmp_path / "c.npy", D.ReadOptions())


def hpcoda(root, skip_b=None, nodes=None):
    for node in nodes or [None]:
        sd = root / "sensors" / (node or "")
        rd = root / "responses" / (node or "")
        sd.mkdir(parents=True, exist_ok=True)
        rd.mkdir(parents=True, exist_ok=True)
        off = 0 if node in (None, "n1") else 100
        write_csv(sd / "a.csv", ["timestamp", "value"], [[t, t + off] for t in range(10)])
        write_csv(sd / "b.csv", ["timestamp", "value"], [[t, 10 * t + off] for t in range(10) if t != skip_b])
        write_csv(rd / "responses.csv", ["timestamp", "label"], [[t, "x" if t < 5 else "y"] for t in range(10)])
    return root


def test_q5_hpcoda_alignment_by_time_vs_position(tmp_path):
    root = hpcoda(tmp_path / "seg", skip_b=3)
    assert len(D.read_input(root, D.ReadOptions())) == 2  # the missing t=3 is a gap: split
    (s,) = D.read_input(root, D.ReadOptions(gaps="ignore"))
    assert s.T == 9 and list(s.time) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(s.values[:, 1], 10 * s.values[:, 0])  # joined on timestamps
    assert list(s.labels) == ["x"] * 4 + ["y"] * 5
    (r,) = D.read_input(root, D.ReadOptions(quirks=A.Quirks.parse("Q5")))
    assert r.T == 9 and r.values[3, 0] == 3 and r.values[3, 1] == 40  # row 3 pairs a(t=3) with b(t=4)
    # with a tolerance, the missing reading is the last one within it
    (tl,) = D.read_input(root, D.ReadOptions(align_tolerance=1.0))
    assert tl.T == 10 and tl.values[3, 1] == 20


def test_q6_fit_on_first_node_vs_all(tmp_path):
    root = hpcoda(tmp_path / "seg", nodes=["n1", "n2"])
    doc = api_fit([root], tmp_path / "m.json", opts=D.ReadOptions(), window=3, step=1)
    m = MIO.load(tmp_path / "m.json")
    assert doc["rows"] == 20 and m.fmax[0] == 109
    api_fit([root], tmp_path / "q.json", opts=D.ReadOptions(), window=3, step=1, quirks="Q6")
    q = MIO.load(tmp_path / "q.json")
    assert q.fit_info["rows"] == 10 and q.fmax[0] == 9


# ------------------------------------------------------------------------------------------ model files
def test_json_round_trip_exact(tmp_path):
    X = walk(200, 9) * 1e-3 + np.pi
    m = A.fit(X, [f"s{i}" for i in range(9)], blocks=4, window=10, step=3, quirks="Q2")
    MIO.save(m, tmp_path / "m.json")
    r = MIO.load(tmp_path / "m.json")
    assert np.array_equal(r.fmin, m.fmin) and np.array_equal(r.fmax, m.fmax) and list(r.order) == list(m.order)
    assert r.quirks == m.quirks and (r.blocks, r.window, r.step) == (4, 10, 3)
    assert np.array_equal(A.signatures(r, X), A.signatures(m, X))
    assert json.loads((tmp_path / "m.json").read_text())["format"] == "wise-smooth/1"


def test_dcdb_round_trip_integer_data():
    X = np.round(walk(300, 6, 3) * 10)
    m = A.fit(X, blocks=3, window=12, step=4)
    d = MIO.to_dcdb(m)
    (S, entries), = d.items()
    assert S == "6" and all(isinstance(v, str) for e in entries.values() for v in e.values())
    assert [int(entries[str(k)]["idx"]) for k in range(6)] == list(m.order)
    r = MIO.from_dcdb(json.loads(json.dumps(d)), blocks=3, window=12, step=4)
    np.testing.assert_array_equal(A.signatures(r, X), A.signatures(m, X))


def test_q3_dcdb_int_cast_vs_floor_ceil():
    X = np.random.default_rng(0).uniform(0.1, 0.9, size=(100, 3))
    warns = []
    fixed = MIO.to_dcdb(A.fit(X), warns.append)["3"]
    ref = MIO.to_dcdb(A.fit(X, quirks="Q3"))["3"]
    assert all(e["min"] == "0" and e["max"] == "1" for e in fixed.values())
    assert all(e["min"] == "0" and e["max"] == "0" for e in ref.values())  # [0, 1] sensors collapse
    assert warns and "widened" in warns[0]


def test_unknown_model_format(tmp_path):
    (tmp_path / "x.json").write_text('{"format": "other/2"}')
    with pytest.raises(InputError, match="unknown model format"):
        MIO.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(InputError, match="unknown model format"):
        MIO.load(tmp_path / "y.json")


# ------------------------------------------------------------------------------------------- baselines
def test_baselines_against_plain_per_window_loops():
    X = walk(80, 3, 5)
    W = 12
    ends = np.arange(W, 80, 7)
    tun, bod, st = (BL.features(n, X, ends, W) for n in ("tuncer", "bodik", "stats"))
    lan = BL.features("lan", X, ends, W)
    for k, e in enumerate(ends):
        w = X[e - W + 1:e + 1]
        for s in range(3):
            col = w[:, s]
            want = [col.mean(), col.std(), col[-1] - col[0], np.abs(np.diff(col)).sum(),
                    *[np.percentile(col, q) for q in (0, 5, 25, 50, 75, 95, 100)]]
            np.testing.assert_allclose(tun[k, s::3], want, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(bod[k, s::3], [np.percentile(col, q) for q in (0, 5, 25, 35, 50, 65, 75, 95, 100)])
            np.testing.assert_allclose(st[k, s::3], [col.mean(), col.std(), col.min(), col.max()])
            segs = [col[math.floor(i * W / 10):max(math.floor((i + 1) * W / 10), math.floor(i * W / 10) + 1)]
                    for i in range(10)]
            np.testing.assert_allclose(lan[k, s::3], [g.mean() for g in segs])
    assert tun.shape[1] == 33 and bod.shape[1] == 27 and lan.shape[1] == 30 and st.shape[1] == 12


def test_q9_lan_window_not_divisible_by_ten():
    X = walk(50, 2)
    ends = np.arange(15, 50, 5)
    assert BL.features("lan", X, ends, 15).shape == (len(ends), 20)
    with pytest.raises(InputError, match="divisible by 10"):
        BL.features("lan", X, ends, 15, A.Quirks.parse("Q9"))
    assert BL.features("lan", X, ends, 10, A.Quirks.parse("Q9")).shape == (len(ends), 20)


# ----------------------------------------------------------------------------------------- evaluation
def labelled(T=400, S=4, seed=0, name="s"):
    X = np.random.default_rng(seed).normal(size=(T, S))
    lab = np.where((np.arange(T) // 50) % 2 == 0, "a", "b")
    X[lab == "b", 0] += 5
    return D.Series(name=name, values=X, sensors=[f"c{i}" for i in range(S)], labels=lab, group=name)


def test_blocked_folds_drop_neighbours_and_never_overlap():
    wins = E.make_windows([labelled()], 20, 5, "classify", A.FIXED)
    folds = E.make_folds("blocked", wins, 5, 1, 0, 20, 5, A.FIXED)
    ends = wins[0].ends
    assert len(folds) == 5
    for _, _, tr, te in folds:
        assert not set(tr) & set(te)
        # no training window shares a sample with a test window
        te_lo, te_hi = ends[te].min() - 20, ends[te].max()
        assert all(ends[i] < te_lo or ends[i] - 20 > te_hi for i in tr)


def test_q1_model_fitted_on_training_samples_only(monkeypatch):
    s = labelled()
    s.values[390, 1] = 1e6  # an extreme value inside the last test fold
    seen = []
    real = E.fit

    def spy(series, *a, **k):
        m = real(series, *a, **k)
        seen.append(m.fmax[1])
        return m

    monkeypatch.setattr(E, "fit", spy)
    E.evaluate([s], methods="cs:2", window=20, step=5, folds=5, repeats=1)
    fold_fmax = seen[1:6]  # seen[0] is the size reference fit on all data
    # the spike is in the last test fold: that fold's model never sees it, the four others train on it
    assert [v == 1e6 for v in fold_fmax] == [True, True, True, True, False]
    seen.clear()
    E.evaluate([s], methods="cs:2", window=20, step=5, folds=5, repeats=1, quirks="Q1")
    assert all(v == 1e6 for v in seen)


def test_q7_windows_straddle_joins_only_in_reference():
    a, b = labelled(100, name="a"), labelled(100, seed=1, name="b")
    fixed = E.make_windows([a, b], 20, 5, "classify", A.FIXED)
    ref = E.make_windows([a, b], 20, 5, "classify", A.Quirks.parse("Q7"))
    assert [len(w.ends) for w in fixed] == [16, 16]
    assert len(ref) == 1 and len(ref[0].ends) == 36  # 4 windows straddle the join


def test_q8_shuffled_folds():
    wins = E.make_windows([labelled()], 20, 5, "classify", A.FIXED)
    f1 = E.make_folds("shuffled", wins, 5, 2, 7, 20, 5, A.FIXED)
    f2 = E.make_folds("shuffled", wins, 5, 2, 7, 20, 5, A.FIXED)
    assert all(np.array_equal(x[3], y[3]) for x, y in zip(f1, f2))  # seeded: reproducible
    assert not np.array_equal(f1[0][3], f1[5][3])  # repeats use distinct splits
    q = E.make_folds("shuffled", wins, 5, 2, 7, 20, 5, A.Quirks.parse("Q8"))
    assert all(np.array_equal(q[f][3], q[5 + f][3]) for f in range(5))  # identical folds in every repeat
    assert sorted(np.concatenate([x[3] for x in q[:5]]).tolist()) == list(range(len(wins[0].ends)))


def test_evaluate_records_and_group_by_repetition():
    s = labelled(600)
    recs = E.evaluate([s], methods="cs:2,stats", window=10, step=5, cv="group", folds=3, repeats=1)
    assert [r["method"] for r in recs] == ["cs:2", "stats"]
    r = recs[0]
    assert r["signature_len"] == 4 and recs[1]["signature_len"] == 16 and r["cv"] == "group"
    assert 0.9 <= r["f1_weighted"] <= 1.0 and set(r["f1_per_class"]) == {"a", "b"}  # +5 shift is easy
    assert r["us_per_signature"] > 0 and "run_accuracy" in r
    rep = E.repetitions(np.array(list("aabbaab")))
    assert list(rep) == [0, 0, 0, 0, 1, 1, 1]


def test_mixed_windows_drop():
    s = labelled(200)
    keep = E.make_windows([s], 10, 1, "classify", A.FIXED)[0]
    drop = E.make_windows([s], 10, 1, "classify", A.FIXED, mixed="drop")[0]
    lab = s.labels
    assert all(len(set(lab[e - 10:e + 1])) == 1 for e in drop.ends)
    assert len(keep.ends) - len(drop.ends) == 3 * 10  # 3 label changes, W windows span each


def test_info_loss_is_a_divergence():
    s = labelled(300)
    m = A.fit(s.values, blocks=2, window=10, step=2)
    v = E.info_loss(m, [s], 10, 2, 2)
    m4 = A.fit(s.values, blocks=4, window=10, step=2)
    assert 0.0 < v <= 1.0 and 0.0 < E.info_loss(m4, [s], 10, 2, 4) <= 1.0
