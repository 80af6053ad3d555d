"""Readers of the public code-search data sets the user has on disk (nothing is downloaded): CoSQA and StaQC
(specs/code-search.md §4, §2.7). Each returns `data.Pair`s like the pairs JSONL, so `train` and `evaluate` take
them the same way.

CoSQA (Huang et al., ACL 2021; files of `Jun-jie-Huang/CoCLR` `data/search/`, licence C-UDA, users supply them):
- `cosqa-train.json`: one JSON array of records `{idx, doc, code, code_tokens, docstring_tokens, label}`; the
  pairs are the records with `label == 1` (label 0 marks a code that does not answer the query) — query =
  `doc`, code = `code` with its docstring removed (CoSQA's `code` keeps it, §2.7; `--keep-docstrings` keeps it).
- `cosqa-retrieval-{dev,test}-500.json`: the same records plus `retrieval_idx` (the code's number in the pool);
  `code_idx_map.txt` beside them is one JSON object {code: idx} of the 6,267 pool codes. `evaluate` on a
  retrieval file with the map beside it ranks every query among all 6,267 codes (the CoSQA protocol, pool
  `all`): the map's codes that are not a query's own (by normalised-code hash) are added as distractors. Without
  the map the pool is the file's own codes (stated).
- Split unit (`Pair.module`): `cosqa:idx` of the record, so `--split` and the train/val module split are by query
  (CoSQA has one code per query). Its splits are its files: give `--val cosqa-retrieval-dev-500.json` to
  `train` (then every training pair trains) and evaluate on the test file.
- Detected (`--format auto`) as a `.json` file whose text starts with `[` (a JSON array, not JSONL).

StaQC (Yao et al., WWW 2018, `sunlab-osu/StaQC` `final_collection/`): Python-2 pickles of dicts,
- `{lang}_how_to_do_it_by_classifier_multiple_qid_to_title.pickle`: {question id: title},
- `{lang}_how_to_do_it_by_classifier_multiple_iid_to_code.pickle`: {(question id, code block index): code},
- `{lang}_how_to_do_it_qid_by_classifier_unlabeled_single_code_answer_qid_to_title.pickle` and
  `..._qid_to_code.pickle`: {question id: title}, {question id: code},
  (also the manually annotated `*_how_to_do_it_by_manual_...` files of the same two shapes).
  DATA names a `*qid_to_title.pickle` (its code file is the sibling with `iid_to_code` or `qid_to_code` in place
  of `qid_to_title`), a `*_to_code.pickle` (its title sibling is found the same way back), or a folder (every
  title/code pair in it). Query = the title, code = the code block (SQL or Python; Python blocks that parse have
  their docstrings removed like every code side). Split unit: `staqc:qid`, so a question's code blocks stay in
  one split. Not read: CoaCor's token-id pickles (their vocabulary layout is not fixed by a public spec we have).
- Pickles are read by `safe_load`: a `pickle.Unpickler` whose `find_class` admits only builtin container and
  scalar types (dict, list, tuple, set, frozenset, str, int, float, bool, complex; Python 2's `unicode` and
  `long`; not `bytes`/`bytearray`, which a pickle could call with a huge size), `encoding="latin1"` for
  Python-2 byte strings; any other global (`os.system`, `builtins.eval`, a class) and persistent ids are refused
  before anything is called, as exit 2. A corrupt or truncated pickle,
  or one whose objects are not the dicts above, is exit 2 too.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

from wisecli.cli.errors import InputError

from . import data as D

# Builtin container and scalar types only. `bytes` and `bytearray` are left out: a pickle could call them with a
# huge integer (memory), and Python 2's byte strings need no global (they are SHORT_BINSTRING/STRING opcodes).
_SAFE = {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "complex", "unicode", "long"}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers and scalars (specs/code-search.md §2.7)."""

    def find_class(self, module: str, name: str):
        if module in ("builtins", "__builtin__") and name in _SAFE:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def safe_load(path: Path):
    """The object of the pickle `path`, read by `SafeUnpickler` (latin1 for Python-2 strings); exit 2 when it
    holds anything else or cannot be read."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="give a readable StaQC pickle") from None
    try:
        return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "not allowed" in str(exc):
            raise InputError(f"{path}: the pickle holds disallowed content ({exc})",
                             hint="only pickles of builtin containers, strings and numbers are read "
                                  "(StaQC's dicts); this file was not loaded") from None
        raise InputError(f"{path}: not a readable pickle ({exc})", hint="give an intact StaQC pickle") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, MemoryError,
            UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})",
                         hint="give an intact StaQC pickle") from None


def _text(x) -> str | None:
    if isinstance(x, bytes):
        x = x.decode("utf-8", "replace")
    return x if isinstance(x, str) and x.strip() else None


def _code_side(code: str, keep_docstrings: bool) -> str:
    """The code without its docstring when it is one Python function that parses, else as given."""
    if keep_docstrings:
        return code
    import ast
    import textwrap

    src = textwrap.dedent(code)
    try:
        tree = D.parse(src)
        if len(tree.body) == 1 and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
            return D.extract_functions(src, "x")[0].code
    except (SyntaxError, ValueError, RecursionError):
        pass
    return code


# ---------------------------------------------------------------- CoSQA

def is_json_array(path: Path) -> bool:
    """True when `path` is a `.json` file whose first non-space character is `[`."""
    if not str(path).endswith(".json") or not Path(path).is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return False
    return head[:1] == b"["


def read_cosqa(path: Path, keep_docstrings: bool = False) -> tuple[list[D.Pair], dict, list[str]]:
    """(pairs with label 1, counts, pool codes from `code_idx_map.txt` beside it or []) of a CoSQA JSON file."""
    try:
        recs = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read CoSQA file {path}: {type(exc).__name__}: {exc}",
                         hint="give cosqa-train.json or cosqa-retrieval-{dev,test}-500.json as released") from None
    if not isinstance(recs, list) or not recs or not all(isinstance(r, dict) for r in recs):
        raise InputError(f"{path} is not a CoSQA file (a JSON array of records)",
                         hint="records {idx, doc, code, label[, retrieval_idx]}")
    counts = {"records": len(recs), "label_0": 0, "records_without_pair": 0}
    pairs = []
    for i, r in enumerate(recs):
        if "label" in r and str(r["label"]) not in ("1", "1.0", "True"):
            counts["label_0"] += 1
            continue
        q, code = _text(r.get("doc")), _text(r.get("code"))
        if q is None or code is None:
            counts["records_without_pair"] += 1
            continue
        idx = str(r.get("idx", i))
        pairs.append(D.Pair(q, _code_side(code, keep_docstrings), f"cosqa:{idx}", str(path), 0, idx))
    if not pairs and counts["records_without_pair"] == len(recs):
        raise InputError(f"{path}: no record has both 'doc' and 'code'", hint="CoSQA records {idx, doc, code, label}")
    pool: list[str] = []
    mp = Path(path).parent / "code_idx_map.txt"
    if any("retrieval_idx" in r for r in recs) and mp.is_file():
        try:
            m = json.loads(mp.read_text(encoding="utf-8"))
            if not isinstance(m, dict):
                raise ValueError("not a JSON object {code: idx}")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"cannot read {mp}: {type(exc).__name__}: {exc}",
                             hint="code_idx_map.txt is one JSON object {code: idx}; move it away to evaluate "
                                  "without the CoSQA pool") from None
        pool = [_code_side(c, keep_docstrings) for c, _ in sorted(m.items(), key=lambda kv: str(kv[1]))
                if isinstance(c, str) and c.strip()]
        counts["pool_codes"] = len(pool)
    return pairs, counts, pool


# ---------------------------------------------------------------- StaQC

_CODE_KEYS = ("iid_to_code", "qid_to_code")


def staqc_files(path: Path) -> list[tuple[Path, Path]]:
    """(title pickle, code pickle) pairs named by `path` (a title pickle, a code pickle or a folder)."""
    path = Path(path)
    if path.is_dir():
        titles = sorted(p for p in path.iterdir() if p.name.endswith(("qid_to_title.pickle", "qid_to_title.pkl")))
        out = [pr for t in titles for pr in _siblings(t, strict=False)]
        if not out:
            raise InputError(f"no StaQC pickle pairs (*qid_to_title.pickle with *iid_to_code/*qid_to_code) in {path}",
                             hint="point at StaQC's final_collection folder or one of its pickles")
        return out
    if "qid_to_title" in path.name:
        return _siblings(path, strict=True)
    for key in _CODE_KEYS:
        if key in path.name:
            t = path.with_name(path.name.replace(key, "qid_to_title"))
            if t.is_file():
                return [(t, path)]
            raise InputError(f"the titles of {path} are missing ({t.name})",
                             hint="StaQC ships *_qid_to_title.pickle beside each *_to_code.pickle")
    raise InputError(f"{path} is not a StaQC pickle (its name has none of qid_to_title, iid_to_code, qid_to_code)",
                     hint="give StaQC's *_qid_to_title.pickle, *_iid_to_code.pickle or their folder")


def _siblings(title: Path, strict: bool) -> list[tuple[Path, Path]]:
    for key in _CODE_KEYS:
        c = title.with_name(title.name.replace("qid_to_title", key))
        if c.is_file():
            return [(title, c)]
    if strict:
        raise InputError(f"the code of {title} is missing (no *iid_to_code or *qid_to_code sibling)",
                         hint="StaQC ships the code pickle beside the titles")
    return []


def read_staqc(path: Path, keep_docstrings: bool = False) -> tuple[list[D.Pair], dict]:
    """(title, code) pairs of the StaQC pickles named by `path`, and the counts."""
    pairs: list[D.Pair] = []
    counts = {"records": 0, "records_without_pair": 0}
    for tp, cp in staqc_files(path):
        titles, codes = safe_load(tp), safe_load(cp)
        for name, obj in ((tp, titles), (cp, codes)):
            if not isinstance(obj, dict):
                raise InputError(f"{name}: a StaQC pickle holds a dict, not {type(obj).__name__}",
                                 hint="qid_to_title {qid: title}, iid_to_code {(qid, i): code}")
        for key in sorted(codes, key=repr):
            counts["records"] += 1
            qid = key[0] if isinstance(key, tuple) and key else key
            q, code = _text(titles.get(qid)), _text(codes[key])
            if q is None or code is None:
                counts["records_without_pair"] += 1
                continue
            ident = "-".join(map(str, key)) if isinstance(key, tuple) else str(key)
            pairs.append(D.Pair(q, _code_side(code, keep_docstrings), f"staqc:{qid}", str(cp), 0, ident))
    return pairs, counts


def is_pickle(word: str) -> bool:
    """A StaQC source word: a `.pickle`/`.pkl` file, or a folder holding `*qid_to_title.pickle`."""
    p = Path(word)
    if p.suffix in (".pickle", ".pkl"):
        return True
    return p.is_dir() and any(p.glob("*qid_to_title.p*"))
