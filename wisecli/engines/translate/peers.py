"""The peers' side of `benchmark`: a same-size `torch.nn.Transformer` decoded with beam 5 and no cache (every
step re-runs the decoder over the whole prefix), written by hand as users of the stock module do."""

from __future__ import annotations

import math

import torch
from torch import nn


class NNTransformer(nn.Module):
    """torch.nn.Transformer with tied embeddings and sinusoidal positions, the sizes of a preset."""

    def __init__(self, c: dict):
        super().__init__()
        from .model import sinusoids

        self.d = c["d"]
        self.embed = nn.Embedding(c["vocab"], c["d"], padding_idx=0)
        self.register_buffer("pos", sinusoids(c["max_positions"], c["d"]), persistent=False)
        self.tf = nn.Transformer(c["d"], c["heads"], c["enc_layers"], c["dec_layers"], c["ffn"], c["dropout"],
                                 batch_first=True, norm_first=True)
        self.tf.encoder.enable_nested_tensor = False

    def _emb(self, ids):
        return self.embed(ids) * math.sqrt(self.d) + self.pos[: ids.shape[1]]

    @torch.no_grad()
    def beam(self, src: torch.Tensor, beam: int = 5, max_len: int | None = None) -> torch.Tensor:
        """Beam search without a cache; returns the best token rows [B, T]."""
        B, K = src.shape[0], beam
        pad = src == 0
        mem = self.tf.encoder(self._emb(src), src_key_padding_mask=pad)
        mem, pad = mem.repeat_interleave(K, 0), pad.repeat_interleave(K, 0)
        T = max_len or int(1.2 * src.shape[1] + 10)
        tokens = torch.ones(B * K, 1, dtype=torch.long, device=src.device)
        scores = torch.zeros(B, K, device=src.device)
        scores[:, 1:] = float("-inf")
        rows = (torch.arange(B, device=src.device) * K)[:, None]
        for _ in range(T):
            t = tokens.shape[1]
            causal = torch.triu(torch.full((t, t), float("-inf"), device=src.device), 1)
            h = self.tf.decoder(self._emb(tokens), mem, tgt_mask=causal, memory_key_padding_mask=pad)
            lp = torch.log_softmax((h[:, -1] @ self.embed.weight.t()).float(), -1)
            V = lp.shape[-1]
            s, i = (scores.view(-1, 1) + lp).view(B, K * V).topk(K, 1)
            origin = (rows + i // V).view(-1)
            tokens = torch.cat([tokens[origin], (i % V).view(-1, 1)], 1)
            scores = s
        return tokens.view(B, K, -1)[:, 0]
