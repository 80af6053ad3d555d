"""The Transformer with layer-wise multi-view learning (Wang et al., COLING 2020), and its baseline.

Choices (specs/translate.md §2, [reconstructed] where the paper is silent):
- Pre-norm (default) or post-norm Transformer, sinusoidal positions, SDPA attention, one joint vocabulary with
  tied input/output embeddings (init N(0, d^-1/2), pad row zero, scaled by sqrt(d)).
- Dropout where fairseq puts it (`transformer_legacy.base_architecture`, which `transformer_iwslt_de_en` and the
  R-Drop recipe use): the preset's `dropout` on the embeddings and on every sublayer's output before the residual
  sum; `attn_dropout` (on the attention probabilities) and `act_dropout` (after the FFN's ReLU) are 0, as fairseq's
  `attention_dropout`/`activation_dropout` defaults (config keys; checkpoints without them read 0). With no dropout
  on the probabilities, SDPA takes its fused kernels in training too (on the CPU the flash kernel instead of the
  math path: a `micro` training step of 1,024 tokens costs about a fifth less CPU than with both at 0.1, 0.115
  against 0.146–0.154 CPU-s measured on one thread). Until 2026-12-06 both were the preset's `dropout`: a
  departure from the recipe the spec names (specs/translate.md §2.3).
- Views: primary P = LN_final(H^N), auxiliary A = LN_final(H^M) (`aux_norm` shared | own | none); post-norm
  layers end in a LayerNorm already, so there the views are H^N and H^M as they are.
- Decoder sharing `share`: `cross` (default) shares embeddings, self-attention, FFN, their LayerNorms and the
  final LayerNorm, with an encoder–decoder attention sublayer (its LayerNorm and Q/K/V/O) per view; `all` one
  decoder for both views; `none` one decoder per view (embeddings and output projection still tied/shared).
- The two views run stacked on the batch axis (2B) through the shared decoder parts; only the cross-attention
  runs per half with that view's weights.
- `export_view` turns a multi-view state dict into the baseline's shape (views 1): the primary path has
  exactly the baseline's keys and shapes, hence its FLOPs; `view="aux"` keeps the first M encoder layers.
- Decoding (`predict.py`) uses `encode` once, then `decode_step` with a KV cache: self-attention keys/values
  grow by one position per step, cross-attention keys/values are computed once per sentence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PRESETS: dict[str, dict] = {
    "micro": dict(d=64, heads=2, ffn=256, enc_layers=2, dec_layers=2, aux_layer=1, dropout=0.1),
    "tiny": dict(d=128, heads=4, ffn=512, enc_layers=4, dec_layers=3, aux_layer=2, dropout=0.1),
    "iwslt": dict(d=512, heads=4, ffn=1024, enc_layers=6, dec_layers=6, aux_layer=3, dropout=0.3),
    "base": dict(d=512, heads=8, ffn=2048, enc_layers=6, dec_layers=6, aux_layer=3, dropout=0.1),
    "big": dict(d=1024, heads=16, ffn=4096, enc_layers=6, dec_layers=6, aux_layer=3, dropout=0.3),
    "deep": dict(d=512, heads=8, ffn=2048, enc_layers=24, dec_layers=6, aux_layer=12, dropout=0.1),
}


def model_config(arch: str, vocab: int, *, views: int = 2, aux_layer: int | None = None, share: str = "cross",
                 aux_norm: str = "shared", norm: str = "pre", max_positions: int = 1024) -> dict:
    """The plain-dict model configuration stored in checkpoints."""
    cfg = dict(PRESETS[arch])
    if aux_layer:
        cfg["aux_layer"] = int(aux_layer)
    cfg.update(vocab=int(vocab), views=int(views), share=share, aux_norm=aux_norm, norm=norm,
               max_positions=int(max_positions), attn_dropout=0.0, act_dropout=0.0)
    return cfg


def sinusoids(n: int, d: int) -> Tensor:
    """Sinusoidal position encodings [n, d] (Vaswani et al. 2017)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float32)
    ang = pos / torch.pow(10000.0, i / d)
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(ang)
    out[:, 1::2] = torch.cos(ang[:, : d // 2])
    return out


class Attention(nn.Module):
    """Multi-head attention with separate Q/K/V/O projections over SDPA."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.dh, self.p = heads, d // heads, dropout
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def split(self, x: Tensor) -> Tensor:
        """[B, T, d] → [B, h, T, dh]."""
        return x.view(x.shape[0], x.shape[1], self.h, self.dh).transpose(1, 2)

    def kv(self, mem: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of a memory (cached by the decoder for cross-attention)."""
        return self.split(self.k(mem)), self.split(self.v(mem))

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        q = self.split(self.q(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.p if self.training else 0.0)
        return self.o(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FFN(nn.Module):
    """Position-wise feed-forward block (ReLU)."""

    def __init__(self, d: int, ffn: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """Self-attention + FFN, pre- or post-norm."""

    def __init__(self, c: dict):
        super().__init__()
        self.pre = c["norm"] == "pre"
        self.attn, self.ln1 = Attention(c["d"], c["heads"], c.get("attn_dropout", 0.0)), nn.LayerNorm(c["d"])
        self.ffn, self.ln2 = FFN(c["d"], c["ffn"], c.get("act_dropout", 0.0)), nn.LayerNorm(c["d"])
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.pre:
            h = self.ln1(x)
            x = x + self.drop(self.attn(h, *self.attn.kv(h), mask))
            return x + self.drop(self.ffn(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attn(x, *self.attn.kv(x), mask)))
        return self.ln2(x + self.drop(self.ffn(x)))


class CrossAttention(nn.Module):
    """The encoder–decoder attention sublayer: its LayerNorm and Q/K/V/O (one per view with share=cross)."""

    def __init__(self, c: dict):
        super().__init__()
        self.ln, self.attn = nn.LayerNorm(c["d"]), Attention(c["d"], c["heads"], c.get("attn_dropout", 0.0))


class DecoderLayer(nn.Module):
    """Self-attention (shared), cross-attention (`n_cross` of them), FFN (shared)."""

    def __init__(self, c: dict, n_cross: int):
        super().__init__()
        self.pre = c["norm"] == "pre"
        self.attn, self.ln1 = Attention(c["d"], c["heads"], c.get("attn_dropout", 0.0)), nn.LayerNorm(c["d"])
        self.cross = nn.ModuleList(CrossAttention(c) for _ in range(n_cross))
        self.ffn, self.ln3 = FFN(c["d"], c["ffn"], c.get("act_dropout", 0.0)), nn.LayerNorm(c["d"])
        self.drop = nn.Dropout(c["dropout"])

    def _self(self, h: Tensor, cache: dict | None, causal: bool) -> Tensor:
        k, v = self.attn.kv(h)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        return self.attn(h, k, v, causal=causal and h.shape[1] > 1)

    def _cross(self, h: Tensor, mems: list[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
        """Cross-attention; with several memories the batch is split into equal parts, one per view."""
        parts = h.chunk(len(mems), 0) if len(mems) > 1 else (h,)
        outs = []
        for part, (ci, (k, v), mask) in zip(parts, mems):
            x = part
            sub = self.cross[ci]
            if self.pre:
                outs.append(x + self.drop(sub.attn(sub.ln(x), k, v, mask)))
            else:
                outs.append(sub.ln(x + self.drop(sub.attn(x, k, v, mask))))
        return torch.cat(outs, 0) if len(outs) > 1 else outs[0]

    def forward(self, x: Tensor, mems, cache: dict | None = None, causal: bool = True) -> Tensor:
        if self.pre:
            x = x + self.drop(self._self(self.ln1(x), cache, causal))
            x = self._cross(x, mems)
            return x + self.drop(self.ffn(self.ln3(x)))
        x = self.ln1(x + self.drop(self._self(x, cache, causal)))
        x = self._cross(x, mems)
        return self.ln3(x + self.drop(self.ffn(x)))


class Decoder(nn.Module):
    """A stack of decoder layers and the final LayerNorm (pre-norm only)."""

    def __init__(self, c: dict, n_cross: int):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(c, n_cross) for _ in range(c["dec_layers"]))
        self.ln = nn.LayerNorm(c["d"]) if c["norm"] == "pre" else nn.Identity()


class Translator(nn.Module):
    """Encoder, one or two views, a partially shared decoder, tied output projection."""

    def __init__(self, c: dict):
        super().__init__()
        self.c = dict(c)
        d, views, share = c["d"], c["views"], c["share"]
        if not 1 <= c["aux_layer"] < c["enc_layers"] and views > 1:
            raise ValueError("aux_layer must lie in 1..enc_layers-1")
        self.embed = nn.Embedding(c["vocab"], d, padding_idx=0)
        nn.init.normal_(self.embed.weight, 0.0, d ** -0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.register_buffer("pos", sinusoids(c["max_positions"], d), persistent=False)
        self.drop = nn.Dropout(c["dropout"])
        self.enc = nn.ModuleList(EncoderLayer(c) for _ in range(c["enc_layers"]))
        self.enc_ln = nn.LayerNorm(d) if c["norm"] == "pre" and c.get("final_norm", True) else nn.Identity()
        if views > 1 and c["aux_norm"] == "own" and c["norm"] == "pre":
            self.aux_ln = nn.LayerNorm(d)
        n_dec = views if (views > 1 and share == "none") else 1
        n_cross = views if (views > 1 and share == "cross") else 1
        self.dec = nn.ModuleList(Decoder(c, n_cross) for _ in range(n_dec))

    # ---- pieces --------------------------------------------------------------------------------------
    def _embed(self, ids: Tensor, start: int = 0) -> Tensor:
        x = self.embed(ids) * math.sqrt(self.c["d"])
        return self.drop(x + self.pos[start: start + ids.shape[1]].to(x.dtype))

    def encode(self, src: Tensor, views: int | None = None) -> tuple[list[Tensor], Tensor]:
        """The view memories [primary, aux...] and the key mask [B, 1, 1, S] (True: attend)."""
        views = self.c["views"] if views is None else views
        mask = (src != 0)[:, None, None, :]
        x = self._embed(src)
        aux = None
        for i, layer in enumerate(self.enc, 1):
            x = layer(x, mask)
            if views > 1 and i == self.c["aux_layer"]:
                aux = x
        out = [self.enc_ln(x)]
        if views > 1:
            norm = self.c["aux_norm"]
            out.append(self.aux_ln(aux) if hasattr(self, "aux_ln") else aux if norm == "none" else self.enc_ln(aux))
        return out, mask

    def _route(self, v: int) -> tuple[int, int]:
        """(decoder index, cross-attention index) of view v."""
        share = self.c["share"]
        if self.c["views"] == 1 or share == "all":
            return 0, 0
        return (v, 0) if share == "none" else (0, v)

    def logits(self, h: Tensor) -> Tensor:
        """Tied output projection."""
        return h @ self.embed.weight.t()

    def forward(self, src: Tensor, tgt_in: Tensor, views: int | None = None) -> list[Tensor]:
        """Teacher-forced logits of every view, [B, T, V] each: [primary, aux...]; `views=1`: the primary alone."""
        mems, mask = self.encode(src, views)
        n = len(mems)
        if n > 1 and self.c["share"] == "none":
            return [self._teacher(tgt_in, self.dec[v], [(0, mems[v])], mask)[0] for v in range(n)]
        x_in = tgt_in.repeat(n, 1) if n > 1 else tgt_in  # the views stacked on the batch axis
        return self._teacher(x_in, self.dec[0], [(self._route(v)[1], mems[v]) for v in range(n)], mask)

    def _teacher(self, tgt_in: Tensor, dec: Decoder, views: list[tuple[int, Tensor]], mask: Tensor) -> list[Tensor]:
        h = self._embed(tgt_in)
        for layer in dec.layers:
            h = layer(h, [(ci, layer.cross[ci].attn.kv(mem), mask) for ci, mem in views])
        out = self.logits(dec.ln(h))
        return list(out.chunk(len(views), 0)) if len(views) > 1 else [out]

    # ---- incremental decoding (one view: the inference model) ---------------------------------------
    def start_cache(self, mem: Tensor, mask: Tensor, view: int = 0) -> dict:
        """Per-layer caches: cross-attention K/V computed once; self-attention K/V filled as decoding goes."""
        di, ci = self._route(view)
        layers = self.dec[di].layers
        return {"view": view, "mask": mask, "len": 0,
                "layers": [{"cross": layer.cross[ci].attn.kv(mem)} for layer in layers]}

    def reorder_cache(self, cache: dict, index: Tensor) -> dict:
        """Keep the cache rows `index` (beam search reordering)."""
        cache["mask"] = cache["mask"].index_select(0, index)
        for lc in cache["layers"]:
            lc["cross"] = tuple(t.index_select(0, index) for t in lc["cross"])
            for key in ("k", "v"):
                if key in lc:
                    lc[key] = lc[key].index_select(0, index)
        return cache

    def decode_step(self, tokens: Tensor, cache: dict | None, mem: Tensor | None = None,
                    mask: Tensor | None = None, view: int = 0) -> Tensor:
        """Log-probabilities [B, V] of the next token after `tokens` [B, t]. With a cache only the last token is
        run; without one (`mem`, `mask` given) the whole prefix is recomputed (the reference path)."""
        di, ci = self._route(view)
        dec = self.dec[di]
        if cache is not None:
            start = cache["len"]
            h = self._embed(tokens[:, start:], start)
            for layer, lc in zip(dec.layers, cache["layers"]):
                ms = [(ci, lc["cross"], cache["mask"])]
                h = layer(h, ms, cache=lc, causal=True)
            cache["len"] = tokens.shape[1]
        else:
            h = self._embed(tokens)
            for layer in dec.layers:
                h = layer(h, [(ci, layer.cross[ci].attn.kv(mem), mask)])
        return F.log_softmax(self.logits(dec.ln(h[:, -1])).float(), -1)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def export_view(config: dict, state: dict, view: str = "primary") -> tuple[dict, dict]:
    """A baseline-shaped (views 1) configuration and state dict decoding from one view of a multi-view model.
    The primary export has exactly the baseline's keys and shapes; `aux` keeps encoder layers 1..M and puts the
    auxiliary view's norm in the final LayerNorm's place."""
    c = dict(config)
    views, share, m = c["views"], c["share"], c["aux_layer"]
    if views == 1:
        if view != "primary":
            raise ValueError("a 1-view model has no auxiliary view")
        return c, dict(state)
    v = 0 if view == "primary" else 1
    out = {}
    for k, t in state.items():
        if k.startswith("aux_ln."):
            continue
        if k.startswith("dec."):
            parts = k.split(".")
            if share == "none":
                if int(parts[1]) != v:
                    continue
                parts[1] = "0"
            if share == "cross" and len(parts) > 4 and parts[4] == "cross":
                if int(parts[5]) != v:
                    continue
                parts[5] = "0"
            k = ".".join(parts)
        if v == 1 and k.startswith("enc."):
            if int(k.split(".")[1]) >= m:
                continue
        out[k] = t
    if v == 1:
        c["enc_layers"] = m
        if c["aux_norm"] == "own" and "aux_ln.weight" in state:
            out["enc_ln.weight"], out["enc_ln.bias"] = state["aux_ln.weight"], state["aux_ln.bias"]
        elif c["aux_norm"] == "none":
            out.pop("enc_ln.weight", None)
            out.pop("enc_ln.bias", None)
            c["final_norm"] = False
    c.update(views=1, share="cross", aux_norm="shared")
    c["aux_layer"] = max(1, min(c["aux_layer"], c["enc_layers"] - 1))
    return c, out
