"""The re-ID network: a MONAI ResNet backbone (ImageNet layout) with BNNeck, optionally VCAM.

Backbone (spec §2.1): MONAI `resnet50(spatial_dims=2, n_input_channels=3, conv1_t_stride=2,
bias_downsample=False, feed_forward=False)` has the ImageNet ResNet layout and parameter names (`conv1`, `bn1`,
`layerN.M.conv1..3`, `bn1..3`, `downsample.0/1`), so a torchvision-style state dict loads into it (`fc.*`
ignored).  Last stride 1 (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-identification",
CVPRW 2019): `layer4[0]` keeps full resolution, a 16x16 map at 256^2.
Head (BoT): f_t = GAP(F~_4); BNNeck f_i = BN(f_t) with its bias frozen at 0; logits = Linear(f_i, #ids, no bias).
The test embedding is the L2-normalised f_i (`embed="post-bn"`) or f_t (`"pre-bn"`).
`use_vcam=False` is the BoT baseline: no viewpoint head, no gates (the paper's central ablation).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .vcam import VCAMUnit, ViewpointHead

ARCHS = ("resnet50", "resnet34", "resnet18")


def build_backbone(arch: str = "resnet50", last_stride: int = 1, width: float = 1.0) -> nn.Module:
    """A MONAI ResNet with the ImageNet layout (stride-2 stem, bias-free downsample), no classifier.
    `width` < 1 narrows every stage (MONAI's widen_factor; names stay, shapes shrink): the CPU demo's setting."""
    from monai.networks import nets

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}")
    net = getattr(nets, arch)(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, bias_downsample=False,
                              feed_forward=False, widen_factor=width)
    if last_stride == 1:
        block = net.layer4[0]
        conv = block.conv2 if hasattr(block, "conv3") else block.conv1  # bottleneck: 3x3 conv2; basic: conv1
        conv.stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    return net


def stage_channels(backbone: nn.Module) -> list[int]:
    """Output channels of layer1..layer4."""
    out = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        last = getattr(backbone, name)[-1]
        out.append((last.bn3 if hasattr(last, "bn3") else last.bn2).num_features)
    return out


class ReIDNet(nn.Module):
    """Backbone + (VCAM) + BNNeck + ID classifier; `forward` returns everything the losses need."""

    def __init__(self, num_ids: int, *, arch: str = "resnet50", use_vcam: bool = True,
                 vcam_stages: tuple[int, ...] = (1, 2, 3, 4), viewpoint_classes: int = 5, gate: str = "scaled",
                 hidden: int = 0, detach_viewpoint: bool = True, embed: str = "post-bn", last_stride: int = 1,
                 vp_size: int = 128, width: float = 1.0):
        super().__init__()
        self.backbone = build_backbone(arch, last_stride, width)
        chans = stage_channels(self.backbone)
        self.use_vcam = use_vcam
        self.vcam_stages = tuple(vcam_stages) if use_vcam else ()
        self.detach_viewpoint = detach_viewpoint
        self.embed_mode = embed
        self.viewpoint_classes = viewpoint_classes
        if use_vcam:
            self.viewpoint = ViewpointHead(viewpoint_classes, vp_size, width)
            self.vcam = nn.ModuleDict({str(s): VCAMUnit(viewpoint_classes, chans[s - 1], gate, hidden)
                                       for s in self.vcam_stages})
        self.feat_dim = chans[-1]
        self.bnneck = nn.BatchNorm1d(self.feat_dim)
        self.bnneck.bias.requires_grad_(False)
        nn.init.zeros_(self.bnneck.bias)
        self.classifier = nn.Linear(self.feat_dim, num_ids, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        vp_logits = gates = None
        v = None
        if self.use_vcam:
            vp_logits = self.viewpoint(x)
            v = torch.softmax(vp_logits.float(), dim=1)
            if self.detach_viewpoint:
                v = v.detach()
            gates = {}
        b = self.backbone
        h = b.maxpool(b.act(b.bn1(b.conv1(x))))
        for i, name in enumerate(("layer1", "layer2", "layer3", "layer4"), start=1):
            h = getattr(b, name)(h)
            if i in self.vcam_stages:
                h, gates[i] = self.vcam[str(i)](h, v)
        f_t = h.mean(dim=(2, 3)).float()
        f_i = self.bnneck(f_t)
        return {"f_t": f_t, "f_i": f_i, "logits": self.classifier(f_i), "vp_logits": vp_logits, "gates": gates}

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, dict | None]:
        """(L2-normalised embedding, viewpoint probabilities or None, gates) for a batch."""
        out = self.forward(x)
        f = out["f_i"] if self.embed_mode == "post-bn" else out["f_t"]
        probs = None if out["vp_logits"] is None else torch.softmax(out["vp_logits"].float(), dim=1)
        return F.normalize(f.float(), dim=1), probs, out["gates"]


def load_pretrained(model: ReIDNet, state: dict) -> dict:
    """Load a torchvision-style ImageNet state dict into the backbone (`fc.*` ignored).

    Returns {"missing": [...], "unexpected": [...]}; raises ValueError listing the first shape mismatches."""
    own = model.backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError("; ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""))
    res = model.backbone.load_state_dict(state, strict=False)
    return {"missing": list(res.missing_keys), "unexpected": list(res.unexpected_keys)}
