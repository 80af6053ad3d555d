"""The peers' side of the race (spec §7): the SMSR-style sparse form (Wang et al., "Exploring Sparsity in Image
Super-Resolution for Efficient Inference", CVPR 2021: gather the active pixels' im2col columns and multiply by the
weight matrix), written for one gated residual block of two 3x3 convs. The other peer, `dense`, is the same
network with the masks ignored (`exec_="dense"`), timed in `bench.py`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _sparse_conv(x: Tensor, conv: torch.nn.Conv2d, flat_idx: Tensor) -> Tensor:
    """conv (3x3, padding 1, stride 1) evaluated at the flat positions `flat_idx` of (B*H*W) only: (n, C_out)."""
    B, C, H, W = x.shape
    cols = F.unfold(x, conv.kernel_size, padding=conv.padding)            # (B, C*k*k, H*W)
    cols = cols.transpose(1, 2).reshape(B * H * W, -1)[flat_idx]          # (n, C*k*k)
    out = cols @ conv.weight.reshape(conv.out_channels, -1).t()
    return out + conv.bias if conv.bias is not None else out


def unfold_gemm_block(x: Tensor, mask: Tensor, conv1, mid, conv2, post, act) -> Tensor:
    """y = act(x + M * post(conv2(mid(conv1(x))))) with both convs as gathered im2col GEMMs: conv1 at
    dilate(M), conv2 at M (the peer sparse form)."""
    B, C, H, W = x.shape
    dil = F.max_pool2d(mask, 3, 1, 1).flatten()
    i1 = dil.nonzero().squeeze(1)
    i2 = mask.flatten().nonzero().squeeze(1)
    h1 = _sparse_conv(x, conv1, i1)                                        # (n1, C')
    h = torch.zeros(B * H * W, conv1.out_channels, device=x.device, dtype=h1.dtype)
    h[i1] = h1
    h = h.view(B, H, W, -1).permute(0, 3, 1, 2)
    h = mid(h) * dil.view(B, 1, H, W)                                      # mid of BN shifts zeros: keep them 0
    f = _post_rows(post, _sparse_conv(h, conv2, i2))
    out = x.permute(0, 2, 3, 1).reshape(B * H * W, C).clone()
    out[i2] = act(out[i2] + f)
    return out.view(B, H, W, C).permute(0, 3, 1, 2)


def _post_rows(post, rows: Tensor) -> Tensor:
    """Apply a per-channel module (BN in eval mode, identity) to (n, C) rows."""
    if rows.shape[0] == 0:
        return rows
    return post(rows.t()[None, :, :, None])[0, :, :, 0].t()
