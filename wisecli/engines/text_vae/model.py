"""The RNN text VAE of TWR-VAE (Li et al., COLING 2020; ruizheliUOA/TWR-VAE `lang_model/{encoder,decoder}.py`)
and its two baselines in one module (spec §2.1–2.2).

- Encoder: embedding (V, E), dropout, one unidirectional LSTM/GRU of H; one Linear(H → 2z) head on every
  timestep gives μ_t and log σ²_t. **Ours:** packed sequences (`packed=False` runs the reference's padded,
  unpacked batch, where a shorter sentence's states after its end have consumed pads).
- Decoder: LSTM/GRU of H over [embedding(E); z] at every step, h0 = c0 = Linear(z → H, no bias), output
  Linear(H → V), teacher forcing, embedding dropout. `model="lm"`: the same decoder without a latent
  (input embedding only, zero initial state): the exact NLL every VAE must be compared with.
- The latent the decoder consumes (`z_mode`): `last` z ~ q(z_T|x); `mean` / `sum` of the per-step samples,
  whose law is closed form since the z_t are independent (N(mean μ_t, Σσ²_t/T²), N(Σμ_t, Σσ²_t)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .data import PAD

MODELS = ("twr", "vae", "lm")
Z_MODES = ("last", "mean", "sum")


def model_config(vocab: int, *, model: str = "twr", emb: int = 512, hidden: int = 256, z_dim: int = 32,
                 rnn: str = "lstm", dropout: float = 0.5, z_mode: str = "last") -> dict:
    """The plain-dict configuration stored in checkpoints."""
    return {"vocab": int(vocab), "model": model, "emb": int(emb), "hidden": int(hidden), "z_dim": int(z_dim),
            "rnn": rnn, "dropout": float(dropout), "z_mode": z_mode}


def _rnn(kind: str, inp: int, hidden: int) -> nn.RNNBase:
    return (nn.LSTM if kind == "lstm" else nn.GRU)(inp, hidden, batch_first=True)


def _run(rnn: nn.RNNBase, x: Tensor, lengths: Tensor, h0=None, packed: bool = True) -> Tensor:
    """Outputs [B, T, H] of `rnn` over `x` [B, T, D] (zeros after each length when packed)."""
    if not packed:
        return rnn(x, h0)[0]
    p = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = rnn(p, h0)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


class TextVAE(nn.Module):
    """TWR-VAE (`model="twr"`), the plain VAE (`"vae"`) or the language model (`"lm"`)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        V, E, H, Z = cfg["vocab"], cfg["emb"], cfg["hidden"], cfg["z_dim"]
        self.kind = cfg["model"]
        self.rnn_kind = cfg["rnn"]
        self.drop = nn.Dropout(cfg["dropout"])
        if self.kind != "lm":
            self.enc_emb = nn.Embedding(V, E, padding_idx=PAD)
            self.enc_rnn = _rnn(cfg["rnn"], E, H)
            self.heads = nn.Linear(H, 2 * Z)
            self.init = nn.Linear(Z, H, bias=False)
        self.dec_emb = nn.Embedding(V, E, padding_idx=PAD)
        self.dec_rnn = _rnn(cfg["rnn"], E + (0 if self.kind == "lm" else Z), H)
        self.out = nn.Linear(H, V)

    @property
    def z_dim(self) -> int:
        return int(self.cfg["z_dim"])

    def encode(self, x: Tensor, lengths: Tensor, packed: bool = True) -> tuple[Tensor, Tensor]:
        """μ_t, log σ²_t for every timestep: [B, T, z] each (positions past a length are padding)."""
        h = _run(self.enc_rnn, self.drop(self.enc_emb(x)), lengths, packed=packed)
        mu, logvar = self.heads(h).float().chunk(2, dim=-1)
        return mu, logvar

    def decode_nll(self, x: Tensor, lengths: Tensor, z: Tensor | None) -> Tensor:
        """−log p(x|z) per sentence [B]: the sum over the n + 1 predicted tokens w1 … wn `</s>`."""
        inp, tgt = x[:, :-1], x[:, 1:]
        e = self.drop(self.dec_emb(inp))
        h0 = None
        if z is not None:
            e = torch.cat([e, z.to(e.dtype).unsqueeze(1).expand(-1, e.shape[1], -1)], dim=-1)
            h = self.init(z).unsqueeze(0)
            h0 = (h, h) if self.rnn_kind == "lstm" else h
        h = _run(self.dec_rnn, e, lengths - 1, h0)
        logits = self.out(h)
        ce = nn.functional.cross_entropy(logits.float().transpose(1, 2), tgt, ignore_index=PAD, reduction="none")
        return ce.sum(1)

    def step_logits(self, tok: Tensor, z: Tensor | None, state):
        """One decoding step: logits [B, V] and the new state (`state` None: the initial one from z)."""
        e = self.dec_emb(tok).unsqueeze(1)
        if z is not None:
            e = torch.cat([e, z.to(e.dtype).unsqueeze(1)], dim=-1)
            if state is None:
                h = self.init(z).unsqueeze(0)
                state = (h, h.clone()) if self.rnn_kind == "lstm" else h
        out, state = self.dec_rnn(e, state)
        return self.out(out[:, 0]).float(), state


def posterior(mu: Tensor, logvar: Tensor, lengths: Tensor, z_mode: str = "last") -> tuple[Tensor, Tensor]:
    """q(z|x) of the latent the decoder consumes, closed form: (μ, log σ²) [B, z] (spec §5)."""
    B, T, _ = mu.shape
    if z_mode == "last":
        idx = (lengths - 1).to(mu.device).view(B, 1, 1).expand(-1, 1, mu.shape[-1])
        return mu.gather(1, idx)[:, 0], logvar.gather(1, idx)[:, 0]
    m = (torch.arange(T, device=mu.device)[None, :] < lengths.to(mu.device)[:, None]).to(mu.dtype).unsqueeze(-1)
    s_mu, s_var = (mu * m).sum(1), (logvar.exp() * m).sum(1)
    if z_mode == "sum":
        return s_mu, s_var.log()
    n = lengths.to(mu.device).to(mu.dtype).unsqueeze(-1)
    return s_mu / n, (s_var / n ** 2).log()


def sample(mu: Tensor, logvar: Tensor, k: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """k reparameterised samples per row: [B·k, z], the k samples of row b at rows b·k … b·k + k − 1."""
    mu, logvar = mu.repeat_interleave(k, 0), logvar.repeat_interleave(k, 0)
    eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + (0.5 * logvar).exp() * eps


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
