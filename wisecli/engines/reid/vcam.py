"""The viewpoint head and the VCAM unit (Chen et al., "Viewpoint-Aware Channel-Wise Attentive Network for
Vehicle Re-Identification", CVPRW 2020, arXiv 2010.05810).

VCAM reweights the channels of each backbone stage by the input's viewpoint [paper].  The paper's exact form
and how it obtains the viewpoint are not public; our reconstruction (spec §2.2-2.3):
- viewpoint head: a separate MONAI ResNet-18 on the image resized to 128^2, K logits, V = softmax;
  K = 5 (front, rear, side, front-side, rear-side; SPAN's classes) or 8 (the keypoint set);
- unit at stage i: a_i = 2 sigmoid(W_i V + b_i) in (0, 2)^{C_i}, W_i = 0 and b_i = 0 at initialisation, so
  a_i = 1 and training starts as the baseline; F~_i = a_i * F_i, broadcast over H x W.
  `gate="sigmoid"` (plain sigmoid, starts at 0.5) serves paper-style studies; `hidden=N` inserts a
  K -> N -> C_i MLP (ReLU) whose last layer is zero-initialised, keeping the identity start.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VIEWPOINTS_5 = ("front", "rear", "side", "front-side", "rear-side")
VIEWPOINTS_8 = ("front", "rear", "left", "left-front", "left-rear", "right", "right-front", "right-rear")
FLIP_8 = torch.tensor([0, 1, 5, 6, 7, 2, 3, 4])  # horizontal flip: left <-> right
TO_5 = torch.tensor([0, 1, 2, 3, 4, 2, 3, 4])    # keypoint set -> SPAN set


def flip_viewpoint(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Labels of the mirrored images: 8-class labels swap 2<->5, 3<->6, 4<->7; 5-class labels are invariant.
    Unlabelled entries (-1) stay -1."""
    if num_classes != 8:
        return labels
    out = FLIP_8.to(labels.device)[labels.clamp_min(0)]
    return torch.where(labels < 0, labels, out)


class ViewpointHead(nn.Module):
    """K viewpoint logits from a MONAI ResNet-18 reading the image at `size`^2."""

    def __init__(self, num_classes: int = 5, size: int = 128, width: float = 1.0):
        super().__init__()
        from monai.networks.nets import resnet18

        self.size = size
        self.net = resnet18(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, bias_downsample=False,
                            num_classes=num_classes, widen_factor=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


class VCAMUnit(nn.Module):
    """Channel gate a = g(W V + b) for one stage; identity (a = 1) at initialisation with the scaled gate."""

    def __init__(self, num_viewpoints: int, channels: int, gate: str = "scaled", hidden: int = 0):
        super().__init__()
        if gate not in ("scaled", "sigmoid"):
            raise ValueError(f"unknown VCAM gate {gate!r}")
        self.gate = gate
        if hidden:
            self.mlp = nn.Sequential(nn.Linear(num_viewpoints, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, channels))
        else:
            self.mlp = nn.Sequential(nn.Linear(num_viewpoints, channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def weights(self, v: torch.Tensor) -> torch.Tensor:
        """a_i for a batch of viewpoint distributions V (B x K) -> B x C."""
        s = torch.sigmoid(self.mlp(v))
        return 2.0 * s if self.gate == "scaled" else s

    def forward(self, feat: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.weights(v.to(feat.dtype) if v.dtype != feat.dtype else v)
        return feat * a[:, :, None, None].to(feat.dtype), a
