"""Valid, fast examples of every verb of code-search, for the conformance suite (tests/suite).

Data: three small Python files written here (functions with docstrings) and a pairs JSONL; the checkpoint is what
`code-search train` writes (`save_checkpoint` of a d = 16 COSEA with a vocabulary built from those pairs, made
in milliseconds instead of trained); the index is built by `predict` once. `predict` SOURCES and `query` QUERIES
are strings (`-` reads JSONL snippets / query lines on stdin); QUERIES are text, not files, so they are not in
STDIN.
"""

from __future__ import annotations

import json
from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --warmup-epochs": {"0"},    # 0: the pure loss from epoch 1
    "query --show-code": {"0"},        # 0: no code lines
    "query --rerank": {"0"},           # 0: no reranking
    "evaluate --bootstrap": {"0"},     # 0: no intervals
}
STDIN: set[str] = {"predict SOURCES"}  # "-" reads JSONL snippets with --format jsonl

FILES = {
    "reader.py": '''import csv


def read_csv_file(path):
    """Read rows from a comma separated file on disk."""
    with open(path) as fh:
        return list(csv.reader(fh))


def write_text_file(path, text):
    """Write a string of text into a file."""
    with open(path, "w") as fh:
        fh.write(text)
''',
    "mathy.py": '''def mean_of_values(values):
    """Compute the arithmetic average of numbers."""
    return sum(values) / len(values)


class Stack:
    def push_item(self, item):
        """Put an item on top of the stack."""
        self.items.append(item)

    def pop_item(self):
        """Take the top item off the stack."""
        return self.items.pop()
''',
    "net.py": '''import time


def retry_request(fn, tries=3):
    """Retry an http request with exponential backoff."""
    for i in range(tries):
        try:
            return fn()
        except OSError:
            time.sleep(2 ** i)


def parse_json_text(text):
    """Parse a JSON document from a string."""
    import json
    return json.loads(text)
''',
}


def _files(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        if not (src / name).is_file():
            (src / name).write_text(text, encoding="utf-8")
    return src


def _pairs(tmp: Path) -> Path:
    from wisecli.engines.code_search.data import extract_functions, query_from_docstring

    path = tmp / "pairs.jsonl"
    if not path.is_file():
        lines = []
        for name, text in FILES.items():
            for f in extract_functions(text, name):
                lines.append(json.dumps({"query": query_from_docstring(f.docstring), "code": f.code,
                                         "path": f"{name[:-3]}/{name}"}))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _checkpoint(tmp: Path) -> Path:
    import torch

    from wisecli.engines.code_search.api import DEFAULTS
    from wisecli.engines.code_search.model import Cosea
    from wisecli.engines.code_search.tokenizer import Vocab, code_tokens, query_tokens
    from wisecli.engines.code_search.train import load_pairs, model_config
    from wisecli.runtime.checkpoints import save_checkpoint

    path = tmp / "ckpt" / "best.pt"
    if not path.is_file():
        pairs, _ = load_pairs([str(_pairs(tmp))])
        vocab = Vocab.build([query_tokens(p.query) for p in pairs] + [code_tokens(p.code) for p in pairs], 1)
        cfg = {**DEFAULTS["train"], "dim": 16, "layers": 2, "max_code_len": 64}
        mc = model_config(cfg, len(vocab))
        torch.manual_seed(0)
        save_checkpoint(path, method="code-search", arch="cosea-layerwise", config={"model": mc, "train": cfg},
                        state_dict=Cosea(mc).state_dict(), vocab=vocab.state())
    return path


def _index(tmp: Path) -> Path:
    idx = tmp / "index"
    if not (idx / "index.json").is_file():
        from wisecli.engines.code_search.predict import build_index

        build_index([str(_files(tmp))], _checkpoint(tmp), idx, fmt="python", exclude=(), max_file_mb=5,
                    no_bm25=False, overwrite=False, skip_existing=False, device="cpu", batch=64)
    return idx


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise code-search <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out`."""
    tmp = Path(tmp)
    src, pairs, ckpt, idx = _files(tmp), _pairs(tmp), _checkpoint(tmp), _index(tmp)
    cpu = ["--device", "cpu"]
    return {
        "train": [str(pairs), "-o", str(tmp / "out"), "--dim", "8", "--layers", "1", "--epochs", "1", "--batch", "4",
                  "--val-split", "module:0.4", "--no-progress", *cpu],
        "predict": [str(src), "--weights", str(ckpt), "-o", str(tmp / "out"), *cpu],
        "query": [str(idx), "read a csv file", "-k", "2", "--weights", str(ckpt), *cpu],
        "evaluate": [str(pairs), "--weights", str(ckpt), "--compare", "bm25", "--bootstrap", "50", *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise code-search` of `predict` over 3 Python files under tmp, index in tmp/"out"; with
    `corrupt=i` file i is replaced by random bytes (not UTF-8 Python: an item error, exit 3)."""
    import os

    tmp = Path(tmp)
    ckpt = _checkpoint(tmp)
    folder = tmp / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i, (name, text) in enumerate(FILES.items()):
        p = folder / name
        if corrupt == i:
            p.write_bytes(b"\xff\xfe" + os.urandom(200))
        else:
            p.write_text(text, encoding="utf-8")
        inputs.append(str(p))
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out"), "--device", "cpu"]
