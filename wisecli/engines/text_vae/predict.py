"""Loading a text-vae checkpoint, decoding, and the `predict` and `evaluate` verbs (spec §3).

Modes: `sample` (z ~ N(0, I), `n` sentences), `reconstruct` (z = μ of q(z|x), or a sample with `z="sample"`),
`encode` (JSONL {line, text, mu, logvar, kl}, or one `[N, z]` array of μ with `npy`), `interpolate` (μ_A → μ_B
in `steps` points). Decoding is batched on the device: `greedy` (argmax), `sample` (softmax at
`temperature`) or `beam` (`beam` 5, length-normalised final choice); `<pad>`, `<s>`, `<unk>` never come out;
at most `max_tokens` words (our choice: 2 × the model's `max_len`, capped at 100).
Lines are read whole (stdin with `-`) and answered in order, one output line (or record) per input line;
with `-o DIR` each input file gives `<stem>.txt` (or `.jsonl` for encode), atomically, through
`runtime.batch.run_batch`. An empty input line gives an empty output line. `lm` checkpoints only sample.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.checkpoints import load_checkpoint

from . import data as D
from .loss import gaussian_kl
from .model import TextVAE, posterior

METHOD = "text-vae"


def load_model(weights, device: torch.device):
    """(model in eval mode on `device`, vocabulary, checkpoint document) of a checkpoint or run folder."""
    if weights is None:
        raise InputError("--weights is required",
                         hint="give a run folder written by 'wise text-vae train' or its best.pt")
    p = Path(weights)
    if p.is_dir():
        cand = p / "checkpoints" / "best.pt"
        if not cand.is_file():
            raise InputError(f"{p} holds no checkpoints/best.pt",
                             hint="give a run folder written by 'wise text-vae train'")
        p = cand
    doc = load_checkpoint(p, method=METHOD)
    try:
        mc = doc["config"]["model"]
        vocab = D.Vocab.from_state(doc["vocab"])
        if mc.get("task") == "dialogue":
            from .dialogue import DialogTWR

            model = DialogTWR(mc)
        else:
            model = TextVAE(mc)
        model.load_state_dict(doc["state_dict"])
    except (KeyError, TypeError, RuntimeError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{p} is not a usable text-vae checkpoint ({type(exc).__name__})",
                         hint="give a checkpoint written by 'wise text-vae train'") from None
    if mc.get("vocab") != len(vocab):
        raise InputError(f"{p}: its vocabulary ({len(vocab)}) does not match its model ({mc.get('vocab')})",
                         hint="the checkpoint is damaged; retrain")
    return model.to(device).eval(), vocab, doc


@torch.no_grad()
def decode(model, z: torch.Tensor | None, n: int, *, max_tokens: int = 40, how: str = "greedy",
           temperature: float = 1.0, generator=None) -> list[list[int]]:
    """Batched decoding of `n` sentences from latents `z` [n, z] (None for `lm`): ids without `<s>`/`</s>`."""
    dev = next(model.parameters()).device
    tok = torch.full((n,), D.BOS, dtype=torch.long, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    out = torch.zeros(n, max_tokens, dtype=torch.long, device=dev)
    state = None
    if z is None and n:
        state = None
    for t in range(max_tokens):
        logits, state = model.step_logits(tok, z, state)
        logits[:, [D.PAD, D.BOS, D.UNK]] = -float("inf")
        if how == "sample":
            tok = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
        else:
            tok = logits.argmax(-1)
        tok = torch.where(done, torch.full_like(tok, D.EOS), tok)
        out[:, t] = tok
        done |= tok == D.EOS
        if t % 8 == 7 and bool(done.all()):
            break
    res = []
    for row in out.tolist():
        res.append(row[: row.index(D.EOS)] if D.EOS in row else row)
    return res


@torch.no_grad()
def beam_decode(model, z: torch.Tensor | None, n: int, *, beam: int = 5, max_tokens: int = 40) -> list[list[int]]:
    """Batched beam search over `n` sentences (all beams of all sentences in one batch): a finished beam stays
    with a frozen score; the final choice divides each score by its length (words + `</s>`)."""
    dev = next(model.parameters()).device
    V = model.out.out_features
    zz = None if z is None else z.repeat_interleave(beam, 0)
    tok = torch.full((n * beam,), D.BOS, dtype=torch.long, device=dev)
    scores = torch.full((n, beam), -float("inf"), device=dev)
    scores[:, 0] = 0.0
    finished = torch.zeros(n * beam, dtype=torch.bool, device=dev)
    hist = torch.zeros(n * beam, 0, dtype=torch.long, device=dev)
    base = (torch.arange(n, device=dev) * beam)[:, None]
    state = None
    for t in range(max_tokens):
        logits, state = model.step_logits(tok, zz, state)
        logits[:, [D.PAD, D.BOS, D.UNK]] = -float("inf")
        lp = torch.log_softmax(logits, -1)
        lp[finished] = -float("inf")
        lp[finished, D.EOS] = 0.0
        top, idx = (scores.view(-1, 1) + lp).view(n, beam * V).topk(beam, 1)
        sel = (base + idx // V).view(-1)
        tok = (idx % V).view(-1)
        state = tuple(h[:, sel] for h in state) if isinstance(state, tuple) else state[:, sel]
        hist = torch.cat([hist[sel], tok[:, None]], 1)
        finished = finished[sel] | (tok == D.EOS)
        scores = top
        if t % 8 == 7 and bool(finished.all()):
            break
    is_eos = hist == D.EOS
    length = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full_like(tok, hist.shape[1])).float()
    best = (scores / length.view(n, beam)).argmax(1)
    rows = hist[(base[:, 0] + best)].tolist()
    return [r[: r.index(D.EOS)] if D.EOS in r else r for r in rows]


def _encode_lines(model, vocab, lines, cfg_train, dev):
    how = cfg_train.get("tokenize", "reference")
    seqs = [vocab.encode(D.tokenize(ln, how)) for ln in lines]
    b = D.collate(seqs)
    x, L = b["x"].to(dev), b["lengths"].to(dev)
    mu_t, lv_t = model.encode(x, L)
    return posterior(mu_t, lv_t, L, model.cfg["z_mode"])


class Predictor:
    """The model loaded once, with its decoding settings."""

    def __init__(self, model, vocab, doc, dev, *, decode_how="greedy", temperature=1.0, z="mean", seed=1,
                 batch_size=256, beam=5):
        self.beam = int(beam)
        self.model, self.vocab, self.doc, self.dev = model, vocab, doc, dev
        self.how, self.temperature, self.z = decode_how, float(temperature), z
        self.gen = torch.Generator(device=dev).manual_seed(int(seed))
        self.bs = int(batch_size)
        mx = int(doc["config"].get("train", {}).get("max_len", 50))
        self.max_tokens = min(100, 2 * mx)
        self.cfg_train = doc["config"].get("train", {})

    def _dec(self, z, n):
        if self.how == "beam":
            ids = beam_decode(self.model, z, n, beam=self.beam, max_tokens=self.max_tokens)
            return [self.vocab.decode(s + [D.EOS]) for s in ids]
        ids = decode(self.model, z, n, max_tokens=self.max_tokens, how=self.how, temperature=self.temperature,
                     generator=self.gen)
        return [self.vocab.decode(s + [D.EOS]) for s in ids]

    @torch.no_grad()
    def sample(self, n: int) -> list[dict]:
        out = []
        for i in range(0, n, self.bs):
            k = min(self.bs, n - i)
            z = None if self.model.kind == "lm" else torch.randn(k, self.model.z_dim, device=self.dev,
                                                                 generator=self.gen)
            out += [{"line": i + j + 1, "text": t} for j, t in enumerate(self._dec(z, k))]
        return out

    @torch.no_grad()
    def reconstruct(self, lines: list[str]) -> list[dict]:
        out = []
        for i in range(0, len(lines), self.bs):
            part = lines[i:i + self.bs]
            mu, lv = _encode_lines(self.model, self.vocab, part, self.cfg_train, self.dev)
            z = mu if self.z == "mean" else mu + (0.5 * lv).exp() * torch.randn(mu.shape, device=self.dev,
                                                                                 generator=self.gen)
            texts = self._dec(z, len(part))
            out += [{"line": i + j + 1, "input": ln, "text": t if ln.strip() else ""}
                    for j, (ln, t) in enumerate(zip(part, texts))]
        return out

    @torch.no_grad()
    def encode(self, lines: list[str]) -> list[dict]:
        out = []
        for i in range(0, len(lines), self.bs):
            part = lines[i:i + self.bs]
            mu, lv = _encode_lines(self.model, self.vocab, part, self.cfg_train, self.dev)
            kl = gaussian_kl(mu, lv)
            out += [{"line": i + j + 1, "text": ln, "mu": [round(float(v), 6) for v in mu[j]],
                     "logvar": [round(float(v), 6) for v in lv[j]], "kl": float(kl[j])}
                    for j, ln in enumerate(part)]
        return out

    @torch.no_grad()
    def interpolate(self, a: str, b: str, steps: int) -> list[dict]:
        mu, _ = _encode_lines(self.model, self.vocab, [a, b], self.cfg_train, self.dev)
        w = torch.linspace(0, 1, steps, device=self.dev)[:, None]
        z = (1 - w) * mu[0] + w * mu[1]
        return [{"line": i + 1, "t": round(float(w[i]), 4), "text": t} for i, t in enumerate(self._dec(z, steps))]


def _text_of(rec: dict, mode: str) -> str:
    if mode == "encode":
        from wisecli.cli.output import dumps

        return dumps({k: rec[k] for k in ("line", "text", "mu", "logvar", "kl")})
    return rec["text"]


def run_predict(inputs: list[str], weights, *, mode: str, out_dir=None, n=20, decode_how="greedy", beam=5,
                temperature=1.0,
                z="mean", interpolate=None, steps=8, npy=None, encoding="utf-8", batch_size=256, seed=1,
                overwrite=False, skip_existing=False, device="auto", sink=None, jsonl=False, argv=None,
                n_samples=10) -> dict:
    """The `predict` verb (module docstring). Returns {records, lines, errors, seconds, device}."""
    from wisecli.runtime.device import as_device
    from wisecli.runtime.io.text import read_lines

    files = [str(p) for p in inputs or []]
    if mode == "interpolate" or interpolate is not None:
        if not interpolate or len(interpolate) != 2:
            raise InputError("--mode interpolate needs --interpolate A B (two sentences)",
                             hint='e.g. --interpolate "the dog barked" "a cat slept"')
        mode = "interpolate"
    if mode == "respond":
        if out_dir is not None or npy is not None:
            raise InputError("--mode respond writes its records to stdout (no -o / --npy)",
                             hint="drop -o, and redirect stdout: ... --mode respond --jsonl contexts.jsonl > out.jsonl")
        return _respond(files, weights, n_samples=n_samples, encoding=encoding, batch_size=batch_size, seed=seed,
                        device=device, sink=sink, jsonl=jsonl)
    if mode in ("reconstruct", "encode") and not files:
        raise InputError(f"--mode {mode} needs text files or '-' (lines on stdin)",
                         hint="e.g. echo 'a line' | wise text-vae predict --weights RUN --mode reconstruct -")
    if mode in ("sample", "interpolate") and files:
        raise InputError(f"--mode {mode} reads no input files", hint="leave out the INPUTS, or use --mode reconstruct")
    if files.count("-") > 1:
        raise InputError("'-' (stdin) given more than once", hint="stdin can be read once")
    if out_dir is not None and ("-" in files or not files):
        raise InputError("-o writes one output per input file", hint="give files as INPUTS, or leave out -o")
    if npy is not None and mode != "encode":
        raise InputError("--npy only applies to --mode encode", hint="drop --npy, or use --mode encode")
    def lines_of(f: str) -> list[str]:
        lines = read_lines(f, encoding=encoding)
        if not lines:
            raise InputError(f"{'stdin' if f == '-' else f} is empty: no line to {mode}",
                             hint="give text, one sentence a line")
        return lines

    pre = {f: lines_of(f) for f in files} if out_dir is None else {}
    if npy is not None:
        from wisecli.runtime.io.atomic import refuse_existing

        refuse_existing(Path(npy), overwrite)
    if out_dir is not None:
        for f in files:
            if not Path(f).exists():
                raise InputError(f"text file not found: {f}", hint="give text files, one sentence a line")
    dev = as_device(device, sink=sink)
    model, vocab, doc = load_model(weights, dev)
    if doc["config"]["model"].get("task") == "dialogue":
        raise InputError(f"{weights} is a dialogue model: it only answers --mode respond",
                         hint='e.g. echo \'{"context": ["hi", "hello"]}\' | wise text-vae predict --weights RUN '
                              '--mode respond -')
    if model.kind == "lm" and mode != "sample":
        raise InputError(f"--mode {mode} needs a latent, but {weights} is a language model (--model lm)",
                         hint="use --mode sample, or a twr/vae run")
    pr = Predictor(model, vocab, doc, dev, decode_how=decode_how, temperature=temperature, z=z, seed=seed,
                   batch_size=batch_size, beam=beam)
    t0 = time.perf_counter()
    if out_dir is not None:
        return _to_folder(pr, [Path(f) for f in files], mode, Path(out_dir), lines_of, overwrite, skip_existing,
                          sink, argv, dev, t0)
    if mode == "sample":
        records = pr.sample(int(n))
    elif mode == "interpolate":
        records = pr.interpolate(interpolate[0], interpolate[1], int(steps))
    else:
        records = []
        for f in files:
            fn = pr.reconstruct if mode == "reconstruct" else pr.encode
            records += [{"file": f, **r} for r in fn(pre[f])]
    if npy is not None:
        import numpy as np

        from wisecli.runtime.io.atomic import save_npy

        save_npy(Path(npy), np.asarray([r["mu"] for r in records], dtype=np.float32))
    else:
        for r in records:
            if jsonl:
                sink.record(r)
            elif sink is None or not sink.json:
                sys.stdout.write(_text_of(r, mode).replace("\n", " ") + "\n")
        sys.stdout.flush()
    return {"records": records, "lines": len(records), "errors": 0, "seconds": time.perf_counter() - t0,
            "device": str(dev)}


def _to_folder(pr, files, mode, out_dir, lines_of, overwrite, skip_existing, sink, argv, dev, t0):
    from wisecli.cli.common import shared
    from wisecli.cli.output import Sink
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.io.atomic import write_text
    from wisecli.runtime.runrecord import RunRecord

    sink = sink or Sink(quiet=True)
    ext = "jsonl" if mode == "encode" else "txt"
    out_for = {p: out_dir / f"{stem_of(p)}.{ext}" for p in files}
    if len(set(out_for.values())) < len(out_for):
        raise InputError("two inputs have the same stem: their outputs would clash",
                         hint="give them different names, or write into different -o folders")

    def process(p: Path) -> dict:
        lines = lines_of(str(p))
        recs = pr.reconstruct(lines) if mode == "reconstruct" else pr.encode(lines)
        write_text(out_for[p], "".join(_text_of(r, mode).replace("\n", " ") + "\n" for r in recs))
        return {"output": str(out_for[p]), "lines": len(recs)}

    record = RunRecord("text-vae predict", device=str(dev), argv=argv, inputs=[str(p) for p in files])
    opts = BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite,
                        debug=bool(getattr(shared, "debug", False)))
    records = run_batch(files, process, outputs_for=lambda p: [out_for[p]], options=opts, sink=sink,
                        run_record=record)
    errors = sum(r.get("status") == "error" for r in records)
    return {"records": records, "lines": sum(r.get("lines", 0) for r in records), "errors": errors,
            "seconds": time.perf_counter() - t0, "device": str(dev)}


def _respond(files, weights, *, n_samples, encoding, batch_size, seed, device, sink, jsonl) -> dict:
    """`--mode respond`: JSONL {context: [...], floors?: [...]} records in (files or `-`), `n_samples` responses
    per context out: one JSONL record {line, context, responses} a context (stdout; text mode: the responses
    of a context on one line, joined by " ||| "). A malformed record is an error before any work."""
    import json

    from wisecli.runtime.device import as_device
    from wisecli.runtime.io.text import read_lines

    from . import dialogue as G

    if not files:
        raise InputError("--mode respond needs JSONL files or '-' ({\"context\": [...]} a line)",
                         hint='e.g. echo \'{"context": ["hi", "hello"]}\' | wise text-vae predict --weights RUN '
                              '--mode respond -')
    items = []
    for f in files:
        for no, raw in enumerate(read_lines(f, encoding=encoding), 1):
            if not raw.strip():
                continue
            where = f"{'stdin' if f == '-' else f}:{no}"
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not JSON ({exc.msg})", hint="one JSON object a line") from None
            ex = G.example_of_record(rec, where, need_response=False)
            items.append((f, no, G.Example(ex.context[-G.WINDOW:], ex.floors[-G.WINDOW:], "")))
    if not items:
        raise InputError("no context to respond to (empty input)", hint='one {"context": [...]} record a line')
    dev = as_device(device, sink=sink)
    model, vocab, doc = load_model(weights, dev)
    if doc["config"]["model"].get("task") != "dialogue":
        raise InputError(f"--mode respond needs a dialogue model, but {weights} is a language model",
                         hint="train one with --task dialogue")
    t0 = time.perf_counter()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    outs = G.respond(model, vocab, [e for _, _, e in items], n_samples=int(n_samples), batch_size=int(batch_size),
                     generator=gen)
    records = [{"file": f, "line": no, "context": e.context, "floors": e.floors, "responses": r}
               for (f, no, e), r in zip(items, outs)]
    for r in records:
        if jsonl:
            sink.record(r)
        elif sink is None or not sink.json:
            sys.stdout.write(" ||| ".join(r["responses"]) + "\n")
    sys.stdout.flush()
    return {"records": records, "lines": len(records), "errors": 0, "seconds": time.perf_counter() - t0,
            "device": str(dev)}


def _evaluate_dialogue(test, model, vocab, doc, *, metrics, n_samples, elbo_samples, seed, batch_size, encoding,
                       dev, fmt=None, vecs=None) -> dict:
    """evaluate on a dialogue model: the conditional ELBO NLL / PPL, KL, R_TWR and §5's dialogue metrics."""
    from . import dialogue as G

    fmt = fmt or doc["config"]["train"].get("format", "jsonl")
    ex = G.read_dialogues(test, fmt, encoding=encoding)
    t0 = time.perf_counter()
    out: dict = {"task": "dialogue", "model": model.kind, "format": fmt}
    out.update(G.elbo_eval(model, vocab, ex, elbo_samples=int(elbo_samples), batch_size=int(batch_size),
                           seed=int(seed)))
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    samples = G.respond(model, vocab, ex, n_samples=int(n_samples), batch_size=int(batch_size), generator=gen)
    out.update(G.dialogue_metrics([e.response for e in ex], samples, as_coded=metrics in ("as-coded", "both")))
    if vecs is not None:
        out.update(G.embedding_metrics([e.response for e in ex], samples, vecs))
    out["seconds"] = time.perf_counter() - t0
    out["device"] = str(dev)
    return out


def run_evaluate(test, weights, *, metrics="proper", iw_samples=500, iw_chunk=100, elbo_samples=10, au_delta=0.01,
                 seed=1, batch_size=64, encoding="utf-8", device="auto", sink=None, n_samples=10,
                 embeddings=None) -> dict:
    """The `evaluate` verb: §5's metrics of `weights` on the TEST file (and the as-coded ones on request)."""
    from wisecli.runtime.device import as_device, oom_guard

    if iw_chunk > iw_samples:
        raise InputError(f"--iw-chunk {iw_chunk} is larger than --iw-samples {iw_samples}",
                         hint="give a chunk of at most --iw-samples")
    vecs = None
    if embeddings is not None:
        from .dialogue import read_word2vec

        vecs = read_word2vec(embeddings)
    if weights is not None and Path(str(weights)).exists():
        _, _, doc0 = load_model(weights, torch.device("cpu"))  # which task, before any work
        if vecs is not None and doc0["config"]["model"].get("task") != "dialogue":
            raise InputError("--embeddings gives the dialogue embedding metrics; this is a language model",
                             hint="drop --embeddings, or evaluate a --task dialogue run")
        if doc0["config"]["model"].get("task") == "dialogue":
            dev = as_device(device, sink=sink)
            model, vocab, doc = load_model(weights, dev)
            return _evaluate_dialogue(test, model, vocab, doc, metrics=metrics, n_samples=n_samples,
                                      elbo_samples=elbo_samples, seed=seed, batch_size=batch_size,
                                      encoding=encoding, dev=dev, vecs=vecs)
    lines = D.read_sentences(test, encoding=encoding)
    dev = as_device(device, sink=sink)
    model, vocab, doc = load_model(weights, dev)
    tr = doc["config"].get("train", {})
    seqs, dropped = D.encode_all(vocab, lines, how=tr.get("tokenize", "reference"), max_len=10**6)
    if not seqs:
        raise InputError(f"{test}: no sentence with a word in it", hint="give text, one sentence a line")
    from .metrics import as_coded, evaluate

    t0 = time.perf_counter()
    out: dict = {"model": model.kind, "z_mode": model.cfg["z_mode"]}
    if metrics in ("proper", "both"):
        chunk = int(iw_chunk)
        while True:
            try:
                out.update(evaluate(model, seqs, iw_samples=int(iw_samples), iw_chunk=chunk,
                                    elbo_samples=int(elbo_samples), au_delta=float(au_delta), seed=int(seed),
                                    batch_size=int(batch_size), device=dev))
                break
            except torch.cuda.OutOfMemoryError:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)  # §8: OOM in IW-NLL halves the chunk
                torch.cuda.empty_cache()
        out["iw_chunk_used"] = chunk
    if metrics in ("as-coded", "both"):
        out["as_coded"] = as_coded(model, seqs, batch_size=int(batch_size), seed=int(seed))
        if "n_sentences" not in out:
            out["n_sentences"] = len(seqs)
    out["dropped_empty"] = dropped
    out["seconds"] = time.perf_counter() - t0
    out["device"] = str(dev)
    return out
