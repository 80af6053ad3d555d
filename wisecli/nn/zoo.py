"""The classifier zoo shared by `classify`, `explain`, `sparse-cnn`, `contrastive` and `leakage` (spec §2.0, §2.3,
§2.4): `ARCHS`, `build()`, `load_classifier()`, and the mc-dropout and stacked-ensemble wrappers.

Architectures (`build(arch, in_channels=, num_classes=, image_size=, width=, norm=, ...)`):

- `mlp`: hidden (256, 128) x `width`, ReLU, no normalisation layer (`norm` does not apply: a batch of one
  sample must still train). Input [reconstructed]: by default features, (B, D) with D = in_channels *
  image_size (the engine passes in_channels=1, image_size=D); `input="image"` flattens (B, C, H, W) images,
  D = C * image_size^2.
- `small-cnn`: `conv1`, `conv2` 3x3 (pad 1) C -> 16 -> 32 (x `width`), each followed by `bn1`/`bn2` when
  norm=batch, ReLU and 2x2 max-pool; `fc1` -> 64, ReLU, `fc2`. `norm="none"` (no BatchNorm, convs with
  bias) is what `leakage`'s per-sample gradients need.
- `cnn-32`: 5x5 convs (no padding) C -> 32 -> 64, each ReLU + 2x2 max-pool (BatchNorm after each conv with
  norm=batch), FC -> 256 -> classes (1600 -> 256 at 32x32). Needs image_size >= 16.
- `plain-cnn`, `ring-cnn`, `radial-cnn`, `dwsep-radial-cnn`: `wisecli.nn.radial.InvariantNet` (§2.3);
  options `ring_mode`, `orientations`, `rings` (euclid|square), `spatial` (radial|ring, dwsep only),
  `kernel_size`. Exact 90 degree invariance needs image_size divisible by 4.
- MONAI (2-D, `pretrained` refused: nothing is downloaded): `monai-resnet18|34|50` (width -> widen_factor),
  `monai-densenet121`, `monai-seresnet50`, `monai-efficientnet-b0` (width ignored by the last three). Stem rule
  (spec §2.0): image_size <= 64 gets a 3x3 stride-1 first conv and no max-pool (ResNets via
  `conv1_t_size=3, conv1_t_stride=1, no_max_pool=True`; DenseNet's `conv0`/`pool0`, SE-ResNet's
  `layer0.conv1`/`layer0.pool` and EfficientNet's `_conv_stem` are replaced [reconstructed]); larger images
  keep a 7x7 stride-2 stem (ResNets: `conv1_t_stride=2`, MONAI's default is 1) and the max-pool. MONAI nets
  need norm=batch.

`bayes` (how the model is made Bayesian; everything stays one `nn.Module`):

- `none`: forward returns logits (B, classes).
- `implicit`: `wisecli.nn.implicit.convert_to_implicit(model, components)` (see there for the replica layout:
  a batch repeated L = K S times as `x.repeat(L, ...)` gives S samples per component in one pass).
- `mc-dropout` [reconstructed]: an `nn.Dropout(dropout)` before the input of EVERY conv/Linear (the first
  layer's input, the image, included, as the implicit latents are), as `MCDropoutLayer` (`.dropout`,
  `.layer`). They are ordinary `nn.Dropout` modules: off in eval mode; the engine turns them on to sample.
- `ensemble`: `StackedEnsemble`: `members` independently initialised copies whose parameters and persistent
  buffers are stacked on a leading member axis (state-dict keys `stack.<name>`, shape (members, ...)) and run
  with `torch.func.functional_call` under `vmap` in one call: forward returns (members, B, classes) logits.
  An optimizer sees one stacked tensor per parameter, so per-tensor rules (LAMBC/LARS trust ratios) pool the
  members' norms; plain SGD/AdamW updates are exactly those of separate members.

`load_classifier(path)` rebuilds a checkpoint written with `model=<the build() keywords without arch>`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from wisecli.cli.errors import InputError

from .implicit import WRAPPED_TYPES, convert_to_implicit
from .radial import InvariantNet

ARCHS = ("mlp", "small-cnn", "cnn-32", "plain-cnn", "ring-cnn", "radial-cnn", "dwsep-radial-cnn",
         "monai-resnet18", "monai-resnet34", "monai-resnet50", "monai-densenet121", "monai-seresnet50",
         "monai-efficientnet-b0")
BAYES = ("none", "implicit", "mc-dropout", "ensemble")
NORMS = ("batch", "none")
INVARIANT_KIND = {"plain-cnn": "plain", "ring-cnn": "ring", "radial-cnn": "radial", "dwsep-radial-cnn": "dwsep"}
SMALL_STEM_MAX = 64

_ARCH_OPTIONS: dict[str, set[str]] = {
    "mlp": {"input", "hidden"},
    "small-cnn": set(),
    "cnn-32": set(),
    **{a: {"ring_mode", "orientations", "rings", "spatial", "kernel_size"} for a in INVARIANT_KIND},
}
_IMPLICIT_OPTIONS = {"prior_std", "init_mean", "init_std"}


# ---------------------------------------------------------------- the small nets

class MLP(nn.Module):
    """Linear-ReLU stack (hidden 256, 128 x width) and a Linear head; input flattened from dim 1."""

    def __init__(self, in_features: int, num_classes: int, hidden=(256, 128), width: float = 1.0):
        super().__init__()
        dims = [in_features] + [max(1, int(round(h * width))) for h in hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], num_classes)
        self.in_features = in_features

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(x, 1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"mlp was built for {self.in_features} input features, got {x.shape[1]} "
                             "(images need build('mlp', ..., input='image'))")
        return self.head(self.body(x))


class SmallCNN(nn.Module):
    """conv1/conv2 3x3 C -> 16 -> 32, ReLU, 2x2 max-pool; fc1 -> 64, fc2 (names kept for `leakage`)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: float = 1.0, norm: str = "batch"):
        super().__init__()
        c1, c2, h = (max(1, int(round(c * width))) for c in (16, 32, 64))
        bn = norm == "batch"
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=not bn)
        self.bn1 = nn.BatchNorm2d(c1) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=not bn)
        self.bn2 = nn.BatchNorm2d(c2) if bn else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        s = image_size // 4
        self.fc1 = nn.Linear(c2 * s * s, h)
        self.fc2 = nn.Linear(h, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.act(self.bn1(self.conv1(x))))
        x = self.pool(self.act(self.bn2(self.conv2(x))))
        return self.fc2(self.act(self.fc1(torch.flatten(x, 1))))


class CNN32(nn.Module):
    """5x5 convs C -> 32 -> 64 (no padding), ReLU + 2x2 max-pool each; FC -> 256 -> classes."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: float = 1.0, norm: str = "batch"):
        super().__init__()
        c1, c2, h = (max(1, int(round(c * width))) for c in (32, 64, 256))
        bn = norm == "batch"
        self.conv1 = nn.Conv2d(in_channels, c1, 5, bias=not bn)
        self.bn1 = nn.BatchNorm2d(c1) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(c1, c2, 5, bias=not bn)
        self.bn2 = nn.BatchNorm2d(c2) if bn else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        s = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(c2 * s * s, h)
        self.fc2 = nn.Linear(h, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.act(self.bn1(self.conv1(x))))
        x = self.pool(self.act(self.bn2(self.conv2(x))))
        return self.fc2(self.act(self.fc1(torch.flatten(x, 1))))


# ---------------------------------------------------------------- MONAI

def _monai(arch: str, in_channels: int, num_classes: int, image_size: int, width: float) -> nn.Module:
    from monai.networks import nets

    small = image_size <= SMALL_STEM_MAX
    if arch.startswith("monai-resnet"):
        fn = {"monai-resnet18": nets.resnet18, "monai-resnet34": nets.resnet34, "monai-resnet50": nets.resnet50}[arch]
        return fn(pretrained=False, spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes,
                  conv1_t_size=3 if small else 7, conv1_t_stride=1 if small else 2, no_max_pool=small,
                  widen_factor=width)
    if arch == "monai-densenet121":
        m = nets.DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, pretrained=False)
        if small:
            old = m.features.conv0
            m.features.conv0 = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
            m.features.pool0 = nn.Identity()
        return m
    if arch == "monai-seresnet50":
        m = nets.SEResNet50(spatial_dims=2, in_channels=in_channels, num_classes=num_classes, pretrained=False)
        if small:
            old = m.layer0.conv1
            m.layer0.conv1 = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
            m.layer0.pool = nn.Identity()
        return m
    if arch == "monai-efficientnet-b0":
        m = nets.EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=in_channels,
                                num_classes=num_classes)
        if small:
            old = m._conv_stem
            m._conv_stem = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=0, bias=False)
            m._conv_stem_padding = nn.ZeroPad2d(1)
        return m
    raise InputError(f"unknown MONAI arch {arch!r}")


# ---------------------------------------------------------------- Bayesian wrappers

class MCDropoutLayer(nn.Module):
    """`layer(dropout(x))`: the mc-dropout baseline's wrapper (an ordinary nn.Dropout, on only in training or
    when the engine switches it on for sampling)."""

    def __init__(self, layer: nn.Module, p: float):
        super().__init__()
        self.dropout = nn.Dropout(p)
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.dropout(x))


def add_mc_dropout(model: nn.Module, p: float) -> nn.Module:
    """Insert nn.Dropout(p) before every conv/Linear of `model` in place; returns `model`."""

    def visit(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if isinstance(child, MCDropoutLayer):
                continue
            if isinstance(child, WRAPPED_TYPES):
                setattr(module, name, MCDropoutLayer(child, p))
            else:
                visit(child)

    visit(model)
    return model


def _set_tensor(root: nn.Module, name: str, value: Tensor, param: bool) -> None:
    *path, leaf = name.split(".")
    mod = root
    for p in path:
        mod = getattr(mod, p)
    if param:
        mod._parameters[leaf] = nn.Parameter(value)
    else:
        mod._buffers[leaf] = value


class StackedEnsemble(nn.Module):
    """`members` copies of one net in ONE module: parameters and persistent buffers stacked on a leading member
    axis (`self.stack`, state-dict keys `stack.<name>`), evaluated with `torch.func.functional_call` under
    `vmap` (randomness "different"): `forward(x)` gives (members, B, classes); `forward(x, per_member=True)`
    takes x of shape (members, B, ...), one batch per member. BatchNorm's running statistics are per member."""

    def __init__(self, make: Callable[[], nn.Module], members: int):
        super().__init__()
        if members < 1:
            raise ValueError("members must be >= 1")
        models = [make() for _ in range(members)]
        self.members = members
        stack = copy.deepcopy(models[0])
        self._param_names = [n for n, _ in stack.named_parameters()]
        params = set(self._param_names)
        self._buffer_names = [n for n in stack.state_dict() if n not in params]
        for n in self._param_names:
            _set_tensor(stack, n, torch.stack([m.get_parameter(n).detach() for m in models]), True)
        for n in self._buffer_names:
            _set_tensor(stack, n, torch.stack([m.get_buffer(n).detach() for m in models]), False)
        self.stack = stack
        # the structure functional_call runs: a hidden copy (not a submodule); its own weights are never used,
        # only its non-persistent buffers (e.g. the radial gather indices), moved along in _apply
        object.__setattr__(self, "_base", models[0])

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._base._apply(fn, *args, **kwargs)
        return self

    def forward(self, x: Tensor, per_member: bool = False) -> Tensor:
        from torch.func import functional_call, vmap

        base = self._base
        base.train(self.training)
        params = {n: self.stack.get_parameter(n) for n in self._param_names}
        buffers = {n: self.stack.get_buffer(n) for n in self._buffer_names}

        def one(p: dict, b: dict, xx: Tensor) -> Tensor:
            return functional_call(base, {**p, **b}, (xx,))

        return vmap(one, in_dims=(0, 0, 0 if per_member else None), randomness="different")(params, buffers, x)


# ---------------------------------------------------------------- build / load

def _check(cond: bool, message: str, hint: str) -> None:
    if not cond:
        raise InputError(message, hint=hint)


def _base(arch: str, in_channels: int, num_classes: int, image_size: int, width: float, norm: str,
          options: dict[str, Any]) -> nn.Module:
    if arch == "mlp":
        inp = options.get("input", "features")
        _check(inp in ("features", "image"), f"model.input must be features or image, not {inp!r}",
               "features: (B, D) vectors; image: flattened (B, C, H, W) images")
        d = in_channels * image_size if inp == "features" else in_channels * image_size * image_size
        hidden = tuple(int(h) for h in options.get("hidden", (256, 128)))
        return MLP(d, num_classes, hidden, width)
    if arch == "small-cnn":
        _check(image_size >= 4, f"small-cnn needs images of at least 4x4, not {image_size}", "set --image-size")
        return SmallCNN(in_channels, num_classes, image_size, width, norm)
    if arch == "cnn-32":
        _check(image_size >= 16, f"cnn-32 needs images of at least 16x16, not {image_size}",
               "set --image-size 32 (its design size) or pick small-cnn")
        return CNN32(in_channels, num_classes, image_size, width, norm)
    if arch in INVARIANT_KIND:
        try:
            return InvariantNet(INVARIANT_KIND[arch], in_channels, num_classes, width, norm, **options)
        except ValueError as exc:
            raise InputError(f"{arch}: {exc}", hint="see 'wise classify info' for the options of the radial nets") from None
    _check(norm == "batch", f"{arch} needs norm=batch, not {norm!r}", "MONAI nets are built with BatchNorm")
    return _monai(arch, in_channels, num_classes, image_size, width)


def build(arch: str, *, in_channels: int, num_classes: int, image_size: int, width: float = 1.0, norm: str = "batch",
          bayes: str = "none", components: int = 1, dropout: float = 0.1, members: int = 5,
          **arch_options: Any) -> nn.Module:
    """A fresh classifier (see the module docstring). Bad arguments are InputError (exit 2)."""
    _check(arch in ARCHS, f"unknown arch {arch!r}", "choose one of: " + ", ".join(ARCHS))
    _check(bayes in BAYES, f"unknown bayes mode {bayes!r}", "choose one of: " + ", ".join(BAYES))
    _check(norm in NORMS, f"unknown norm {norm!r}", "choose one of: " + ", ".join(NORMS))
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("image_size", image_size),
                        ("components", components), ("members", members)):
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
               f"{name} must be a positive integer, not {value!r}", f"check {name}")
    _check(isinstance(width, (int, float)) and math.isfinite(width) and width > 0,
           f"width must be a positive number, not {width!r}", "e.g. --set model.width=0.25")
    _check(isinstance(dropout, (int, float)) and 0 <= dropout < 1, f"dropout must be in [0, 1), not {dropout!r}",
           "e.g. --set model.dropout=0.1")
    options = dict(arch_options)
    _check(not options.pop("pretrained", False), "pretrained weights are refused: nothing is downloaded",
           "train from scratch, or start from a local checkpoint with --init")
    implicit_opts = {k: options.pop(k) for k in list(options) if k in _IMPLICIT_OPTIONS}
    allowed = _ARCH_OPTIONS.get(arch, set())
    unknown = sorted(set(options) - allowed)
    _check(not unknown, f"unknown option(s) for {arch}: {', '.join(unknown)}",
           f"{arch} takes: {', '.join(sorted(allowed)) or 'no options'}")
    _check(not implicit_opts or bayes == "implicit", f"{', '.join(implicit_opts)} only apply to bayes=implicit",
           "drop them or set bayes=implicit")

    def make() -> nn.Module:
        return _base(arch, in_channels, num_classes, image_size, float(width), norm, options)

    if bayes == "ensemble":
        return StackedEnsemble(make, members)
    model = make()
    if bayes == "implicit":
        return convert_to_implicit(model, components, **implicit_opts)
    if bayes == "mc-dropout":
        return add_mc_dropout(model, float(dropout))
    return model


def load_classifier(path, *, method: str = "classify", device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode on `device`, the checkpoint dict) from a checkpoint `train` wrote (a file or a run
    folder); another method's file, or one whose arch/model keys do not fit, is an InputError."""
    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(path, method=method)
    arch, kw = doc.get("arch"), doc.get("model")
    if arch not in ARCHS or not isinstance(kw, dict) or not isinstance(doc.get("state_dict"), dict):
        raise InputError(f"{path}: checkpoint of arch {arch!r} cannot be rebuilt by this version",
                         hint="known archs: " + ", ".join(ARCHS) + "; give a checkpoint written by 'train'")
    try:
        model = build(arch, **kw)
    except InputError as exc:
        raise InputError(f"{path}: its model settings do not build: {exc.message}", hint=exc.hint) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: its model settings do not build ({exc})",
                         hint="give a checkpoint written by 'train' of this version") from None
    try:
        model.load_state_dict(doc["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(f"{path}: the weights do not fit arch {arch!r} ({first[1].strip() if len(first) > 1 else first[0]})",
                         hint="the checkpoint's weights and its model settings disagree; retrain or give another file") from None
    return model.eval().to(device), doc
