"""The dialogue task of TWR-VAE (spec §2.3, §4, §5; ruizheliUOA/TWR-VAE `dialogue_switchboard/{models_swda,
train_swda,utils_swda}.py`, itself after guxd/DialogWAE): readers, model, objective, `respond`, metrics.

**Data.** Formats: `dailydialog` (one dialogue a line, utterances ended by `__eou__`, speakers alternate),
`swda-jsonl` (DialogWAE's JSONL `{"utts": [[speaker, text, [act, sentiment]], …], …}`), `jsonl`
(`{"context": [...], "response": "...", "floors": [...]?}`). A malformed line or record is an InputError with
file:line. Every utterance after the first of a dialogue is a response to the (at most) 10 before it.
Tokens: lowercased, WordPunct-style regex `\\w+|[^\\w\\s]+`; vocabulary = the 10k most frequent training words.
**Ours (floors):** the floor of a context utterance is 1 when its speaker is the responder, else 0 (DialogWAE
codes speaker A/B; the relative floor is what a generic JSONL can give). JSONL without `floors` alternates
backwards from the response (the last context turn is the other speaker's).

**Model.** One embedding (E 200) shared by encoders and decoder. Utterance encoder: bi-GRU (U 300 per
direction), dropout 0.5, packed: the two final states (2U). Context encoder: GRU (C 300) over [utterance vector;
floor one-hot], dropout 0.25, packed over turns: c_1 … c_T, c = c_T. Recognition q(z|x, c_t): Linear(2U + C →
z) heads for μ and log σ², init U(−0.02, 0.02); prior p(z|c_t): Linear(C → z) + tanh, then the heads.
Decoder: GRU of C + z initialised with [z; c], input the word embedding, output Linear(C + z → V), teacher
forcing.

**Objective** (sum over the batch, as §2.1): `twr`: −log p(y|z, c) + R_TWR, z ~ q(z|y, c_T), R_TWR the mean of
KL(q(z|y, c_t) ‖ p(z|c_t)) over the context's **own** positions (ours; the reference divides by the padded
length, in a Python loop; here one batched Linear). `vae` (the CVAE baseline): KL at c_T only, weight β
annealed by the caller.

**Generation** (`respond`): z ~ p(z|c_T), `n` (10) samples per context, greedy, ≤ 40 tokens; the samples of
many contexts decoded as one batch.

**Metrics** (§5, DialogWAE's protocol): BLEU-n (n = 1…4, weights 1/n each) as NLTK sentence BLEU with Chen &
Cherry smoothing **method 3** (in [0, 1]), one reference; recall = best of the samples, precision = their mean,
F1 = 2PR/(P+R); corpus distinct-1/2 (Li et al. 2016: distinct n-grams / all n-grams over every response
generated), labelled `intra` (mean over single responses) and `inter` (mean over one context's samples, the
reference's "inter-distinct"); mean length. `as_coded`: the reference's BLEU with method 7 and weights ⅓ (can
exceed 1; labelled). With `--embeddings` (a word2vec/GloVe text file the user brings; nothing downloaded):
embedding average / extrema / greedy similarity (Liu et al. 2016, "How NOT to evaluate your dialogue system"),
recall = best of the samples, precision = their mean, as DialogWAE. **Ours:** the file is used for the metrics
only (the reference never loads its GloVe file; initialisation from it is not built).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from wisecli.cli.errors import InputError
from wisecli.runtime.bleu import nltk_sentence_bleu

from .data import BOS, EOS, PAD, UNK, Vocab

WINDOW = 10
MAX_UTT = 40
FORMATS = ("dailydialog", "swda-jsonl", "jsonl")
_WORD = re.compile(r"\w+|[^\w\s]+")


def tokenize(text: str) -> list[str]:
    """Lowercased WordPunct-style tokens (NLTK's WordPunctTokenizer regex)."""
    return _WORD.findall(str(text).lower())


@dataclass
class Example:
    """One response with its context: `context` utterance texts (oldest first), `floors` (1: the responder)."""
    context: list[str]
    floors: list[int]
    response: str


def _examples_of_dialogue(turns: list[tuple[str, str]], window: int = WINDOW) -> list[Example]:
    out = []
    for i in range(1, len(turns)):
        ctx = turns[max(0, i - window):i]
        who = turns[i][0]
        out.append(Example([t for _, t in ctx], [int(s == who) for s, _ in ctx], turns[i][1]))
    return out


def _alternating(n: int) -> list[int]:
    """Floors of n context turns alternating backwards from the response: …, 1, 0 (the last is the other)."""
    return [int((n - 1 - j) % 2 == 1) for j in range(n)]


def read_dialogues(path, fmt: str, *, encoding: str = "utf-8", window: int = WINDOW) -> list[Example]:
    """The (context, response) examples of a dialogue file in `fmt` (see the module docstring)."""
    from wisecli.runtime.io.text import read_lines

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt} is not a dialogue format", hint="one of: " + ", ".join(FORMATS))
    lines = read_lines(path, encoding=encoding)
    out: list[Example] = []
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{path}:{no}"
        if fmt == "dailydialog":
            if "__eou__" not in line:
                raise InputError(f"{where}: a DailyDialog line ends each utterance with __eou__",
                                 hint="one dialogue a line: 'hi . __eou__ hello ! __eou__'")
            utts = [u.strip() for u in line.split("__eou__")]
            utts = [u for u in utts if u]
            out += _examples_of_dialogue([(str(j % 2), u) for j, u in enumerate(utts)], window)
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON ({exc.msg})", hint="one JSON object a line") from None
        if fmt == "swda-jsonl":
            utts = rec.get("utts") if isinstance(rec, dict) else None
            ok = isinstance(utts, list) and all(isinstance(u, list) and len(u) >= 2 and isinstance(u[1], str)
                                                for u in utts)
            if not ok:
                raise InputError(f"{where}: a SwDA record needs \"utts\": [[speaker, text, [act, sentiment]], …]",
                                 hint="DialogWAE's swda JSONL, one dialogue a line")
            out += _examples_of_dialogue([(str(u[0]), u[1]) for u in utts if u[1].strip()], window)
            continue
        ex = example_of_record(rec, where, need_response=True)
        out.append(Example(ex.context[-window:], ex.floors[-window:], ex.response))
    if not out:
        raise InputError(f"{path} holds no dialogue example (a response needs at least one turn before it)",
                         hint=f"give a {fmt} file with dialogues of two or more turns")
    return out


def example_of_record(rec, where: str, *, need_response: bool) -> Example:
    """A generic JSONL record {context: [...], response?: str, floors?: [0/1, ...]} as an Example."""
    ctx = rec.get("context") if isinstance(rec, dict) else None
    if not (isinstance(ctx, list) and ctx and all(isinstance(c, str) for c in ctx)):
        raise InputError(f"{where}: a record needs \"context\": a non-empty list of strings",
                         hint='e.g. {"context": ["hi there", "hello"], "response": "how are you"}')
    resp = rec.get("response")
    if need_response and not (isinstance(resp, str) and resp.strip()):
        raise InputError(f"{where}: a record needs \"response\": a non-empty string",
                         hint='e.g. {"context": ["hi there", "hello"], "response": "how are you"}')
    floors = rec.get("floors")
    if floors is None:
        floors = _alternating(len(ctx))
    elif not (isinstance(floors, list) and len(floors) == len(ctx) and all(f in (0, 1) for f in floors)
              and not any(isinstance(f, bool) for f in floors)):
        raise InputError(f"{where}: \"floors\" must be a list of 0/1, one per context utterance",
                         hint="1 marks the responder's own turns; leave it out to alternate")
    return Example(list(ctx), [int(f) for f in floors], resp if isinstance(resp, str) else "")


def build_vocab(examples: list[Example], max_vocab: int | None = 10000, min_count: int = 1) -> Vocab:
    """The most frequent words of every utterance (contexts and responses), capped at `max_vocab` ids."""
    seen: set[str] = set()
    sents = []
    for e in examples:  # each utterance once: a context turn repeats in up to WINDOW examples
        for u in e.context + [e.response]:
            if u not in seen:
                seen.add(u)
                sents.append(tokenize(u))
    return Vocab.build(sents, min_count=min_count, max_vocab=max_vocab)


def encode_utt(vocab: Vocab, text: str, max_len: int = MAX_UTT) -> list[int]:
    return vocab.encode(tokenize(text)[:max_len])


def collate(examples: list[Example], vocab: Vocab) -> dict:
    """{'ctx': [B, T, L] ids, 'ctx_utt_len': [B, T] (0 past a context), 'ctx_len': [B], 'floors': [B, T],
    'y': [B, Ly] response ids, 'y_len': [B]}."""
    B = len(examples)
    T = max(len(e.context) for e in examples)
    utts = [[encode_utt(vocab, u) for u in e.context] for e in examples]
    L = max(len(u) for c in utts for u in c)
    ctx = torch.full((B, T, L), PAD, dtype=torch.long)
    ul = torch.zeros(B, T, dtype=torch.long)
    fl = torch.zeros(B, T, dtype=torch.long)
    for b, c in enumerate(utts):
        for t, u in enumerate(c):
            ctx[b, t, :len(u)] = torch.tensor(u)
            ul[b, t] = len(u)
        fl[b, :len(c)] = torch.tensor(examples[b].floors)
    ys = [encode_utt(vocab, e.response) for e in examples]
    y = torch.full((B, max(len(s) for s in ys)), PAD, dtype=torch.long)
    for b, s in enumerate(ys):
        y[b, :len(s)] = torch.tensor(s)
    return {"ctx": ctx, "ctx_utt_len": ul, "ctx_len": torch.tensor([len(c) for c in utts]), "floors": fl, "y": y,
            "y_len": torch.tensor([len(s) for s in ys])}


def dialogue_config(vocab: int, *, model: str = "twr", emb: int = 200, utt_hidden: int = 300,
                    ctx_hidden: int = 300, z_dim: int = 200, dropout: float = 0.5, ctx_dropout: float = 0.25) -> dict:
    return {"task": "dialogue", "vocab": int(vocab), "model": model, "emb": int(emb), "utt_hidden": int(utt_hidden),
            "ctx_hidden": int(ctx_hidden), "z_dim": int(z_dim), "dropout": float(dropout),
            "ctx_dropout": float(ctx_dropout)}


def _packed(rnn: nn.GRU, x: Tensor, lengths: Tensor, h0=None):
    p = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
    out, h = rnn(p, h0)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], h


class DialogTWR(nn.Module):
    """The TWR-VAE dialogue model (`model="twr"`) or the CVAE baseline (`"vae"`), spec §2.3."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        V, E, U, C, Z = cfg["vocab"], cfg["emb"], cfg["utt_hidden"], cfg["ctx_hidden"], cfg["z_dim"]
        self.kind = cfg["model"]
        self.emb = nn.Embedding(V, E, padding_idx=PAD)
        self.drop = nn.Dropout(cfg["dropout"])
        self.ctx_drop = nn.Dropout(cfg["ctx_dropout"])
        self.utt_rnn = nn.GRU(E, U, batch_first=True, bidirectional=True)
        self.ctx_rnn = nn.GRU(2 * U + 2, C, batch_first=True)
        self.q_heads = nn.Linear(2 * U + C, 2 * Z)
        self.p_hidden = nn.Linear(C, Z)
        self.p_heads = nn.Linear(Z, 2 * Z)
        for lin in (self.q_heads, self.p_hidden, self.p_heads):
            nn.init.uniform_(lin.weight, -0.02, 0.02)
            nn.init.zeros_(lin.bias)
        self.dec_rnn = nn.GRU(E, C + Z, batch_first=True)
        self.out = nn.Linear(C + Z, V)

    @property
    def z_dim(self) -> int:
        return int(self.cfg["z_dim"])

    def encode_utts(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """[N, 2U]: the final forward and backward states of each utterance (`<s> … </s>` ids)."""
        _, h = _packed(self.utt_rnn, self.drop(self.emb(ids)), lengths)
        return torch.cat([h[0], h[1]], dim=-1)

    def encode_context(self, ctx: Tensor, utt_len: Tensor, ctx_len: Tensor, floors: Tensor) -> tuple[Tensor, Tensor]:
        """(c_1 … c_T [B, T, C] (zeros past each context), c = c_{T_b} [B, C])."""
        B, T, L = ctx.shape
        valid = utt_len > 0
        vec = ctx.new_zeros((B, T, 2 * self.cfg["utt_hidden"]), dtype=torch.float32)
        flat = self.encode_utts(ctx[valid], utt_len[valid])
        vec = vec.to(flat.dtype).masked_scatter(valid.unsqueeze(-1), flat)
        inp = torch.cat([vec, nn.functional.one_hot(floors, 2).to(vec.dtype)], -1)
        out, h = _packed(self.ctx_rnn, self.ctx_drop(inp), ctx_len)
        return out, h[-1]

    def prior(self, c: Tensor) -> tuple[Tensor, Tensor]:
        mu, lv = self.p_heads(torch.tanh(self.p_hidden(c))).float().chunk(2, -1)
        return mu, lv

    def recognition(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x, c) for c [..., C] and the response vector x broadcast over the leading positions."""
        if c.dim() == 3:
            x = x.unsqueeze(1).expand(-1, c.shape[1], -1)
        mu, lv = self.q_heads(torch.cat([x, c], -1)).float().chunk(2, -1)
        return mu, lv

    def _h0(self, z: Tensor, c: Tensor) -> Tensor:
        return torch.cat([z.to(c.dtype), c], -1).unsqueeze(0).contiguous()

    def decode_nll(self, y: Tensor, y_len: Tensor, z: Tensor, c: Tensor) -> Tensor:
        """−log p(y|z, c) per response [B], summed over its n + 1 predicted tokens."""
        inp, tgt = y[:, :-1], y[:, 1:]
        h, _ = _packed(self.dec_rnn, self.drop(self.emb(inp)), y_len - 1, self._h0(z, c))
        logits = self.out(h)
        return nn.functional.cross_entropy(logits.float().transpose(1, 2), tgt, ignore_index=PAD,
                                           reduction="none").sum(1)

    def step_logits(self, tok: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        out, state = self.dec_rnn(self.emb(tok).unsqueeze(1), state)
        return self.out(out[:, 0]).float(), state


def gauss_kl(mu_q: Tensor, lv_q: Tensor, mu_p: Tensor, lv_p: Tensor) -> Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) summed over the last dimension."""
    return 0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p).pow(2)) / lv_p.exp() - 1.0).sum(-1)


def twr_dialogue_term(mu_q, lv_q, mu_p, lv_p, ctx_len: Tensor) -> Tensor:
    """R_TWR per example [B]: the mean of KL(q_t ‖ p_t) over the context's own positions."""
    T = mu_q.shape[1]
    m = (torch.arange(T, device=mu_q.device)[None, :] < ctx_len.to(mu_q.device)[:, None]).to(mu_q.dtype)
    return (gauss_kl(mu_q, lv_q, mu_p, lv_p) * m).sum(1) / m.sum(1)


def last_of(seq: Tensor, lengths: Tensor) -> Tensor:
    """seq[b, lengths[b] − 1] for [B, T, D]."""
    idx = (lengths.to(seq.device) - 1).view(-1, 1, 1).expand(-1, 1, seq.shape[-1])
    return seq.gather(1, idx)[:, 0]


def dialogue_objective(model: DialogTWR, batch: dict, *, beta: float = 1.0, generator=None) -> tuple[Tensor, dict]:
    """(summed loss, per-example means {recon, kl, kl_twr}) of one batch (module docstring)."""
    cs, c = model.encode_context(batch["ctx"], batch["ctx_utt_len"], batch["ctx_len"], batch["floors"])
    x = model.encode_utts(batch["y"], batch["y_len"])
    L = batch["ctx_len"]
    if model.kind == "twr":
        mu_q, lv_q = model.recognition(x, cs)
        mu_p, lv_p = model.prior(cs)
        reg = twr_dialogue_term(mu_q, lv_q, mu_p, lv_p, L)
        mq, lq, mp, lp = (last_of(t, L) for t in (mu_q, lv_q, mu_p, lv_p))
    else:
        mq, lq = model.recognition(x, c)
        mp, lp = model.prior(c)
    kl = gauss_kl(mq, lq, mp, lp)
    eps = torch.randn(mq.shape, device=mq.device, dtype=mq.dtype, generator=generator)
    z = mq + (0.5 * lq).exp() * eps
    rec = model.decode_nll(batch["y"], batch["y_len"], z, c)
    if model.kind == "twr":
        loss = (rec + reg).sum()
    else:
        reg = kl.new_zeros(())
        loss = (rec + beta * kl).sum()
    return loss, {"recon": rec.mean(), "kl": kl.mean().detach(), "kl_twr": reg.mean().detach()}


@torch.no_grad()
def respond(model: DialogTWR, vocab: Vocab, examples: list[Example], *, n_samples: int = 10, max_tokens: int = 40,
            batch_size: int = 64, generator=None) -> list[list[str]]:
    """`n_samples` responses per context: z ~ p(z|c_T), greedy decoding, ≤ `max_tokens` words, all the
    samples of a batch of contexts decoded together."""
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    out: list[list[str]] = []
    for i in range(0, len(examples), batch_size):
        b = {k: v.to(dev) for k, v in collate(examples[i:i + batch_size], vocab).items()}
        _, c = model.encode_context(b["ctx"], b["ctx_utt_len"], b["ctx_len"], b["floors"])
        mu, lv = model.prior(c)
        mu, lv, c = (t.repeat_interleave(n_samples, 0) for t in (mu, lv, c))
        z = mu + (0.5 * lv).exp() * torch.randn(mu.shape, device=dev, dtype=mu.dtype, generator=generator)
        N = z.shape[0]
        state = model._h0(z, c)
        tok = torch.full((N,), BOS, dtype=torch.long, device=dev)
        done = torch.zeros(N, dtype=torch.bool, device=dev)
        ids = torch.full((N, max_tokens), EOS, dtype=torch.long, device=dev)
        for t in range(max_tokens):
            logits, state = model.step_logits(tok, state)
            logits[:, [PAD, BOS, UNK]] = -float("inf")
            tok = torch.where(done, torch.full_like(tok, EOS), logits.argmax(-1))
            ids[:, t] = tok
            done |= tok == EOS
            if bool(done.all()):
                break
        texts = [vocab.decode(r) for r in ids.tolist()]
        out += [texts[j:j + n_samples] for j in range(0, N, n_samples)]
    model.train(was)
    return out


def train_dialogue_in_memory(examples: list[Example], vocab: Vocab, cfg: dict, *, steps: int, batch_size: int = 96,
                             lr: float = 1e-4, kl_start: float = 0.1, anneal_steps: int = 0, seed: int = 1,
                             device=torch.device("cpu")) -> DialogTWR:
    """`steps` Adam updates (lr, eps 1e-6, wd 1e-5) on shuffled batches, without a run folder (tests, gates)."""
    from .loss import beta_at

    torch.manual_seed(seed)
    model = DialogTWR(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-6, weight_decay=1e-5)
    rng = random.Random(seed)
    done = 0
    model.train()
    while done < steps:
        idx = list(range(len(examples)))
        rng.shuffle(idx)
        for i in range(0, len(idx), batch_size):
            b = {k: v.to(device) for k, v in collate([examples[j] for j in idx[i:i + batch_size]], vocab).items()}
            loss, _ = dialogue_objective(model, b, beta=beta_at(done, kl_start, anneal_steps))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done >= steps:
                break
    model.eval()
    return model


# ---------------------------------------------------------------- metrics


def bleu_n(ref: list[str], hyp: list[str], n: int, smoothing: int = 3) -> float:
    """Sentence BLEU-n (weights 1/n over orders 1…n), NLTK smoothing `smoothing`, one reference."""
    return nltk_sentence_bleu([ref], hyp, weights=(1.0 / n,) * n, smoothing=smoothing)


def distinct(sentences: list[list[str]], n: int) -> float:
    """Li et al. (2016): distinct n-grams / all n-grams over `sentences` (0 when there is none)."""
    grams = [tuple(s[i:i + n]) for s in sentences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def as_coded_bleu(ref: list[str], hyp: list[str]) -> float:
    """The reference's BLEU: NLTK method 7, weights ⅓ ⅓ ⅓ (can exceed 1); an error scores 0 (its bare except)."""
    try:
        return nltk_sentence_bleu([ref], hyp, weights=(1 / 3, 1 / 3, 1 / 3), smoothing=7)
    except Exception:  # noqa: BLE001 - reproduces the reference's bare except, labelled as-coded
        return 0.0


def dialogue_metrics(refs: list[str], samples: list[list[str]], *, as_coded: bool = False) -> dict:
    """§5's dialogue metrics of `samples` (the responses of each context) against one reference each."""
    out: dict = {"n_contexts": len(refs), "n_samples": len(samples[0]) if samples else 0}
    R = [tokenize(r) for r in refs]
    H = [[tokenize(h) for h in hs] for hs in samples]
    for n in range(1, 5):
        scores = [[bleu_n(r, h, n) for h in hs] for r, hs in zip(R, H)]
        rec = sum(max(s) for s in scores) / len(scores)
        prec = sum(sum(s) / len(s) for s in scores) / len(scores)
        out[f"bleu{n}_recall"] = rec
        out[f"bleu{n}_precision"] = prec
        out[f"bleu{n}_f1"] = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    every = [h for hs in H for h in hs]
    for n in (1, 2):
        out[f"distinct{n}"] = distinct(every, n)
        out[f"distinct{n}_intra"] = sum(distinct([h], n) for h in every) / len(every)
        out[f"distinct{n}_inter"] = sum(distinct(hs, n) for hs in H) / len(H)
    out["avg_len"] = sum(len(h) for h in every) / len(every)
    if as_coded:
        sc = [[as_coded_bleu(r, h) for h in hs] for r, hs in zip(R, H)]
        out["as_coded"] = {"bleu_recall": sum(max(s) for s in sc) / len(sc),
                           "bleu_precision": sum(sum(s) / len(s) for s in sc) / len(sc),
                           "label": "as coded: NLTK method 7, weights 1/3 (can exceed 1)"}
    return out


@torch.no_grad()
def elbo_eval(model: DialogTWR, vocab: Vocab, examples: list[Example], *, elbo_samples: int = 10,
              batch_size: int = 96, seed: int = 1) -> dict:
    """The conditional bound −log p(y|c) ≤ E_q[−log p(y|z, c)] + KL(q(z|y, c_T) ‖ p(z|c_T)) per response (the
    latent the decoder consumes), `elbo_samples` samples; PPL over the n + 1 predicted tokens; mean KL and
    R_TWR. {n_examples, n_predicted_tokens, nll_elbo, ppl_elbo, recon, kl, kl_twr}."""
    import math

    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    tot_rec = tot_kl = tot_twr = 0.0
    tokens = 0
    for i in range(0, len(examples), batch_size):
        b = {k: v.to(dev) for k, v in collate(examples[i:i + batch_size], vocab).items()}
        cs, c = model.encode_context(b["ctx"], b["ctx_utt_len"], b["ctx_len"], b["floors"])
        x = model.encode_utts(b["y"], b["y_len"])
        mq_t, lq_t = model.recognition(x, cs)
        mp_t, lp_t = model.prior(cs)
        L = b["ctx_len"]
        mq, lq, mp, lp = (last_of(t, L) for t in (mq_t, lq_t, mp_t, lp_t))
        rec = torch.zeros_like(mq[:, 0])
        for _ in range(int(elbo_samples)):
            z = mq + (0.5 * lq).exp() * torch.randn(mq.shape, device=dev, dtype=mq.dtype, generator=gen)
            rec += model.decode_nll(b["y"], b["y_len"], z, c)
        tot_rec += float((rec / elbo_samples).sum())
        tot_kl += float(gauss_kl(mq, lq, mp, lp).sum())
        tot_twr += float(twr_dialogue_term(mq_t, lq_t, mp_t, lp_t, L).sum())
        tokens += int((b["y_len"] - 1).sum())
    model.train(was)
    n = len(examples)
    nll = (tot_rec + tot_kl) / n
    return {"n_examples": n, "n_predicted_tokens": tokens, "nll_elbo": nll, "ppl_elbo": math.exp(nll * n / tokens),
            "recon": tot_rec / n, "kl": tot_kl / n, "kl_twr": tot_twr / n}


class DialogueLoader:
    """Collated dialogue batches with a resumable, length-bucketed `sampler` (the trainer calls `set_epoch`)."""

    def __init__(self, examples: list[Example], vocab: Vocab, batch_size: int, *, seed: int = 1, rank: int = 0,
                 world: int = 1):
        from .data import BucketSampler

        self.examples, self.vocab = examples, vocab
        self.sampler = BucketSampler([len(e.context) * 100 + len(tokenize(e.response)) for e in examples],
                                     batch_size, seed=seed, rank=rank, world=world)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for b in self.sampler.batches():
            yield collate([self.examples[i] for i in b], self.vocab)


# ---------------------------------------------------------------- embedding metrics (--embeddings)


def read_word2vec(path, *, encoding: str = "utf-8") -> dict[str, "torch.Tensor"]:
    """A word2vec/GloVe text file: optional `N D` header, then `word v1 … vD` a line. Words are lowercased (the
    first spelling kept). A line with an unparsable number or another dimension than the first is an InputError
    with file:line; an empty file too."""
    from wisecli.runtime.io.text import read_lines

    vecs: dict[str, torch.Tensor] = {}
    dim = None
    for no, raw in enumerate(read_lines(path, encoding=encoding), 1):
        parts = raw.rstrip().split(" ")
        if not raw.strip():
            continue
        if no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue  # the word2vec header
        try:
            v = [float(x) for x in parts[1:]]
        except ValueError:
            raise InputError(f"{path}:{no}: not a word followed by numbers",
                             hint="--embeddings takes a word2vec/GloVe text file") from None
        if dim is None:
            dim = len(v)
        if not v or len(v) != dim:
            raise InputError(f"{path}:{no}: {len(v)} numbers where the file's vectors have {dim}",
                             hint="--embeddings takes a word2vec/GloVe text file of one dimension")
        vecs.setdefault(parts[0].lower(), torch.tensor(v, dtype=torch.float64))
    if not vecs:
        raise InputError(f"{path} holds no word vector", hint="--embeddings takes a word2vec/GloVe text file")
    return vecs


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return (a @ b.T) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1)[None, :]).clamp_min(1e-12)


def embedding_scores(ref: list[str], hyp: list[str], vecs: dict) -> tuple[float, float, float]:
    """(average, extrema, greedy) similarity of two token lists (Liu et al. 2016, as DialogWAE's metrics):
    average = cosine of the mean vectors; extrema = cosine of the per-dimension most extreme values (largest
    |v|, sign kept); greedy = ½ (mean over ref words of the best cosine to a hyp word + the converse). Words
    without a vector are skipped; 0 when either side has none."""
    R = [vecs[w] for w in ref if w in vecs]
    H = [vecs[w] for w in hyp if w in vecs]
    if not R or not H:
        return 0.0, 0.0, 0.0
    R, H = torch.stack(R), torch.stack(H)
    avg = float(_cos(R.mean(0, keepdim=True), H.mean(0, keepdim=True))[0, 0])

    def extrema(M: Tensor) -> Tensor:
        return M.gather(0, M.abs().argmax(0, keepdim=True))

    ext = float(_cos(extrema(R), extrema(H))[0, 0])
    C = _cos(R, H)
    greedy = float((C.max(1).values.mean() + C.max(0).values.mean()) / 2)
    return avg, ext, greedy


def embedding_metrics(refs: list[str], samples: list[list[str]], vecs: dict) -> dict:
    """emb_{average,extrema,greedy}_{recall,precision}: best of the samples and their mean, over contexts."""
    out = {}
    rows = [[embedding_scores(tokenize(r), tokenize(h), vecs) for h in hs] for r, hs in zip(refs, samples)]
    for k, name in enumerate(("average", "extrema", "greedy")):
        out[f"emb_{name}_recall"] = sum(max(s[k] for s in row) for row in rows) / len(rows)
        out[f"emb_{name}_precision"] = sum(sum(s[k] for s in row) / len(row) for row in rows) / len(rows)
    return out
