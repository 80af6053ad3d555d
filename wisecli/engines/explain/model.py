"""The black box: a `classify` checkpoint, a TorchScript file, an ONNX file (extra `wisecli[onnx]`) or an
`nn.Module` (the Python API), with its preprocessing, as one object that maps [0, 1] RGB pixels to the model's
input space and input-space batches to outputs (spec §3 "Models").

Choices where the spec is silent:
- the kind is told by the file: `.onnx` -> ONNX; a zip holding TorchScript code -> TorchScript; anything else is
  read as a classify checkpoint (a run folder too) through `load_checkpoint(path, method="classify")`.
- TorchScript/ONNX preprocessing: input = (x·R − mean)/std per channel with R = 1 (`--range 0-1`) or 255 (`0-255`);
  `--mean`/`--std` are in the units of the range; their defaults are ImageNet's (0.485, 0.456, 0.406) /
  (0.229, 0.224, 0.225), times 255 under `0-255`. `--bgr` reverses the channel order after scaling. A
  classify checkpoint's own normalisation, size, channels and class names are used as they are.
- An ONNX model's input size and channels are read from its static input shape when it has them, else
  `--input-size` is needed. A TorchScript model has the channels of `--mean` (3 without it).
- The model is probed once at load with two images: an output that is not [B, C] is refused (exit 2).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wisecli.cli.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ONNX_HINT = 'pip install "wisecli[onnx]"'


class BlackBox:
    """A classifier behind `forward(x_input_space) -> (n, classes)` with its preprocessing."""

    def __init__(self, fn, *, kind: str, channels: int, size: tuple[int, int], classes: list[str], mean, std,
                 scale: float = 1.0, bgr: bool = False, device="cpu", module: torch.nn.Module | None = None,
                 source: str | None = None):
        self.fn, self.kind, self.channels, self.size = fn, kind, int(channels), (int(size[0]), int(size[1]))
        self.classes, self.scale, self.bgr = list(classes), float(scale), bool(bgr)
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.module, self.source = module, source
        if self.mean.numel() != self.channels or self.std.numel() != self.channels:
            raise InputError(f"--mean/--std need {self.channels} values for a {self.channels}-channel model",
                             hint="give one value per channel, comma separated")
        if (self.std == 0).any():
            raise InputError("--std values must be nonzero", hint="e.g. --std 0.229,0.224,0.225")

    def to_input(self, x01: Tensor) -> Tensor:
        """[0, 1] pixels (n, C, H, W) in RGB order -> the model's input space."""
        x = x01.to(self.device, torch.float32) * self.scale
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def color_input(self, rgb255) -> Tensor:
        """Colours (K, 3) in 0-255 RGB -> (K, C) in input space."""
        c = torch.as_tensor(np.asarray(rgb255, dtype=np.float32) / 255.0, device=self.device)
        return self.to_input(c[:, :, None, None])[:, :, 0, 0]

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def describe(self) -> dict:
        return {"kind": self.kind, "source": self.source, "channels": self.channels, "input_size": list(self.size),
                "classes": len(self.classes), "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist(),
                "range": "0-255" if self.scale == 255 else "0-1", "bgr": self.bgr}


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _class_names(path, n: int) -> list[str]:
    if path is None:
        return [str(i) for i in range(n)]
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --class-names {path}: {exc.__class__.__name__}", hint="one name a line") from None
    names = json.loads(text) if path.suffix == ".json" else [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not isinstance(names, list) or len(names) != n:
        raise InputError(f"--class-names {path} has {len(names) if isinstance(names, list) else '?'} names, the model "
                         f"has {n} outputs", hint="one name a line, as many as the model's classes")
    return [str(x) for x in names]


def _prep(channels: int, mean, std, value_range: str):
    scale = 255.0 if value_range == "0-255" else 1.0
    if mean is None:
        mean = IMAGENET_MEAN if channels == 3 else (0.5,) * channels
        mean = [m * scale for m in mean]
    if std is None:
        std = IMAGENET_STD if channels == 3 else (0.25,) * channels
        std = [s * scale for s in std]
    return list(mean), list(std), scale


def _probe(box: BlackBox, path) -> int:
    x = torch.zeros(2, box.channels, *box.size, device=box.device)
    try:
        with torch.inference_mode():
            out = box(x)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign model on a valid input
        raise InputError(f"{path}: the model fails on a (2, {box.channels}, {box.size[0]}, {box.size[1]}) batch "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})",
                         hint="check --input-size and the model's channels") from None
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InputError(f"{path}: the model returns {shape}, not [B, C] class scores",
                         hint="export a classifier whose output is (batch, classes)")
    return int(out.shape[1])


def from_module(module: torch.nn.Module, *, channels: int, size, classes=None, mean=None, std=None,
                value_range: str = "0-1", bgr: bool = False, device="cpu") -> BlackBox:
    """A BlackBox around an in-memory `nn.Module` (the API; the demo)."""
    module = module.eval().to(device)
    mean, std, scale = _prep(channels, mean, std, value_range)
    box = BlackBox(module, kind="module", channels=channels, size=size, classes=classes or [], mean=mean, std=std,
                   scale=scale, bgr=bgr, device=device, module=module, source="nn.Module")
    n = _probe(box, "module")
    if not box.classes:
        box.classes = [str(i) for i in range(n)]
    return box


def load_model(path, *, device="cpu", input_size=None, mean=None, std=None, value_range: str = "0-1",
               bgr: bool = False, class_names=None, channels: int | None = None) -> BlackBox:
    """The BlackBox of a model file (see the module docstring); problems are InputError (exit 2)."""
    if path is None:
        raise InputError("--model is required", hint="give a classify checkpoint, a TorchScript (.pt) or an ONNX file")
    path = Path(path)
    if not path.exists():
        raise InputError(f"model not found: {path}", hint="give a classify checkpoint, a TorchScript or an ONNX file")
    device = torch.device(device)
    if path.is_file() and path.suffix.lower() == ".onnx":
        return _load_onnx(path, device, input_size, mean, std, value_range, bgr, class_names)
    if path.is_file() and _is_torchscript(path):
        try:
            module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot load TorchScript {path}: {str(exc).splitlines()[0][:120]}",
                             hint="export with torch.jit.script/trace and torch.jit.save") from None
        if input_size is None:
            raise InputError(f"{path}: a TorchScript model needs --input-size H W", hint="e.g. --input-size 224 224")
        ch = int(channels or (len(mean) if mean is not None else 3))
        mean_, std_, scale = _prep(ch, mean, std, value_range)
        box = BlackBox(module, kind="torchscript", channels=ch, size=input_size, classes=[], mean=mean_, std=std_,
                       scale=scale, bgr=bgr, device=device, module=module, source=str(path))
        n = _probe(box, path)
        box.classes = _class_names(class_names, n)
        return box
    from wisecli.nn.zoo import load_classifier

    model, doc = load_classifier(path, method="classify", device=device)
    inp = doc.get("input") or {}
    if inp.get("kind") != "image" or "normalize" not in doc or "classes" not in doc:
        raise InputError(f"{path}: not an image classifier checkpoint", hint="give a checkpoint of an image model "
                         "written by 'wise classify train'")
    ch, size = int(inp["channels"]), int(inp["image_size"])
    box = BlackBox(model, kind="classify", channels=ch, size=(size, size), classes=list(doc["classes"]),
                   mean=doc["normalize"]["mean"], std=doc["normalize"]["std"], device=device, module=model,
                   source=str(path))
    _probe(box, path)
    return box


def _load_onnx(path, device, input_size, mean, std, value_range, bgr, class_names) -> BlackBox:
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(f"{path}: ONNX models need onnxruntime, which is not installed", hint=ONNX_HINT) from None
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:120]}",
                         hint="give an ONNX classifier file") from None
    inp = sess.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise InputError(f"{path}: the ONNX input has shape {shape}, not (B, C, H, W)", hint="export an image classifier")
    ch = shape[1] if isinstance(shape[1], int) else 3
    if input_size is None:
        if not (isinstance(shape[2], int) and isinstance(shape[3], int)):
            raise InputError(f"{path}: the ONNX input size is dynamic", hint="give --input-size H W")
        input_size = (shape[2], shape[3])
    name = inp.name

    def run(x: Tensor) -> Tensor:
        out = sess.run(None, {name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(np.asarray(out)).to(device)

    mean_, std_, scale = _prep(ch, mean, std, value_range)
    box = BlackBox(run, kind="onnx", channels=ch, size=input_size, classes=[], mean=mean_, std=std_, scale=scale,
                   bgr=bgr, device=device, source=str(path))
    n = _probe(box, path)
    box.classes = _class_names(class_names, n)
    return box
