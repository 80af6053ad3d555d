"""`wise reid evaluate --aic-submit`: the AI City 2020 Track 2 submission file, checked against plain numpy
oracles (argsort of the cosine distance, the dense numpy re-ranking reference) on a rendered AIC-layout tree."""

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import run_wise
from wisecli.cli.errors import InputError
from wisecli.engines.reid import data as D
from wisecli.engines.reid.peers import re_ranking as re_ranking_numpy
from wisecli.engines.reid.submit import rank_top, write_submission


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from wisecli.engines.reid.api import DEFAULTS
    from wisecli.engines.reid.train import model_config
    from wisecli.engines.reid.predict import build_model
    from wisecli.engines.reid.synthetic import write_aic
    from wisecli.runtime.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("reidaic")
    aic = root / "AIC20_ReID"
    counts = write_aic(aic, train_ids=6, test_ids=10, images_per_id=12, size=32, seed=4)
    # width 0.25: the submission paths under test do not depend on the backbone's width (issue 13.11: the
    # full-width model's setup took ~7 CPU-s)
    mc = model_config({**DEFAULTS["train"], "arch": "resnet18", "input_size": 32, "width": 0.25}, 6, True)
    torch.manual_seed(0)
    model = build_model(mc)
    with torch.no_grad():  # non-trivial gates, as after training
        for unit in model.vcam.values():
            unit.mlp[0].weight.normal_(0, 0.5)
    ckpt = save_checkpoint(root / "best.pt", method="reid", arch="resnet18", config={"model": mc},
                           state_dict=model.state_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    w = ["--weights", str(ckpt), "--device", "cpu"]
    for folder, out in (("image_query", "q.npz"), ("image_test", "g.npz")):
        ok("reid", "predict", str(aic / folder), *w, "-o", str(root / out))
    yield {"root": root, "aic": aic, "ckpt": ckpt, "counts": counts, "w": w}
    torch.set_num_threads(threads)


def ok(*args):
    code, out, err = run_wise(*args)
    assert code == 0, err
    return out


def bad(*args, match=None):
    code, out, err = run_wise(*args)
    assert code == 2, (code, out, err)
    assert out == "" and "Error:" in err and "Traceback" not in err
    if match:
        assert match in err, err
    return err


def _read(path):
    return [[int(x) for x in line.split(" ")] for line in path.read_text().splitlines()]


def _numbers(paths):
    return np.array([int(str(p).rsplit("/", 1)[-1].split(".")[0]) for p in paths])


def _check_against(lines, dist, numbers, q_order=None):
    """Every line: 100 distinct valid gallery numbers whose distances are the 100 smallest, ascending (the order
    a plain stable numpy argsort gives, up to float ties)."""
    pos = {int(n): i for i, n in enumerate(numbers)}
    rows = np.arange(len(dist)) if q_order is None else q_order
    assert len(lines) == len(rows)
    for line, qi in zip(lines, rows):
        assert len(line) == 100 and len(set(line)) == 100 and all(n in pos for n in line)
        d = dist[qi, [pos[n] for n in line]]
        oracle = np.sort(dist[qi], kind="stable")[:100]
        np.testing.assert_allclose(d, oracle, atol=1e-6)
        exact = numbers[np.argsort(dist[qi], kind="stable")[:100]]
        gaps = np.diff(oracle) > 1e-5  # where no near-tie can swap two items, the IDs are the oracle's exactly
        agree = np.array(line) == exact
        assert agree[:-1][gaps & np.r_[True, gaps[:-1]]].all()


def _cosine(qf, gf):
    q = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    g = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    return 1.0 - q.astype(np.float64) @ g.astype(np.float64).T


# ------------------------------------------------------------------------------------------------- engine
def test_rank_top_equals_numpy_argsort_with_ties_by_index():
    rng = np.random.default_rng(0)
    qf = rng.normal(size=(7, 16)).astype(np.float32)
    gf = rng.normal(size=(130, 16)).astype(np.float32)
    gf[40] = gf[3]  # an exact tie: the lower gallery index comes first
    top = rank_top(torch.from_numpy(qf), torch.from_numpy(gf), 100, torch.device("cpu"))
    dist = _cosine(qf, gf)
    assert top.shape == (7, 100) and top.dtype == torch.int64
    for q in range(7):
        np.testing.assert_allclose(dist[q, top[q].numpy()], np.sort(dist[q])[:100], atol=1e-6)
        r = top[q].tolist()
        if 3 in r and 40 in r:
            assert r.index(3) + 1 == r.index(40)
    d = torch.from_numpy(rng.random((5, 120)).astype(np.float32))
    assert torch.equal(rank_top(None, None, 100, torch.device("cpu"), dist=d),
                       torch.from_numpy(np.argsort(d.numpy(), axis=1, kind="stable")[:, :100]))
    with pytest.raises(InputError, match="lists 100 per query"):
        rank_top(torch.from_numpy(qf), torch.from_numpy(gf[:99]), 100, torch.device("cpu"))


def test_write_submission_format(tmp_path):
    numbers = np.arange(101, 101 + 120)
    order = torch.stack([torch.randperm(120)[:100] for _ in range(3)])
    info = write_submission(tmp_path / "t.txt", order, numbers)
    text = (tmp_path / "t.txt").read_text()
    assert text.endswith("\n") and "  " not in text and info == {"file": str(tmp_path / "t.txt"), "queries": 3,
                                                                  "gallery": 120, "top": 100}
    assert _read(tmp_path / "t.txt") == (numbers[order.numpy()]).tolist()


def test_aic_test_loader_and_bad_names(env, tmp_path):
    t = D.load_aic_test(env["aic"])
    assert len(t["query"][0]) == env["counts"]["query"] == 20 and len(t["gallery"][0]) == 120
    assert t["gallery"][1].tolist() == list(range(1, 121)) and t["query"][0][0].name == "000001.jpg"
    with pytest.raises(InputError, match="not AIC image numbers"):
        D.aic_image_ids(["000001.jpg", "car_1.jpg"], "name_test.txt")
    with pytest.raises(InputError, match="more than once"):
        D.aic_image_ids(["1.jpg", "0001.jpg"], "name_test.txt")
    with pytest.raises(InputError, match="not AIC image numbers"):
        D.aic_image_ids(["\u0661\u0662.jpg"], "name_test.txt")  # Arabic-Indic digits are not image numbers


# ---------------------------------------------------------------------------------------------------- CLI
def test_submission_from_aic_folder_is_the_distance_order(env):
    root, aic = env["root"], env["aic"]
    out = root / "track2.txt"
    doc = json.loads(ok("reid", "evaluate", str(aic), *env["w"], "--layout", "aic", "--aic-submit", str(out),
                        "--json"))
    assert doc["aic_submit"] == {"file": str(out), "queries": 20, "gallery": 120, "top": 100,
                                 "query_order": "name_query.txt"}
    assert 0 <= doc["mAP"] <= 1 and doc["num_queries"] > 0  # the held-out id split, as without --aic-submit
    q, g = np.load(root / "q.npz"), np.load(root / "g.npz")
    assert [str(p).rsplit("/", 1)[-1] for p in q["paths"]] == (aic / "name_query.txt").read_text().split()
    _check_against(_read(out), _cosine(q["features"], g["features"]), _numbers(g["paths"]))
    bad("reid", "evaluate", str(aic), *env["w"], "--layout", "aic", "--aic-submit", str(out), match="--overwrite")
    out.write_text("stale\n")
    ok("reid", "evaluate", str(aic), *env["w"], "--layout", "aic", "--aic-submit", str(out), "--overwrite")
    assert len(_read(out)) == 20


def test_rerank_submission_equals_the_numpy_reference(env):
    root, aic = env["root"], env["aic"]
    out = root / "track2_rr.txt"
    ok("reid", "evaluate", str(aic), *env["w"], "--layout", "aic", "--aic-submit", str(out), "--rerank", "--k1", "6",
       "--k2", "3", "--lambda", "0.2")
    q, g = np.load(root / "q.npz"), np.load(root / "g.npz")
    qn = q["features"] / np.linalg.norm(q["features"], axis=1, keepdims=True)
    gn = g["features"] / np.linalg.norm(g["features"], axis=1, keepdims=True)
    dist = re_ranking_numpy(qn, gn, k1=6, k2=3, lambda_value=0.2).astype(np.float64)
    lines = _read(out)
    _check_against(lines, dist, _numbers(g["paths"]))
    plain = _numbers(g["paths"])[np.argsort(_cosine(q["features"], g["features"]), axis=1, kind="stable")[:, :100]]
    assert plain.tolist() != lines  # re-ranking changed the order


def test_submission_from_feature_parts_without_ground_truth(env, tmp_path):
    """Shards in round-robin order: the lines still follow the query numbers; no ids -> metrics skipped."""
    aic = env["aic"]
    for folder, name in (("image_query", "qs.npz"), ("image_test", "gs.npz")):
        for i in (0, 1):
            ok("reid", "predict", str(aic / folder), *env["w"], "-o", str(tmp_path / name), "--shard", f"{i}/2")
    parts = lambda n: [str(tmp_path / f"{n}.part-{i}-of-2.npz") for i in (0, 1)]  # noqa: E731
    out = tmp_path / "t2.txt"
    args = ["reid", "evaluate", "--query", parts("qs")[0], "--query", parts("qs")[1], "--gallery", parts("gs")[0],
            "--gallery", parts("gs")[1], "--device", "cpu", "--aic-submit", str(out)]
    doc = json.loads(ok(*args, "--json"))
    assert "mAP" not in doc and "metrics_skipped" in doc and doc["aic_submit"]["query_order"] == "ascending image number"
    qz = [np.load(p) for p in parts("qs")]
    gz = [np.load(p) for p in parts("gs")]
    qf, qp = np.concatenate([z["features"] for z in qz]), np.concatenate([z["paths"] for z in qz])
    gf, gp = np.concatenate([z["features"] for z in gz]), np.concatenate([z["paths"] for z in gz])
    qnum = _numbers(qp)
    assert not (np.diff(qnum) > 0).all()  # the parts interleave, so sorting matters
    _check_against(_read(out), _cosine(qf, gf), _numbers(gp), q_order=np.argsort(qnum))
    bad(*args, "--per-query", str(tmp_path / "pq.jsonl"), "--overwrite", match="--per-query")


def test_folder_without_train_labels_writes_the_submission_only(env, tmp_path):
    aic = tmp_path / "aic"
    shutil.copytree(env["aic"], aic, ignore=shutil.ignore_patterns("image_train", "train_label.xml"))
    out = tmp_path / "t2.txt"
    doc = json.loads(ok("reid", "evaluate", str(aic), *env["w"], "--layout", "aic", "--aic-submit", str(out), "--json"))
    assert "metrics_skipped" in doc and doc["aic_submit"]["queries"] == 20
    q, g = np.load(env["root"] / "q.npz"), np.load(env["root"] / "g.npz")
    _check_against(_read(out), _cosine(q["features"], g["features"]), _numbers(g["paths"]))
    bad("reid", "evaluate", str(aic), *env["w"], "--layout", "aic", match="--val-ids")


def test_bad_submission_inputs(env, tmp_path):
    w = [*env["w"], "--layout", "aic"]
    out = tmp_path / "t2.txt"

    def tree(name, *, drop=(), edit=None):
        d = tmp_path / name
        shutil.copytree(env["aic"], d, ignore=shutil.ignore_patterns("image_train", "train_label.xml"))
        for x in drop:
            p = d / x
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if edit:
            edit(d)
        return str(d)

    bad("reid", "evaluate", tree("a", drop=["name_query.txt"]), *w, "--aic-submit", str(out), match="name_query.txt")
    bad("reid", "evaluate", tree("b", drop=["image_test"]), *w, "--aic-submit", str(out), match="image_test")

    def rename(d):
        (d / "image_test" / "000007.jpg").rename(d / "image_test" / "car7.jpg")
        (d / "name_test.txt").write_text((d / "name_test.txt").read_text().replace("000007.jpg", "car7.jpg"))

    bad("reid", "evaluate", tree("c", edit=rename), *w, "--aic-submit", str(out), match="not AIC image numbers")

    def shrink(d):
        keep = (d / "name_test.txt").read_text().split()[:60]
        for f in (d / "image_test").iterdir():
            if f.name not in keep:
                f.unlink()
        (d / "name_test.txt").write_text("\n".join(keep) + "\n")

    bad("reid", "evaluate", tree("d", edit=shrink), *w, "--aic-submit", str(out), match="has 60 images")
    bad("reid", "evaluate", str(env["aic"]), *env["w"], "--aic-submit", str(out), match="--layout aic")
    bad("reid", "evaluate", str(env["aic"]), *w, "--aic-submit", str(tmp_path / "no" / "t2.txt"), match="does not exist")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "q.npz", features=rng.normal(size=(3, 8)).astype(np.float32), ids=-np.ones(3, int),
             cameras=-np.ones(3, int), normalised=np.array(True))
    np.savez(tmp_path / "g.npz", features=rng.normal(size=(120, 8)).astype(np.float32), ids=-np.ones(120, int),
             cameras=-np.ones(120, int), normalised=np.array(True),
             paths=np.array([f"{i:06d}.jpg" for i in range(1, 121)]))
    bad("reid", "evaluate", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--device", "cpu",
        "--aic-submit", str(out), match="query features' paths")
    assert not out.exists()


def test_features_with_ground_truth_report_metrics_and_rerank_in_query_number_order(tmp_path):
    """Features files that carry ids: the metrics are computed as without --aic-submit, and the re-ranked
    submission (sharing the metrics' distance) lists the queries by ascending number."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 16))
    g_ids, q_ids = np.repeat(np.arange(12), 10), np.arange(12)
    gf = (centres[g_ids] + 0.8 * rng.normal(size=(120, 16))).astype(np.float32)
    qf = (centres[q_ids] + 0.8 * rng.normal(size=(12, 16))).astype(np.float32)
    q_num = rng.permutation(np.arange(500, 512))  # the query files are not in number order
    g_num = rng.permutation(np.arange(1, 121)) * 3
    np.savez(tmp_path / "q.npz", features=qf, ids=q_ids, cameras=np.zeros(12, int), normalised=np.array(False),
             paths=np.array([f"image_query/{n:06d}.jpg" for n in q_num]))
    np.savez(tmp_path / "g.npz", features=gf, ids=g_ids, cameras=np.ones(120, int), normalised=np.array(False),
             paths=np.array([f"image_test/{n:06d}.jpg" for n in g_num]))
    out = tmp_path / "t2.txt"
    base = ["reid", "evaluate", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--device",
            "cpu", "--rerank", "--k1", "8", "--k2", "3", "--json"]
    doc = json.loads(ok(*base, "--aic-submit", str(out)))
    plain = json.loads(ok(*base))
    assert doc["mAP"] == pytest.approx(plain["mAP"], abs=1e-9) and doc["num_valid_queries"] == 12
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    dist = re_ranking_numpy(qn, gn, k1=8, k2=3, lambda_value=0.3).astype(np.float64)
    _check_against(_read(out), dist, g_num, q_order=np.argsort(q_num))
