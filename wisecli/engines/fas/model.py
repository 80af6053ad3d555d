"""Networks for face anti-spoofing with pixel-wise supervision (Yu et al., T-BIOM 2021, arXiv 2011.12032).

Two backbones produce one map of `map_size`² cells (and, on demand, one binary logit):

* `cdcn` — the Central Difference Convolutional Network (Yu et al., CVPR 2020, "Searching Central Difference
  Convolutional Networks for Face Anti-Spoofing"). Central difference convolution (CDC) is
  y = conv3x3(x, W) − θ·conv1x1(x, ΣW) with ΣW the sum of each kernel's nine taps. With a 3×3 kernel, padding 1
  and dilation 1 this equals *one* 3×3 convolution whose centre tap is W[:, :, 1, 1] − θ·ΣW (the centre tap of the
  3×3 window samples exactly the pixel the 1×1 convolution samples, at every stride). `CDConv2d` builds that
  folded kernel on each training forward (a linear map of W, so gradients are exact) and caches it when no
  gradient is being recorded. Layer list: stem CDC 3→64; three blocks CDC 64/128→128→196→128, each conv followed
  by BN + ReLU, then MaxPool(3, s2, p1); the three block outputs are resized bilinearly to the map grid and
  concatenated (3×128 channels); head CDC 384→128→64→1. `width` scales every channel count (the CPU preset
  uses 0.25).
* `resnet` — MONAI's 2-D ResNet-18/34/50 (stem stride 2, no classifier); layer2/3/4 are resized to the map grid,
  concatenated and fed to a head conv3×3 → 128 → 64 → 1 (BN + ReLU between) [reconstructed, spec §2.2].

Map output: ReLU for depth supervision (as CDCN), raw logits for mask supervision. The binary head (mode
`binary`, or `--aux-binary` beside a map) is global average pooling of the concatenated multi-scale features
followed by one linear layer [reconstructed: the spec says GAP → Linear and is silent on which features].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAP_MODES = ("binary-mask", "depth-map", "pyramid")
SUPERVISIONS = ("binary",) + MAP_MODES


class CDConv2d(nn.Module):
    """Central difference 3×3 convolution, folded into a single convolution (bias-free, as CDCN).

    Folding: W' = W except W'[:, :, 1, 1] = W[:, :, 1, 1] − θ·ΣW (exact for padding 1, dilation 1, any stride).
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1, theta: float = 0.7):
        super().__init__()
        self.in_ch, self.out_ch, self.stride, self.theta = in_ch, out_ch, stride, float(theta)
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # the default of nn.Conv2d
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def folded_weight(self) -> torch.Tensor:
        """The single 3×3 kernel equal to the CDC pair; cached while no gradient is recorded."""
        w = self.weight
        if self.theta == 0.0:
            return w
        if torch.is_grad_enabled() and w.requires_grad:
            self._cache = None
            return w - self.theta * F.pad(w.sum(dim=(2, 3), keepdim=True), (1, 1, 1, 1))
        dt = w.dtype
        if torch.is_autocast_enabled(w.device.type):  # cache the kernel in the autocast dtype too: no cast per call
            dt = torch.get_autocast_dtype(w.device.type)
        key = (w._version, w.data_ptr(), w.device, dt, self.theta)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                folded = w - self.theta * F.pad(w.sum(dim=(2, 3), keepdim=True), (1, 1, 1, 1))
                self._cache = (key, folded.to(dt))
        return self._cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.folded_weight(), None, self.stride, 1)

    def extra_repr(self) -> str:
        return f"{self.in_ch}, {self.out_ch}, stride={self.stride}, theta={self.theta}"


def cdc_two_conv(x: torch.Tensor, weight: torch.Tensor, theta: float, stride: int = 1) -> torch.Tensor:
    """The unfolded CDC of the paper: conv3x3(x, W) − θ·conv1x1(x, ΣW). Test oracle and benchmark peer only."""
    out = F.conv2d(x, weight, None, stride, 1)
    if theta == 0.0:
        return out
    diff = F.conv2d(x, weight.sum(dim=(2, 3), keepdim=True), None, stride, 0)
    return out - theta * diff


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


class _CBR(nn.Sequential):
    def __init__(self, cin: int, cout: int, theta: float):
        super().__init__(CDConv2d(cin, cout, theta=theta), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CDCN(nn.Module):
    """CDCN (Yu et al., CVPR 2020) with a map head and an optional binary head."""

    def __init__(self, *, theta: float = 0.7, width: float = 1.0, map_size: int = 32, depth_relu: bool = True,
                 map_head: bool = True, binary_head: bool = False):
        super().__init__()
        c64, c128, c196 = _ch(64, width), _ch(128, width), _ch(196, width)
        self.map_size, self.depth_relu = map_size, depth_relu
        self.stem = _CBR(3, c64, theta)
        blocks = []
        for cin in (c64, c128, c128):
            blocks.append(nn.Sequential(_CBR(cin, c128, theta), _CBR(c128, c196, theta), _CBR(c196, c128, theta),
                                        nn.MaxPool2d(3, 2, 1)))
        self.blocks = nn.ModuleList(blocks)
        self.feat_ch = 3 * c128
        self.head = (nn.Sequential(_CBR(self.feat_ch, c128, theta), _CBR(c128, c64, theta),
                                   CDConv2d(c64, 1, theta=theta)) if map_head else None)
        self.binary = nn.Linear(self.feat_ch, 1) if binary_head else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(F.interpolate(x, size=(self.map_size, self.map_size), mode="bilinear", align_corners=False))
        return torch.cat(outs, dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return _heads(self, self.features(x))


class ResNetFAS(nn.Module):
    """MONAI ResNet backbone (layer2/3/4 fused on the map grid) with the same heads as `CDCN`."""

    def __init__(self, *, depth: int = 18, map_size: int = 32, depth_relu: bool = True, map_head: bool = True,
                 binary_head: bool = False):
        super().__init__()
        from monai.networks.nets import resnet

        factory = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50}[depth]
        self.net = factory(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, feed_forward=False)
        self.map_size, self.depth_relu = map_size, depth_relu
        exp = 4 if depth == 50 else 1
        self.feat_ch = (128 + 256 + 512) * exp
        self.head = (nn.Sequential(nn.Conv2d(self.feat_ch, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128),
                                   nn.ReLU(inplace=True), nn.Conv2d(128, 64, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.Conv2d(64, 1, 3, padding=1))
                     if map_head else None)
        self.binary = nn.Linear(self.feat_ch, 1) if binary_head else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.act(n.bn1(n.conv1(x))))
        x = n.layer1(x)
        outs = []
        for layer in (n.layer2, n.layer3, n.layer4):
            x = layer(x)
            outs.append(F.interpolate(x, size=(self.map_size, self.map_size), mode="bilinear", align_corners=False))
        return torch.cat(outs, dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        return _heads(self, self.features(x))


def _heads(model: nn.Module, feats: torch.Tensor) -> dict[str, torch.Tensor | None]:
    out: dict[str, torch.Tensor | None] = {"map": None, "logit": None}
    if model.head is not None:
        m = model.head(feats)
        out["map"] = F.relu(m) if model.depth_relu else m
    if model.binary is not None:
        out["logit"] = model.binary(feats.mean(dim=(2, 3))).squeeze(1)
    return out


def map_target_kind(supervision: str, pyramid_base: str = "binary-mask") -> str | None:
    """'mask', 'depth' or None (binary): what the map of this supervision regresses."""
    if supervision == "binary":
        return None
    if supervision == "pyramid":
        return "depth" if pyramid_base == "depth-map" else "mask"
    return "depth" if supervision == "depth-map" else "mask"


def build_model(cfg: dict) -> nn.Module:
    """The network a run configuration describes (keys: backbone, supervision, pyramid_base, aux_binary, theta,
    width, map_size, resnet_depth)."""
    kind = map_target_kind(cfg["supervision"], cfg.get("pyramid_base", "binary-mask"))
    map_head = kind is not None
    binary_head = not map_head or float(cfg.get("aux_binary", 0.0)) > 0
    common = dict(map_size=int(cfg["map_size"]), depth_relu=kind == "depth", map_head=map_head,
                  binary_head=binary_head)
    if cfg.get("backbone", "cdcn") == "resnet":
        return ResNetFAS(depth=int(cfg.get("resnet_depth", 18)), **common)
    return CDCN(theta=float(cfg.get("theta", 0.7)), width=float(cfg.get("width", 1.0)), **common)


BACKBONES = ("cdcn", "resnet")
PAPER_SCALES = "32,16,8,4,2,1"  # the scale list of a 32² map (the paper's); cut to a smaller map when left as is


def check_config(cfg: dict, defaults: dict | None = None) -> dict:
    """Validate and complete a run configuration (exit 2 on bad values): `defaults` (the `train` table of
    `api.DEFAULTS`) fills missing keys; adds `target_kind`; normalises the pyramid scales and weights. A checkpoint's
    stored configuration passes unchanged."""
    from wisecli.cli.errors import InputError
    from wisecli.engines.fas.detect import DETECTORS
    from wisecli.engines.fas.loss import parse_pyramid

    cfg = {**(defaults or {}), **cfg}
    for key, allowed in (("supervision", SUPERVISIONS), ("backbone", BACKBONES), ("detector", DETECTORS),
                         ("pyramid_base", ("binary-mask", "depth-map")), ("mask_label", ("face", "full")),
                         ("depth_fallback", ("none", "template")), ("agg", ("mean", "median"))):
        if cfg[key] not in allowed:
            raise InputError(f"--{key.replace('_', '-')} {cfg[key]!r} is not known",
                             f"use one of {', '.join(allowed)}")
    if cfg["backbone"] == "resnet" and int(cfg["resnet_depth"]) not in (18, 34, 50):
        raise InputError(f"--resnet-depth {cfg['resnet_depth']} is not offered", "use 18, 34 or 50")
    for key in ("input_size", "map_size", "epochs", "batch_size", "frames", "lr_step"):
        if int(cfg[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1", "give a positive integer")
    if int(cfg["input_size"]) < int(cfg["map_size"]):
        raise InputError("--map-size exceeds --input-size", "the map is coarser than the input, e.g. 256 and 32")
    if not float(cfg["aux_binary"]) >= 0 or not float(cfg["lr"]) > 0 or not math.isfinite(float(cfg["lr"])):
        raise InputError("--aux-binary must be >= 0 and --lr > 0", "e.g. --aux-binary 0.5 --lr 1e-4")
    if not (float(cfg["width"]) > 0 and math.isfinite(float(cfg["width"]))):
        raise InputError(f"--width {cfg['width']} must be a positive number", "e.g. --width 1.0 (0.25 on CPU)")
    if int(cfg["seed"]) < 0:
        raise InputError(f"--seed {cfg['seed']} must be zero or more", "e.g. --seed 0")
    cfg["target_kind"] = map_target_kind(cfg["supervision"], cfg["pyramid_base"])
    if cfg["supervision"] == "pyramid":
        scales = cfg["pyramid_scales"]
        m = int(cfg["map_size"])
        if scales == PAPER_SCALES and m != 32:  # the default list, cut to the map size
            scales = ",".join(str(s) for s in (m, 16, 8, 4, 2, 1) if s <= m and m % s == 0)
            scales = ",".join(dict.fromkeys(scales.split(",")))
        sc, w = parse_pyramid(m, scales, cfg["pyramid_weights"] or None)
        cfg["pyramid_scales"], cfg["pyramid_weights"] = ",".join(map(str, sc)), ",".join(f"{x:g}" for x in w)
    return cfg


def pyramid_of(cfg: dict) -> dict | None:
    """The checkpoint's `pyramid` entry (scales, weights, base) of a checked configuration, None without one."""
    if cfg["supervision"] != "pyramid":
        return None
    return {"scales": [int(s) for s in cfg["pyramid_scales"].split(",")],
            "weights": [float(w) for w in cfg["pyramid_weights"].split(",")], "base": cfg["pyramid_base"]}


def load_pretrained(model: nn.Module, cfg: dict, path) -> None:
    """Start `model` from the weights of a `wise fas` checkpoint (`--pretrained`): every tensor whose name and shape
    match is copied. Another method's, a foreign or a corrupt file, or one that matches nothing, is exit 2."""
    from wisecli.cli.errors import InputError
    from wisecli.runtime.checkpoints import load_checkpoint

    doc = load_checkpoint(path, method="fas")
    sd = doc["state_dict"]
    target = model.net if cfg["backbone"] == "resnet" and not any(k.startswith("net.") for k in sd) else model
    own = target.state_dict()
    usable = {k: v for k, v in sd.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise InputError(f"--pretrained {path} matches none of the backbone's weights",
                         "give a checkpoint of the same backbone (and width), written by 'wise fas train'")
    target.load_state_dict(usable, strict=False)


def build(cfg: dict, device):
    """The model and the loss of a checked configuration, on `device` (channels_last and cuDNN autotuning on CUDA);
    `cfg["pretrained"]` names a checkpoint to start from."""
    import torch

    from wisecli.engines.fas.loss import FASLoss

    model = build_model(cfg)
    if cfg.get("pretrained"):
        load_pretrained(model, cfg, cfg["pretrained"])
    loss = FASLoss(cfg["supervision"], map_size=int(cfg["map_size"]), pyramid_base=cfg["pyramid_base"],
                   scales=cfg["pyramid_scales"].split(",") if cfg["supervision"] == "pyramid" else None,
                   weights=cfg["pyramid_weights"] or None, aux_binary=float(cfg["aux_binary"]))
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    return model, loss.to(device)
