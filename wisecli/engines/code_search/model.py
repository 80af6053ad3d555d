"""The COSEA encoder (Wang et al., "COSEA: Convolutional Code Search with Layer-wise Attention", arXiv 2010.09520;
the equations are reconstructed from the abstract, specs/code-search.md §2.2).

One encoder per side (code, query), same shape, one shared embedding table (`share_embeddings`):
- h_0 = dropout(embeddings); blocks l = 1..L: h_l = (h_{l-1} + GLU(Conv1d(h_{l-1}, 2d, k=3, dilation 2^{l-1})))·√0.5
  (the gated convolution of Dauphin et al. 2017), padding positions zeroed after each block;
- per layer l ∈ {0..L}, attention pooling over non-pad positions: a_{l,t} = softmax_t(u_lᵀ tanh(W_l h_{l,t} + b_l)),
  s_l = Σ_t a_{l,t} h_{l,t};
- layer-wise attention: β_l = softmax_l(gᵀ tanh(V s_l)); e = normalize(W_o Σ_l β_l s_l).
`attention="cross"` adds a query-dependent pooling for reranking: the code's layer-l pooling uses the query's s_l^q
as context, a_{l,t} ∝ exp(s_l^qᵀ W_l h_{l,t} / √d) (W_l starts at the identity), the rest as above.
`pool="max-last"`: max-pool of the last layer and W_o (the CodeSearchNet CNN baseline). The embedding does not
depend on the query, so a codebase is embedded once.
Initialisation (our choice): the query encoder starts as a copy of the code encoder's weights (trained apart from
then on), so at step 0 a query and a code that share tokens already score high; training adds what they do not
share.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SideEncoder(nn.Module):
    """Conv blocks + per-layer attention pooling + layer-wise attention for one side."""

    def __init__(self, embed: nn.Embedding, dim: int, layers: int, pool: str = "layerwise", dropout: float = 0.1,
                 kernel: int = 3):
        super().__init__()
        self.embed, self.pool, self.layers_n = embed, pool, layers
        self.drop = nn.Dropout(dropout)
        self.convs = nn.ModuleList(nn.Conv1d(dim, 2 * dim, kernel, dilation=2 ** l, padding=2 ** l * (kernel - 1) // 2)
                                   for l in range(layers))
        if pool == "layerwise":
            self.att_w = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers + 1))
            self.att_u = nn.Parameter(torch.randn(layers + 1, dim) / math.sqrt(dim))
            self.layer_v = nn.Linear(dim, dim, bias=False)
            self.layer_g = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.out = nn.Linear(dim, dim)

    def hidden(self, ids: Tensor) -> tuple[list[Tensor], Tensor]:
        """Every layer's states [B, T, d] (h_0..h_L) and the non-pad mask [B, T]."""
        mask = ids != 0
        m = mask.unsqueeze(-1).to(self.embed.weight.dtype)
        h = self.drop(self.embed(ids)) * m
        hs = [h]
        for conv in self.convs:
            c = conv(h.transpose(1, 2)).transpose(1, 2)
            h = (h + F.glu(c, dim=-1)) * math.sqrt(0.5) * m
            hs.append(h)
        return hs, mask

    def forward(self, ids: Tensor, return_weights: bool = False):
        """Unit embeddings [B, d] (and β [B, L+1] with `return_weights`)."""
        e, beta, _ = self.pooled(ids)
        return (e, beta) if return_weights else e

    def pooled(self, ids: Tensor, context: Tensor | None = None, cross_w: Tensor | None = None):
        """(unit embeddings [B, d], β [B, L+1] or None, layer summaries [B, L+1, d] or None). With `context`
        [B, L+1, d] (the query's summaries) and `cross_w` [L+1, d, d], layer l pools with
        a_{l,t} ∝ exp(context_lᵀ W_l h_{l,t}) (the `--attention cross` reranker)."""
        hs, mask = self.hidden(ids)
        if self.pool == "max-last":
            h = hs[-1].masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
            h = torch.where(mask.any(1, keepdim=True), h, torch.zeros_like(h))
            return F.normalize(self.out(h), dim=-1), None, None
        summaries = []
        empty = ~mask.any(1, keepdim=True)
        for l, h in enumerate(hs):
            if context is None:
                logit = (torch.tanh(self.att_w[l](h)) * self.att_u[l]).sum(-1)
            else:
                logit = torch.einsum("bd,de,bte->bt", context[:, l], cross_w[l], h) / math.sqrt(h.shape[-1])
            logit = logit.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)
            a = torch.softmax(logit.float(), dim=1).to(h.dtype)
            summaries.append((a.unsqueeze(-1) * h).sum(1))
        s = torch.stack(summaries, 1)                                     # [B, L+1, d]
        beta = torch.softmax((torch.tanh(self.layer_v(s)) * self.layer_g).sum(-1).float(), dim=1).to(s.dtype)
        e = F.normalize(self.out((beta.unsqueeze(-1) * s).sum(1)), dim=-1)
        return e, beta, s


class Cosea(nn.Module):
    """Code and query encoders in one module; `encode_code`, `encode_query` give unit vectors."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        d, L = int(cfg["dim"]), int(cfg["layers"])
        self.code_embed = nn.Embedding(int(cfg["vocab"]), d, padding_idx=0)
        self.query_embed = self.code_embed if cfg.get("share_embeddings", True) else \
            nn.Embedding(int(cfg["vocab"]), d, padding_idx=0)
        self.code = SideEncoder(self.code_embed, d, L, cfg.get("pool", "layerwise"), cfg.get("dropout", 0.1))
        self.query = SideEncoder(self.query_embed, d, L, cfg.get("pool", "layerwise"), cfg.get("dropout", 0.1))
        if cfg.get("attention", "self") == "cross" and cfg.get("pool", "layerwise") == "layerwise":
            self.cross_w = nn.Parameter(torch.eye(d).repeat(L + 1, 1, 1))
        own = {k: v for k, v in self.code.state_dict().items() if not k.startswith("embed.")}
        self.query.load_state_dict(own, strict=False)  # Siamese start: the query side begins as a copy

    def encode_code(self, ids: Tensor) -> Tensor:
        """[B, T] code ids → [B, d] unit vectors."""
        return self.code(ids)

    def encode_query(self, ids: Tensor) -> Tensor:
        """[B, T] query ids → [B, d] unit vectors."""
        return self.query(ids)

    def forward(self, q: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode_query(q), self.encode_code(c)

    def cross_score(self, q: Tensor, c: Tensor) -> Tensor:
        """[B] query-dependent scores of aligned pairs (q_i, c_i): the code's layer-l pooling attends with the
        query's layer-l summary as context (`--attention cross`; for reranking a bi-encoder's top K)."""
        if not hasattr(self, "cross_w"):
            raise ValueError("this model was trained without --attention cross")
        eq, _, sq = self.query.pooled(q)
        ec, _, _ = self.code.pooled(c, context=sq, cross_w=self.cross_w)
        return (eq * ec).sum(-1)


def pad_batch(seqs: list[list[int]], min_len: int = 1) -> Tensor:
    """Right-padded [B, T] long tensor (T at least `min_len`; an empty sequence stays all padding)."""
    T = max([min_len] + [len(s) for s in seqs])
    out = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


@torch.no_grad()
def embed(encoder, seqs: list[list[int]], device, batch: int = 512) -> Tensor:
    """Unit embeddings of id sequences, length-sorted batches, back in input order (float32, on `device`)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = None
    for i in range(0, len(order), batch):
        idx = order[i: i + batch]
        e = encoder(pad_batch([seqs[j] for j in idx]).to(device)).float()
        if out is None:
            out = torch.empty(len(seqs), e.shape[1], device=device)
        out[torch.as_tensor(idx, device=device)] = e
    if out is None:
        return torch.empty(0, 0, device=device)
    return out
