"""Model formats (§9 test 9): a classify checkpoint, its TorchScript export and its ONNX export give the same maps;
re-initialised weights change the maps (a sanity check of the explanation, Adebayo et al. 2018)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import conformance_module
from wisecli.engines.explain.demo import load_weights
from wisecli.engines.explain.model import load_model
from wisecli.engines.explain.predict import explain_images
from wisecli.engines.explain.synthetic import canvases

conf = conformance_module(__file__)
SETTINGS = dict(method="mcrise", masks=256, grid=7, keep_prob=0.5, colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                amp=False, seed=0, batch=256)


@pytest.fixture(autouse=True)
def _one_thread():
    from wisecli.runtime.device import one_cpu_thread

    with one_cpu_thread(torch.device("cpu")):
        yield


def _save_classify(path: Path, net, mean, std) -> Path:
    from wisecli.runtime.checkpoints import save_checkpoint

    mk = {"in_channels": 3, "num_classes": 10, "image_size": 32, "width": 1.0, "norm": "none", "bayes": "none",
          "components": 1, "dropout": 0.1, "members": 2}
    save_checkpoint(path, method="classify", arch="small-cnn", config={}, state_dict=net.state_dict(), model=mk,
                    classes=[str(i) for i in range(10)], normalize={"mean": mean, "std": std},
                    input={"kind": "image", "channels": 3, "image_size": 32, "layout": "nchw"}, train_counts=[1] * 10)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    net, mean, std = load_weights()
    ckpt = _save_classify(tmp / "best.pt", net, mean, std)
    x = torch.from_numpy(canvases(2, part="test", seed=5)["x"])
    return tmp, net, mean, std, ckpt, x


def test_checkpoint_torchscript_and_onnx_give_the_same_maps(trained):
    tmp, net, mean, std, ckpt, x = trained
    box = load_model(ckpt)
    ref = explain_images(box, x, **SETTINGS)["maps"]
    ts = tmp / "model.ts"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 32, 32)), str(ts))
    opts = dict(input_size=(32, 32), mean=mean, std=std)
    got = explain_images(load_model(ts, **opts), x, **SETTINGS)["maps"]
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    onnx_path = tmp / "model.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 32, 32), str(onnx_path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    got = explain_images(load_model(onnx_path, mean=mean, std=std), x, **SETTINGS)["maps"]
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)


def test_reinitialised_weights_change_the_maps(trained):
    from scipy.stats import spearmanr

    from wisecli.nn.zoo import build

    tmp, net, mean, std, ckpt, x = trained
    ref = explain_images(load_model(ckpt), x, **SETTINGS)
    torch.manual_seed(123)
    fresh = build("small-cnn", in_channels=3, num_classes=10, image_size=32, norm="none")
    rand = _save_classify(tmp / "random.pt", fresh, mean, std)
    for b in range(len(x)):
        cls = ("ids", [int(ref["targets"][b, 0])])
        other = explain_images(load_model(rand), x[b:b + 1], **dict(SETTINGS, target=cls))
        rho = spearmanr(ref["maps"][b].flatten(), other["maps"][0].flatten())[0]
        assert rho < 0.5, rho
    assert ref["maps"].shape == (2, 3, 1, 32, 32)


def test_onnx_without_onnxruntime_is_exit_2(tmp_path, monkeypatch):
    import builtins

    from wisecli.cli.errors import InputError

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    p = tmp_path / "m.onnx"
    p.write_bytes(b"not really")
    with pytest.raises(InputError) as e:
        load_model(p)
    assert 'pip install "wisecli[onnx]"' in e.value.hint


def test_run_explains_images_together_as_one_at_a_time(trained, tmp_path):
    """`run` puts several images in one forward batch (masks × images): five canvases go through one group, and
    each map equals the map of the image explained alone (`explain_images` on it). Tolerance 1e-5 in probability
    units: the two paths do the same float32 arithmetic except the forward's batch composition (BLAS/oneDNN may
    block a batch of 512 differently from 256), i.e. rounding of ~1e-7 per score, summed over 256 masks."""
    from wisecli.cli.output import Sink
    from wisecli.engines.explain import api
    from wisecli.engines.explain.predict import fit_to_model, read_image01
    from wisecli.runtime.io.images import write_image

    tmp, net, mean, std, ckpt, _ = trained
    x = canvases(5, part="test", seed=9)["x"]
    paths = []
    for i, img in enumerate(x):
        paths.append(tmp_path / f"c{i}.png")
        write_image(paths[-1], (img.transpose(1, 2, 0) * 255).round().astype(np.uint8))
    kw = dict(SETTINGS, batch=512)
    recs = api.run(paths, model=ckpt, out_dir=tmp_path / "o", method="mcrise", masks=kw["masks"], grid=kw["grid"],
                   keep_prob=kw["keep_prob"], colors="red,green,blue", target="top:2", batch=512, amp=False,
                   device="cpu", png=False, sink=Sink(quiet=True))
    assert [r["status"] for r in recs] == ["ok"] * 5
    run_doc = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run_doc["images_per_group"] == 8
    box = load_model(ckpt)
    for p in paths:
        doc = json.loads((tmp_path / "o" / f"{p.stem}.json").read_text())
        assert doc["group"] == 5
        alone = explain_images(box, fit_to_model(read_image01(p), box), **dict(kw, target=("top", 2)))
        got = np.load(tmp_path / "o" / f"{p.stem}.mcrise.npy")
        assert [c["id"] for c in doc["classes"]] == alone["targets"][0].tolist()
        np.testing.assert_allclose(got, alone["maps"][0].numpy(), atol=1e-5)
