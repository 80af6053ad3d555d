"""RISE and MC-RISE saliency on the device (spec §2).

- RISE: Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models", BMVC 2018
  (public code eclique/RISE `explanations.py`).
- MC-RISE: Hatakeyama, Sakuma, Konishi, Suenaga, "Visualizing Color-wise Saliency of Black-Box Image
  Classification Models", ACCV 2020 (arXiv 2010.02468).

Masks (§2.1). A grid G in {0,1}^{s x s} is up-sampled bilinearly to U = (s+1)·cell (scikit-image `resize`,
order 1, mode `reflect` = scipy's `mirror`, no anti-aliasing) and cropped H x W at a random offset
(dy, dx). Both steps are linear in G, so M = A_y[dy] · G · A_x[dx]^T with A the (U x s) table of 1-D
interpolation weights; a chunk of masks is two batched matmuls on the device. Masks are made chunk by chunk
(CHUNK = 256) from a CPU generator seeded with (seed, chunk index) and consumed at once: a map does not depend
on the forward batch, the device or the number of images explained together, and every image of a run sees
the same masks (as in the reference).

Estimators (§2.2, §2.3), with f the class probability of the perturbed image:
- RISE: S = 1/(N p1) Σ f_i M_i; `debias`: S = 1/N Σ f_i (M_i − p1)/(p1(1−p1)).
- MC-RISE: cells kept with probability q, else painted with colour k (uniform): one uniform number u per cell,
  kept when u < q, else k = floor((u − q)·K/(1 − q)). Perturbed image in pixel space I⊙M_0 + Σ_k M_k c_k; since
  the model's normalisation is affine per channel it is composed in the model's input space with the colours
  normalised the same way (equal to normalising the pixel-space composite). S_k = K/(1−q)·1/N Σ f M_k −
  1/q·1/N Σ f M_0 for every q (not the XAITK weighting, which is right only at q = 0.5; §2.5).
Accumulation is fp32, one einsum per chunk over the selected classes of every image of the group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

CHUNK = 256


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    """scipy's `mirror` boundary (scikit-image `reflect`): ... 2 1 | 0 1 2 ... n-1 | n-2 ..."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i)


def interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of scikit-image's order-1 `resize` along one axis (pixel-centre mapping
    x = (o + 0.5)·n_in/n_out − 0.5, mirror boundary)."""
    o = np.arange(n_out, dtype=np.float64)
    x = (o + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(x).astype(np.int64)
    frac = x - i0
    A = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(A, (np.arange(n_out), _mirror(i0, n_in)), 1.0 - frac)
    np.add.at(A, (np.arange(n_out), _mirror(i0 + 1, n_in)), frac)
    return A


@dataclass
class MaskSpec:
    """The masks of one run: image size (h, w), grid s, keep probability (p1 or q), number N, colours K
    (0: RISE), seed."""

    h: int
    w: int
    grid: int
    keep: float
    n: int
    colors: int = 0
    seed: int = 0

    @property
    def cell(self) -> tuple[int, int]:
        return math.ceil(self.h / self.grid), math.ceil(self.w / self.grid)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n / CHUNK)


class MaskGenerator:
    """Chunks of masks on `device`: `chunk(j)` -> (n_j, K+1 or 1, H, W) float32, channel 0 = M_0 (kept)."""

    def __init__(self, spec: MaskSpec, device):
        self.spec, self.device = spec, torch.device(device)
        ch, cw = spec.cell
        uy, ux = (spec.grid + 1) * ch, (spec.grid + 1) * cw
        ay = torch.from_numpy(interp_matrix(spec.grid, uy)).float()
        ax = torch.from_numpy(interp_matrix(spec.grid, ux)).float()
        # per offset the rows dy..dy+H-1: (cell_h, H, s) and (cell_w, W, s)
        self.ay = torch.stack([ay[d:d + spec.h] for d in range(ch)]).to(self.device)
        self.ax = torch.stack([ax[d:d + spec.w] for d in range(cw)]).to(self.device)

    def draws(self, j: int) -> tuple[Tensor, Tensor, Tensor]:
        """The random draws of chunk j on the CPU: (u (CHUNK, s, s) uniform, dy, dx), seeded by (seed, j)."""
        s = self.spec
        seed = int(np.random.SeedSequence([int(s.seed), int(j)]).generate_state(1)[0])
        g = torch.Generator().manual_seed(seed)
        u = torch.rand((CHUNK, s.grid, s.grid), generator=g, dtype=torch.float64)
        ch, cw = s.cell
        dy = torch.randint(0, ch, (CHUNK,), generator=g)
        dx = torch.randint(0, cw, (CHUNK,), generator=g)
        n = min(CHUNK, s.n - j * CHUNK)
        return u[:n], dy[:n], dx[:n]

    def grids(self, u: Tensor) -> Tensor:
        """(n, K+1, s, s) indicator grids (RISE: (n, 1, s, s) kept cells) from the uniforms."""
        s = self.spec
        if s.colors == 0:
            return (u < s.keep).float()[:, None]
        k = torch.floor((u - s.keep) * s.colors / (1.0 - s.keep)).clamp(0, s.colors - 1).long()
        k = torch.where(u < s.keep, torch.full_like(k, -1), k) + 1   # 0 = kept, 1..K = colour k
        return torch.nn.functional.one_hot(k, s.colors + 1).permute(0, 3, 1, 2).float()

    def chunk(self, j: int) -> Tensor:
        u, dy, dx = self.draws(j)
        g = self.grids(u).to(self.device)
        ay = self.ay[dy.to(self.device)][:, None]          # (n, 1, H, s)
        ax = self.ax[dx.to(self.device)][:, None]          # (n, 1, W, s)
        m = ay @ g @ ax.transpose(-1, -2)                 # (n, K+1, H, W)
        if self.spec.colors:
            m[:, 0] = 1.0 - m[:, 1:].sum(1)               # M_0 = 1 - Σ M_k exactly
        return m

    def __iter__(self):
        for j in range(self.spec.n_chunks):
            yield self.chunk(j)


def softmax_needed(out: Tensor) -> bool:
    """`--softmax auto`: the outputs are not probabilities (a negative, or a row not summing to 1 ± 1e-3)."""
    out = out.float()
    return bool((out < 0).any() or ((out.sum(-1) - 1).abs() > 1e-3).any())


def scores_of(out: Tensor, softmax) -> Tensor:
    """Class scores of raw outputs `out` (n, classes): softmax when `softmax` is True; a bool tensor (n,) decides
    row by row (the images of a group may differ under `--softmax auto`)."""
    out = out.float()
    if isinstance(softmax, Tensor):
        return torch.where(softmax.to(out.device)[:, None], torch.softmax(out, -1), out)
    return torch.softmax(out, -1) if softmax else out


@dataclass
class Estimate:
    """Saliency of a group of images: `maps` (B, K, C_sel, H, W) for MC-RISE, (B, 1, C_sel, H, W) for RISE,
    in probability units; `bad_chunk` per image the first chunk whose scores were not finite (-1 if none)."""

    maps: Tensor
    bad_chunk: list[int]


def estimate(forward, images: Tensor, targets: Tensor, spec: MaskSpec, *, colors: Tensor | None = None,
             fill: Tensor | None = None, debias: bool = False, softmax: bool = True, batch: int = 256,
             device=None, masks=None) -> Estimate:
    """RISE (colors None) or MC-RISE (colors (K, C) in the model's input space) of `images` (B, C, H, W) in the
    model's input space, for the classes `targets` (B, C_sel) long. `forward(x) -> (n, classes)` raw outputs;
    `fill` (B, C, H, W) the RISE substrate in input space (None: zeros = the mean colour). `masks`: an iterable of
    chunks (n, K+1 or 1, H, W) replacing the generated ones (hard masks in tests, masks from elsewhere).
    `softmax`: a bool for all images or a bool tensor (B,) per image.

    The B images share every chunk of masks (made once for the group) and every forward batch: the flat index
    t = b·n + i over (image b, mask i) is cut into batches of `batch`, so one forward holds the masks of several
    images; each image's scores land in its own row of the accumulator, and its map equals the map it gets alone
    up to float rounding of the batched forward."""
    device = images.device if device is None else torch.device(device)
    B, C, H, W = images.shape
    gen = MaskGenerator(spec, device) if masks is None else masks
    K = 0 if colors is None else len(colors)
    acc = torch.zeros(B, max(K, 1) + (1 if K else 0), targets.shape[1], H * W, device=device, dtype=torch.float32)
    fsum = torch.zeros(B, targets.shape[1], 1, device=device, dtype=torch.float32)
    bad = torch.full((B,), -1, device=device, dtype=torch.long)
    sm = softmax.to(device) if isinstance(softmax, Tensor) else None
    for j, m in enumerate(gen):
        n = m.shape[0]
        m = m.to(device)
        sc = torch.empty(B, n, targets.shape[1], device=device, dtype=torch.float32)
        flat = B * n
        for s0 in range(0, flat, batch):
            t = torch.arange(s0, min(flat, s0 + batch), device=device)
            b, i = t // n, t % n
            x = images[b]
            if K:
                mk = m[i]                                                       # (t, K+1, H, W)
                x = x * mk[:, :1] + torch.einsum("tkhw,kc->tchw", mk[:, 1:], colors)
            else:
                mk = m[i, :1]
                x = x * mk if fill is None else x * mk + fill[b] * (1 - mk)
            p = scores_of(forward(x), softmax if sm is None else sm[b])
            sc[b, i] = p.gather(1, targets[b]).float()
        finite = torch.isfinite(sc).flatten(1).all(1)                            # (B,)
        bad = torch.where((bad < 0) & ~finite, torch.full_like(bad, j), bad)
        acc += torch.einsum("bnc,nkp->bkcp", sc, m.reshape(n, m.shape[1], H * W))
        fsum += sc.sum(1)[..., None]
    N = spec.n
    if K:
        q = spec.keep
        maps = acc[:, 1:] * (K / ((1 - q) * N)) - acc[:, :1] * (1 / (q * N))
    elif debias:
        p1 = spec.keep
        maps = (acc - p1 * fsum[:, None]) / (N * p1 * (1 - p1))
    else:
        maps = acc / (N * spec.keep)
    return Estimate(maps.reshape(B, -1, targets.shape[1], H, W), [int(v) for v in bad.cpu()])

