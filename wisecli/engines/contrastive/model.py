"""The MoCo v2 model with CLIM's extra positives (spec §2.1–§2.5): query and momentum encoders, the queue
with its image indices, the fp16 embedding bank and the positive table, all buffers of one `nn.Module`, so
`runtime.trainer.fit`'s `last.pt` saves and restores them and `--resume` rebuilds the same positives.

MoCo: He, Fan, Wu, Xie, Girshick, CVPR 2020; MoCo v2 (MLP head, τ = 0.2, blur): Chen et al., arXiv 2003.04297.
CLIM: Li, Zhang, Xiong, BMVC 2021 (arXiv 2011.02697).

Choices where the spec is silent [reconstructed]:
- Backbones come from `wisecli.nn.build` (its stem rule: 3×3 stride-1 stem, no max-pool up to 64 px); the
  classifier layer (`fc` of MONAI ResNets, `fc2` of small-cnn/cnn-32) is replaced by the identity, so the
  backbone output is the pooled feature (512·width for ResNet-18, 2048·width for ResNet-50). `arch="auto"`:
  monai-resnet18 up to 64 px, monai-resnet50 above.
- Views are made inside `forward` on the batch's device from uint8 images: random resized crop (0.2–1,
  3/4–4/3), flip, colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2 (3 channels only), blur p 0.5 with
  σ ∈ [0.1, 2]·S/224 (the 224-px range scaled to the image size S, so a 16-px digit is not wiped out), then
  standardised with the training set's channel means/stds (buffers).
- The mixed query mixes the anchor's first query view with a view of j; multi-resolution views are crops of
  the same scale range resized to each resolution, one forward per resolution.
- The fallback j = i (empty P(i), or before `clim_start`) keeps every term: the positive key is then the
  anchor's own bank entry (`bank`) or a fresh key of a third view of i (`fresh`).
- `bank_view` [choice, an addition]: `key` (the spec: v_i is the key of i's training view, written as it
  passes, no extra pass) or `eval` (at the start of each selecting epoch the bank is rewritten from one
  eval-view pass of the key encoder in eval mode: N extra forwards). On small images and short runs the keys
  of heavily cropped training views carry little class information (sklearn digits at 16 px, 6 epochs: plain
  top-1 bank neighbours agree in label at chance level), so there the eval view is what makes positives mean
  anything; at ImageNet scale `key` is the paper's cost-free bank.
- Shuffling BN (MoCo §3.3, He et al. 2020): BN statistics computed over the very batch of query and key
  views let the model cheat the pretext task (intra-batch communication), so the key batch is shuffled
  before the key encoder and unshuffled after. `shuffle_bn=True` (default): under DDP (more than one rank)
  the key batch is all-gathered, permuted by one permutation drawn on rank 0 and broadcast, each rank
  encodes its slice and the keys are gathered back in the original order (MoCo's `_batch_shuffle_ddp` /
  `_batch_unshuffle_ddp`); every rank's BN then sees a different mix of images for keys than for queries.
  On one process [choice, after MoCo's single-GPU CIFAR demo's SplitBatchNorm]: `bn_splits` = S > 1 replaces
  every BatchNorm2d of both encoders by `SplitBatchNorm2d`, which normalises each of S contiguous sub-batches
  with its own statistics (running statistics: the mean over the sub-batches), and the key batch is permuted
  and unpermuted around the key encoder, so each key is normalised among other images than its query. With
  `bn_splits` = 1 on one process shuffling would change nothing (BN over the whole batch is permutation
  invariant) and is skipped: key BN is then plain, as the spec asks for one device. In eval mode a split BN is a
  plain BN (same state-dict keys: checkpoints load either way). The batch must be divisible by S (exit 2).
- Under DDP keys, indices and labels are all-gathered so the queue and bank agree on every rank.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wisecli.runtime import augment as A

from .algorithm import kmeans, positive_purity, sample_positive, select_positives
from .loss import info_nce, mixed_nce, queue_mask

BACKBONES = ("auto", "monai-resnet18", "monai-resnet34", "monai-resnet50")


def pick_arch(arch: str, image_size: int) -> str:
    """`auto` → monai-resnet18 up to 64 px, monai-resnet50 above."""
    if arch == "auto":
        return "monai-resnet18" if image_size <= 64 else "monai-resnet50"
    return arch


def make_backbone(arch: str, in_channels: int, image_size: int, width: float = 1.0) -> tuple[nn.Module, int]:
    """(backbone returning pooled features (B, D), D) from `wisecli.nn.build` with its classifier removed."""
    from wisecli.nn.zoo import build

    net = build(arch, in_channels=in_channels, num_classes=1, image_size=image_size, width=width)
    for name in ("fc", "fc2"):
        if isinstance(getattr(net, name, None), nn.Linear):
            setattr(net, name, nn.Identity())
            break
    else:  # pragma: no cover - BACKBONES only lists nets with fc/fc2
        raise ValueError(f"no classifier layer to remove in {arch}")
    was = net.training
    net.eval()
    with torch.no_grad():
        dim = int(net(torch.zeros(2, in_channels, image_size, image_size)).shape[1])
    net.train(was)
    return net, dim


class Encoder(nn.Module):
    """Backbone + MoCo v2 projection head D → D → out (ReLU)."""

    def __init__(self, arch: str, in_channels: int, image_size: int, width: float, out_dim: int):
        super().__init__()
        self.backbone, self.feat_dim = make_backbone(arch, in_channels, image_size, width)
        d = self.feat_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.head(self.backbone(x)), dim=1)


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training mode, normalises each of `num_splits` contiguous sub-batches with its own
    batch statistics (a one-process stand-in for per-GPU BN, MoCo's CIFAR demo); running statistics are
    updated per sub-batch and averaged over them; eval mode is a plain BatchNorm2d."""

    def __init__(self, num_features: int, num_splits: int = 1, **kw):
        super().__init__(num_features, **kw)
        self.num_splits = int(num_splits)

    def forward(self, x: Tensor) -> Tensor:
        s = self.num_splits
        if not self.training or s <= 1:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % s:
            raise ValueError(f"batch {n} is not divisible by bn_splits {s}")
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        rm, rv = self.running_mean.repeat(s), self.running_var.repeat(s)
        # (n, c, h, w) -> (n/s, s*c, h, w) with sub-batch g = rows g*n/s .. (g+1)*n/s - 1 as channels g*c .. (g+1)*c - 1
        xs = x.reshape(s, n // s, c, h, w).transpose(0, 1).reshape(n // s, s * c, h, w)  # reshape: channels_last too
        out = F.batch_norm(xs, rm, rv, self.weight.repeat(s), self.bias.repeat(s), True, mom, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(rm.view(s, c).mean(0))
            self.running_var.copy_(rv.view(s, c).mean(0))
        return out.reshape(n // s, s, c, h, w).transpose(0, 1).reshape(n, c, h, w)


def use_split_bn(module: nn.Module, splits: int) -> nn.Module:
    """Replace every BatchNorm2d of `module` by a SplitBatchNorm2d with `splits` sub-batches (state kept)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm2d):
            new = SplitBatchNorm2d(child.num_features, splits, eps=child.eps, momentum=child.momentum,
                                   affine=child.affine, track_running_stats=child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new.to(child.weight.device if child.weight is not None else "cpu"))
        else:
            use_split_bn(child, splits)
    return module


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _gather(t: Tensor) -> Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class MoCo(nn.Module):
    """Query/key encoders, queue (K, dim) + queue_idx, bank (N, dim) fp16, table (N, k) int32 (see module)."""

    def __init__(self, *, arch: str, in_channels: int, image_size: int, n_bank: int, queue: int, k: int = 10,
                 width: float = 1.0, dim: int = 128, tau: float = 0.2, momentum: float = 0.99,
                 select: str = "center", mix: str = "cutmix", resolutions: tuple = (), positive_key: str = "bank",
                 symmetric: bool = False, same_cluster: bool = True, bank_view: str = "key", w_mix: float = 1.0, w_mr: float = 1.0,
                 mean=None, std=None, shuffle_bn: bool = True, bn_splits: int = 1):
        super().__init__()
        self.cfg = dict(arch=arch, in_channels=in_channels, image_size=image_size, n_bank=n_bank, queue=queue, k=k,
                        width=width, dim=dim, tau=tau, momentum=momentum, select=select, mix=mix,
                        resolutions=list(resolutions), positive_key=positive_key, symmetric=symmetric,
                        same_cluster=same_cluster, bank_view=bank_view, w_mix=w_mix, w_mr=w_mr,
                        shuffle_bn=bool(shuffle_bn), bn_splits=int(bn_splits))
        self.encoder_q = Encoder(arch, in_channels, image_size, width, dim)
        if int(bn_splits) > 1:
            use_split_bn(self.encoder_q, int(bn_splits))
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad_(False)
        g = torch.Generator().manual_seed(12345)
        self.register_buffer("queue", F.normalize(torch.randn(queue, dim, generator=g), dim=1))
        self.register_buffer("queue_idx", torch.full((queue,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank", torch.zeros(n_bank, dim, dtype=torch.float16))
        self.register_buffer("table", torch.full((n_bank, k), -1, dtype=torch.int32))
        c = in_channels
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.5] * c, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std if std is not None else [0.25] * c, dtype=torch.float32))
        self.diag: dict[str, float] = {}

    # ---------------------------------------------------------------- views and features
    def standardise(self, x: Tensor) -> Tensor:
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def view(self, x: Tensor, size: int | None = None) -> Tensor:
        """One MoCo v2 view of uint8 images (B, C, H, W), resized to `size` (default the image size)."""
        s = int(size or self.cfg["image_size"])
        v = A.random_resized_crop(x, s)
        v = A.random_flip(v)
        v = A.color_jitter(v, 0.4, 0.4, 0.4, 0.1, p=0.8)
        v = A.grayscale(v, p=0.2)
        v = A.gaussian_blur(v, sigma=(0.1 * s / 224, 2.0 * s / 224), p=0.5)
        return self.standardise(v)

    def eval_view(self, x: Tensor) -> Tensor:
        """The evaluation view: the image as read (already at the run's size), standardised."""
        return self.standardise(A.to_float(x))

    @torch.no_grad()
    def features(self, x: Tensor, layer: str = "backbone") -> Tensor:
        """Frozen features of uint8 images through the query encoder (eval mode by the caller)."""
        v = self.eval_view(x)
        if layer == "projection":
            return self.encoder_q(v)
        return self.encoder_q.backbone(v)

    # ---------------------------------------------------------------- keys with shuffling BN
    @torch.no_grad()
    def keys(self, v: Tensor, perm: Tensor | None = None) -> Tensor:
        """Key-encoder outputs of the views v (B, ...) in v's order, through shuffling BN (module docstring).
        `perm`: the permutation of the (gathered) batch, drawn here when None (on rank 0 under DDP)."""
        import torch.distributed as dist

        world = _world()
        if not self.cfg.get("shuffle_bn", True) or (world == 1 and int(self.cfg.get("bn_splits", 1)) <= 1):
            return self.encoder_k(v)
        if world == 1:
            if perm is None:
                perm = torch.randperm(v.shape[0], device=v.device)
            k = self.encoder_k(v[perm])
            return k[torch.argsort(perm)]
        b = v.shape[0]
        allv = _gather(v)
        if perm is None:
            perm = torch.randperm(allv.shape[0], device=allv.device)
            dist.broadcast(perm, src=0)
        perm = perm.to(allv.device)
        r = dist.get_rank()
        k_local = self.encoder_k(allv[perm[r * b:(r + 1) * b]])
        k_all = _gather(k_local)                      # keys of allv[perm]
        return k_all[torch.argsort(perm)][r * b:(r + 1) * b]

    # ---------------------------------------------------------------- MoCo bookkeeping
    @torch.no_grad()
    def momentum_update(self) -> None:
        m = float(self.cfg["momentum"])
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.mul_(m).add_(pq.detach(), alpha=1 - m)
        for bq, bk in zip(self.encoder_q.buffers(), self.encoder_k.buffers()):
            bk.copy_(bq)

    @torch.no_grad()
    def enqueue(self, keys: Tensor, idx: Tensor) -> None:
        keys, idx = _gather(keys.float()), _gather(idx.long())
        kq = self.queue.shape[0]
        pos = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % kq
        self.queue[pos] = keys.to(self.queue.dtype)
        self.queue_idx[pos] = idx
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % kq)
        self.bank[idx] = keys.to(self.bank.dtype)

    # ---------------------------------------------------------------- positives per epoch
    @torch.no_grad()
    def refresh_bank(self, X: Tensor, batch: int = 512) -> None:
        """`bank_view="eval"`: rewrite the bank with the key encoder's embeddings of the eval views of all
        images X (uint8, any device), key encoder in eval mode."""
        was = self.encoder_k.training
        self.encoder_k.eval()
        dev = self.bank.device
        for s in range(0, X.shape[0], batch):
            xb = X[s:s + batch].to(dev, non_blocking=True)
            self.bank[s:s + xb.shape[0]] = self.encoder_k(self.eval_view(xb)).to(self.bank.dtype)
        self.encoder_k.train(was)

    @torch.no_grad()
    def prepare_epoch(self, active: bool, clusters: int, seed: int, epoch: int, labels: Tensor | None = None,
                      X: Tensor | None = None) -> None:
        """Rebuild the positive table from the bank (spherical k-means + selection) when `active`, else clear
        it; sets the epoch's diagnostics `self.diag`. With `bank_view="eval"` and images X the bank is first
        refreshed from eval views."""
        sel = self.cfg["select"]
        nan = float("nan")
        self.diag = {"pos_nonempty": 0.0, "pos_mean": 0.0, "cluster_min": nan, "cluster_median": nan,
                     "cluster_max": nan}
        if labels is not None:
            self.diag.update(purity=nan, purity_nn=nan, purity_knn=nan, purity_nn_all=nan)
        if not active or sel == "none":
            self.table.fill_(-1)
            return
        if self.cfg.get("bank_view") == "eval" and X is not None:
            self.refresh_bank(X)
        v = self.bank.float()
        g = torch.Generator(device=v.device).manual_seed(int(seed) * 100003 + int(epoch))
        cl = kmeans(v, int(clusters), mode="spherical", max_iter=20, tol=1e-3, generator=g)
        table, nbr = select_positives(v, int(self.cfg["k"]), mode=sel, clusters=cl,
                                      same_cluster=bool(self.cfg["same_cluster"]))
        self.table.copy_(table)
        count = (table >= 0).sum(1)
        sizes = torch.bincount(cl["labels"], minlength=int(clusters)).float()
        self.diag.update(pos_nonempty=float((count > 0).float().mean()), pos_mean=float(count.float().mean()),
                         cluster_min=float(sizes.min()), cluster_median=float(sizes.median()),
                         cluster_max=float(sizes.max()))
        if labels is not None:
            pur = positive_purity(table, nbr, labels)
            self.diag.update({k: pur[k] for k in ("purity", "purity_nn", "purity_knn", "purity_nn_all")})

    def sample_positives(self, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return sample_positive(self.table, idx.to(self.table.device), generator)

    # ---------------------------------------------------------------- one training step
    def forward(self, batch: dict) -> tuple[Tensor, dict]:
        """Loss of one batch {"x", "xp" (uint8 anchors and positives), "idx", "pidx"}: (loss, metrics)."""
        cfg = self.cfg
        x, xp, idx, pidx = batch["x"], batch["xp"], batch["idx"], batch["pidx"]
        tau = float(cfg["tau"])
        with torch.no_grad():
            v1, v2 = self.view(x), self.view(x)
            self.momentum_update()
            k_i = self.keys(v2)
        q = self.encoder_q(v1)
        mask = queue_mask(self.queue_idx, idx, pidx)
        queue = self.queue.clone()
        loss_inst = info_nce(q, k_i, queue, tau, mask).mean()
        total = loss_inst
        zero = loss_inst.detach() * 0
        loss_mix, loss_mr = zero, zero
        use_pos = cfg["select"] != "none" or cfg["mix"] != "none"
        if use_pos:
            with torch.no_grad():
                vp = self.view(xp)
                if cfg["positive_key"] == "fresh":
                    k_j = self.keys(self.view(xp))
                else:
                    # the bank entry of j; an anchor without positive (j = i) uses its own bank entry, and a
                    # still empty bank row (first epoch) its fresh key
                    k_j = self.bank[pidx].float()
                    empty = k_j.abs().sum(1) == 0
                    k_j = torch.where(empty[:, None], k_i, k_j)
            if cfg["mix"] == "none":
                loss_mix = info_nce(q, k_j, queue, tau, mask).mean()
            else:
                if cfg["mix"] == "cutmix":
                    xm, lam = A.cutmix(v1, vp)
                else:
                    lam = torch.distributions.Beta(1.0, 1.0).sample((x.shape[0],)).to(x.device)
                    xm = A.mixup(v1, vp, lam)
                loss_mix = mixed_nce(self.encoder_q(xm), k_i, k_j, lam, queue, tau, mask).mean()
            total = total + float(cfg["w_mix"]) * loss_mix
        if cfg["resolutions"]:
            terms = [info_nce(self.encoder_q(self.view(x, r)), k_i, queue, tau, mask).mean() for r in cfg["resolutions"]]
            loss_mr = torch.stack(terms).mean()
            total = total + float(cfg["w_mr"]) * loss_mr
        if cfg["symmetric"]:
            with torch.no_grad():
                k_1 = self.keys(v1)
            total = total + info_nce(self.encoder_q(v2), k_1, queue, tau, mask).mean()
        self.enqueue(k_i.detach(), idx)
        dev = loss_inst.device
        metrics = {"loss_inst": loss_inst.detach(), "loss_mix": loss_mix.detach(), "loss_mr": loss_mr.detach(),
                   "pos_share": (pidx != idx).float().mean()}
        metrics.update({k: torch.tensor(v, device=dev) for k, v in self.diag.items()})
        return total, metrics
