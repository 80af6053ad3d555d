"""Loading a translation checkpoint, beam search with a KV cache, and the `predict` verb.

Decoding (specs/translate.md §2.4): beam 5, score Σ log p / |y|^lp with lp 1 (|y| counts `</s>`), at most
1.2·|x| + 10 tokens (|x|: source tokens without `</s>`), `--beam 1` is greedy. `<pad>`, `<s>`, `<unk>` never
come out. The whole beam is batched on the device: no Python loop over beams or sentences, one `.all()` per
step to stop early. Our choice where the spec is silent: a beam that produced `</s>` stays in the beam with a
frozen score (its later tokens are pads at no cost) and competes by raw score during the search; the final
ranking uses the length-normalised score. Batches are sorted by source length and filled to `batch_tokens`
source tokens; output keeps the input order.

`predict` (stdout): text lines on stdin (`-`) are translated one line at a time, each output line flushed as
it is written (an interactive pipe sees each answer at once); files are read whole and batched. An empty line
gives an empty line; a source longer than the model's `max_len` is cut there and flagged `truncated`. A failing
batch is retried one sentence at a time; a sentence that still fails gives an empty line and an `error`
record (exit 3). CUDA out-of-memory halves `batch_tokens` and retries, down to one sentence.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from wisecli.cli.errors import InputError, WorkFailed
from wisecli.runtime.checkpoints import load_checkpoint

from .data import pack_by_tokens
from .model import Translator, export_view
from .tokenizer import BOS, EOS, PAD, UNK, tokenizer_from_state

METHOD = "translate"


def load_model(weights, device: torch.device, view: str = "primary"):
    """(model in eval mode on `device`, tokenizer, checkpoint document) of a checkpoint or run folder."""
    if weights is None:
        raise InputError("--weights is required", hint="give a run folder written by 'wise translate train' or its best.pt")
    doc = load_checkpoint(Path(weights), method=METHOD)
    try:
        cfg = doc["config"]["model"]
        tok = tokenizer_from_state(doc["tokenizer"])
        if view == "aux" and cfg["views"] < 2:
            raise InputError(f"{weights} is a 1-view model: it has no auxiliary view", hint="use --view primary")
        c1, state = export_view(cfg, doc["state_dict"], view)
        model = Translator(c1)
        model.load_state_dict(state)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InputError(f"{weights}: not a usable translate checkpoint ({type(exc).__name__})",
                         hint="give a checkpoint written by 'wise translate train'") from None
    return model.to(device).eval(), tok, doc


@torch.no_grad()
def beam_search(model: Translator, src: torch.Tensor, *, beam: int = 5, lenpen: float = 1.0, nbest: int = 1,
                use_cache: bool = True, max_a: float = 1.2, max_b: int = 10) -> list[list[tuple[list[int], float, int]]]:
    """Beam search over a padded source batch [B, S] (`</s>` ended). Returns per sentence the `nbest` best
    (token ids without `</s>`, normalised score, length with `</s>`)."""
    dev = src.device
    B, K = src.shape[0], beam
    mems, mask = model.encode(src, views=1)
    src_len = (src != PAD).sum(1) - 1
    maxlen = (max_a * src_len.float() + max_b).long().clamp(min=1)
    T = int(maxlen.max())
    mem = mems[0].repeat_interleave(K, 0)
    mask = mask.repeat_interleave(K, 0)
    maxlen_k = maxlen.repeat_interleave(K)
    tokens = torch.full((B * K, 1), BOS, dtype=torch.long, device=dev)
    scores = torch.zeros(B, K, device=dev)
    scores[:, 1:] = float("-inf")
    finished = torch.zeros(B * K, dtype=torch.bool, device=dev)
    lengths = torch.zeros(B * K, device=dev)
    cache = model.start_cache(mem, mask) if use_cache else None
    rows = (torch.arange(B, device=dev) * K)[:, None]
    neg = float("-inf")
    for t in range(T):
        lp = model.decode_step(tokens, cache, mem, mask)
        V = lp.shape[-1]
        lp[:, PAD] = neg
        lp[:, BOS] = neg
        lp[:, UNK] = neg
        must_end = (t + 1 >= maxlen_k)[:, None]
        not_eos = torch.ones(V, dtype=torch.bool, device=dev)
        not_eos[EOS] = False
        lp = lp.masked_fill(must_end & not_eos, neg)
        frozen = torch.full_like(lp, neg)
        frozen[:, PAD] = 0.0
        lp = torch.where(finished[:, None], frozen, lp)
        cand = (scores.view(-1, 1) + lp).view(B, K * V)
        top_s, top_i = cand.topk(K, dim=1)
        origin = (rows + torch.div(top_i, V, rounding_mode="floor")).view(-1)
        nxt = (top_i % V).view(-1, 1)
        was_done = finished.index_select(0, origin)
        tokens = torch.cat([tokens.index_select(0, origin), nxt], 1)
        lengths = lengths.index_select(0, origin) + (~was_done).float()
        finished = was_done | (nxt.view(-1) == EOS)
        scores = top_s
        if cache is not None:
            model.reorder_cache(cache, origin)
        if bool(finished.all()):
            break
    norm = (scores.view(-1) / lengths.clamp(min=1) ** lenpen).view(B, K)
    order = norm.argsort(1, descending=True)
    out_tokens = tokens[:, 1:].tolist()
    norm_l, len_l, order_l = norm.tolist(), lengths.tolist(), order.tolist()
    results = []
    for b in range(B):
        hyps = []
        for k in order_l[b][:nbest]:
            seq = out_tokens[b * K + k]
            ids = []
            for x in seq:
                if x == EOS or x == PAD:
                    break
                ids.append(x)
            hyps.append((ids, float(norm_l[b][k]), int(len_l[b * K + k])))
        results.append(hyps)
    return results


def _batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Length-sorted index batches within `batch_tokens` (decoding order; the caller restores input order)."""
    return pack_by_tokens(sorted(range(len(lengths)), key=lambda i: (lengths[i], i)), lengths, batch_tokens)


class Translation:
    """A loaded model ready to translate lists of lines (the model is loaded once)."""

    def __init__(self, model, tok, doc, device, *, beam=5, lenpen=1.0, nbest=1, batch_tokens=8000, amp=True):
        self.model, self.tok, self.doc, self.device = model, tok, doc, device
        self.beam, self.lenpen, self.nbest, self.batch_tokens = beam, lenpen, nbest, batch_tokens
        self.max_len = int(doc.get("config", {}).get("train", {}).get("max_len", 256))
        self.amp = amp and device.type == "cuda"

    def _encode(self, line: str) -> tuple[list[int], bool]:
        ids = self.tok.encode(line)
        cut = len(ids) + 1 > self.max_len
        return (ids[: self.max_len - 1] if cut else ids) + [EOS], cut

    def _run(self, seqs: list[list[int]]):
        from wisecli.runtime.device import autocast

        b = len(seqs)
        src = torch.zeros(b, max(len(s) for s in seqs), dtype=torch.long)
        for i, s in enumerate(seqs):
            src[i, : len(s)] = torch.tensor(s)
        with autocast(self.device, self.amp):
            return beam_search(self.model, src.to(self.device), beam=self.beam, lenpen=self.lenpen, nbest=self.nbest)

    def translate(self, lines: list[str]) -> list[dict]:
        """One record per line, in input order: {src, hyp, score, n_tokens, status[, nbest][, error]}."""
        recs: list[dict | None] = [None] * len(lines)
        enc = []
        for i, line in enumerate(lines):
            if not line.strip():
                recs[i] = {"src": line, "hyp": "", "score": 0.0, "n_tokens": 0, "status": "ok"}
                enc.append(None)
            else:
                enc.append(self._encode(line))
        todo = [i for i, e in enumerate(enc) if e is not None]
        budget = self.batch_tokens
        queue = _batches([len(enc[i][0]) * self.beam for i in todo], budget)
        queue = [[todo[j] for j in batch] for batch in queue]
        while queue:
            batch = queue.pop(0)
            try:
                res = self._run([enc[i][0] for i in batch])
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise WorkFailed("CUDA out of memory on a single sentence",
                                     hint="lower --beam, or translate on the CPU (--device cpu)") from None
                torch.cuda.empty_cache()
                half = len(batch) // 2
                queue[:0] = [batch[:half], batch[half:]]
                continue
            except Exception as exc:  # a failed batch: one sentence at a time
                if len(batch) > 1:
                    queue[:0] = [[i] for i in batch]
                    continue
                i = batch[0]
                recs[i] = {"src": lines[i], "hyp": "", "score": None, "n_tokens": 0, "status": "error",
                           "error": f"{type(exc).__name__}: {exc}"}
                continue
            for i, hyps in zip(batch, res):
                ids, score, n = hyps[0]
                rec = {"src": lines[i], "hyp": self.tok.decode(ids), "score": score, "n_tokens": n,
                       "status": "truncated" if enc[i][1] else "ok"}
                if self.nbest > 1:
                    rec["nbest"] = [{"hyp": self.tok.decode(h), "score": s} for h, s, _ in hyps]
                recs[i] = rec
        return recs  # type: ignore[return-value]


def _is_error(rec: dict) -> bool:
    return rec["status"] == "error"


def run_predict(inputs: list[str], weights, *, out_dir=None, view="primary", beam=5, lenpen=1.0, nbest=1,
                batch_tokens=8000, encoding="utf-8", shard=None, overwrite=False, skip_existing=False,
                device="auto", amp=True, sink=None, jsonl=False, argv=None) -> dict:
    """The `predict` verb (see the module docstring). Returns {records, lines, errors, seconds, device}."""
    from wisecli.cli.inputs import apply_shard, parse_shard
    from wisecli.runtime.device import as_device
    from wisecli.runtime.io.text import decode_lines, read_lines

    if not inputs:
        raise InputError("no input given", hint="give text files, or '-' to read lines on stdin")
    files = [str(p) for p in inputs]
    if files.count("-") > 1:
        raise InputError("'-' (stdin) given more than once", hint="stdin can be read once")
    if out_dir is not None and "-" in files:
        raise InputError("'-' (stdin) cannot be written to an -o folder", hint="leave out -o to read stdin and write stdout")
    def lines_of(f: str) -> list[str]:
        lines = read_lines(f, encoding=encoding)
        if not lines:
            raise InputError(f"{f} is empty: no line to translate", hint="give a text file with one sentence a line")
        return lines

    shard_spec = parse_shard(shard)
    if shard_spec is not None and "-" in files:
        raise InputError("--shard splits files, not stdin", hint="give files with --shard, or leave it out")
    if shard_spec is not None and out_dir is None:
        files = apply_shard(files, shard_spec)
    # to stdout, every file is read before any work (a bad one is exit 2); into -o, each file is an item of the batch
    pre = {f: lines_of(f) for f in files if f != "-"} if out_dir is None else {}
    if out_dir is not None:
        for f in files:
            if not Path(f).exists():
                raise InputError(f"text file not found: {f}", hint="give text files, one sentence a line")
    dev = as_device(device, sink=sink)
    model, tok, doc = load_model(weights, dev, view)
    tr = Translation(model, tok, doc, dev, beam=beam, lenpen=lenpen, nbest=nbest, batch_tokens=batch_tokens, amp=amp)
    t0 = time.perf_counter()
    if out_dir is None:
        records: list[dict] = []
        for f in files:
            if f == "-":
                for n, raw in enumerate(_stdin_lines(), 1):
                    line = decode_lines(raw, "stdin", encoding)
                    line = line[0] if line else ""
                    rec = {"file": "-", "line": n, **tr.translate([line])[0]}
                    _emit(rec, sink, jsonl)
                    records.append(rec)
            else:
                for n, rec in enumerate(tr.translate(pre[f]), 1):
                    rec = {"file": f, "line": n, **rec}
                    _emit(rec, sink, jsonl)
                    records.append(rec)
        errors = sum(_is_error(r) for r in records)
        return {"records": records, "lines": len(records), "errors": errors,
                "seconds": time.perf_counter() - t0, "device": str(dev)}
    return _to_folder(tr, [Path(f) for f in files], lines_of, Path(out_dir), doc, shard_spec, apply_shard,
                      overwrite, skip_existing, sink, argv, dev, t0)


def _stdin_lines():
    stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    if stream is not None:
        yield from iter(stream.readline, b"")
        return
    for line in iter(sys.stdin.readline, ""):
        yield line.encode("utf-8")


def _emit(rec: dict, sink, jsonl: bool) -> None:
    if jsonl:
        sink.record(rec)
    elif sink is None or not sink.json:
        sys.stdout.write(rec["hyp"].replace("\n", " ") + "\n")
        sys.stdout.flush()


def _to_folder(tr, files, lines_of, out_dir, doc, shard, apply_shard, overwrite, skip_existing, sink, argv, dev, t0):
    from wisecli.cli.output import Sink
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.io.atomic import open_atomic
    from wisecli.runtime.runrecord import RunRecord

    from wisecli.cli.common import shared

    sink = sink or Sink(quiet=True)
    suffix = doc.get("config", {}).get("data", {}).get("tgt_lang") or "hyp"
    items = apply_shard(files, shard)
    out_for = {p: out_dir / f"{stem_of(p)}.{suffix}" for p in items}
    if len(set(out_for.values())) < len(out_for):
        raise InputError("two inputs have the same stem: their outputs would clash",
                         hint="translate them into different -o folders")

    def process(path: Path) -> dict:
        recs = tr.translate(lines_of(str(path)))
        with open_atomic(out_for[path], "w", encoding="utf-8") as fh:
            for r in recs:
                fh.write(r["hyp"].replace("\n", " ") + "\n")
        err = sum(_is_error(r) for r in recs)
        return {"output": str(out_for[path]), "lines": len(recs), "errors": err,
                "truncated": sum(r["status"] == "truncated" for r in recs), "status": "error" if err else "ok"}

    record = RunRecord("translate predict", device=str(dev), inputs=[str(p) for p in items], argv=argv)
    opts = BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite,
                        debug=bool(shared("debug", False)))
    records = run_batch(items, process, outputs_for=lambda p: [out_for[p]], options=opts, sink=sink,
                        run_record=record)
    return {"records": records, "lines": sum(r.get("lines", 0) for r in records),
            "errors": sum(r.get("errors", 0) for r in records), "seconds": time.perf_counter() - t0,
            "device": str(dev)}
