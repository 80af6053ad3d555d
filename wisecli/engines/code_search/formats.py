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
  one split.
CoaCor (Yao, Peddamail, Sun, WWW 2019, `LittleYUYU/CoaCor` `code/CodeRetrieval-Main/data/`; checked there, no
file of it is shipped or downloaded): StaQC-SQL re-released as token ids, Python-2 protocol-0 pickles,
- `sql.{train,val,test}.{qt,code}.pkl`: aligned lists of (id, "space-separated token ids") — the qt list's id is
  the question id, the code list's its own; entry i of one is the pair of entry i of the other (by position),
- `sql.qt.vocab.pkl`, `sql.code.vocab.pkl`: {word: id} with 0-3 = <pad> <sos> <eos> <unk>; ids are decoded back
  to words through them (unknown ids, pad/sos/eos dropped; <unk> kept as a word),
- `codenn_combine_new.sql.{dev,eval}.{qt,code}.pkl` (CODE-NN's SQL dev/eval): the code list holds plain id
  strings, the qt list, entry by entry, a list of 3 id strings (three paraphrases of one question); each
  consecutive block of 50 repeats one triple and holds its true code first (dev 111,000 = 111 questions x 20
  pools, eval 100,000 = 100 x 20), decoded with the `sql.*.vocab.pkl` beside them.
  The released evaluation (CoaCor `codesearcher.py` `eval`/`eval_codenn`, a DataLoader of batch 50, no
  shuffle): StaQC `val`/`test` (11,900 and 17,850 pairs) are consecutive pools of 50 in file order, query i of a
  pool ranked among its pool's 50 codes, the true code on the diagonal (a short last pool is dropped and
  reported, as CoaCor's `drop_last`); codenn: each pool's 3 queries ranked among its 50 codes, the true one
  first. `coacor_pools` gives these pools; `read_coacor` the (query, code) pairs in file order, NOT
  de-duplicated (a de-duplication would shift the pools). Split unit `coacor:<question id>` (codenn: the pool's
  triple); the split is the file: train on `sql.train.*`, `--val sql.val.qt.pkl`, evaluate on `sql.test.*`.
  DATA names either file of a qt/code pair (the other and the vocabularies are found beside it); detected by
  these names under `--format auto`, `--format coacor` for renamed copies (names must still end `.qt.pkl` or
  `.code.pkl`, with `<lang>.qt.vocab.pkl`/`<lang>.code.vocab.pkl` beside them, `<lang>` the part before the split
  word: `sql`, or `python` for a Python re-release of the same layout, not in the public repo).
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
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


# ---------------------------------------------------------------- CoaCor token-id pickles

_COACOR = re.compile(r"^(?P<stem>(?:(?P<codenn>codenn[^.]*)\.)?(?P<lang>[A-Za-z0-9_-]+)\.(?P<split>[A-Za-z0-9_-]+))"
                     r"\.(?P<side>qt|code)\.pkl$")
_COACOR_SPLITS = {"train", "val", "valid", "dev", "test", "eval"}
POOL = 50


def is_coacor(word: str, strict: bool = False) -> bool:
    """A CoaCor qt/code pickle by its name (`sql.test.qt.pkl`, `codenn_combine_new.sql.eval.code.pkl`);
    `strict` False (auto-detection) also needs a known split word."""
    m = _COACOR.match(Path(word).name)
    return bool(m) and (strict or m["split"] in _COACOR_SPLITS)


def _coacor_files(path: Path) -> tuple[Path, Path, Path, Path, bool]:
    """(qt pickle, code pickle, qt vocabulary, code vocabulary, is codenn) of the CoaCor file `path`."""
    path = Path(path)
    m = _COACOR.match(path.name)
    if not m:
        raise InputError(f"{path} is not a CoaCor pickle (names end .qt.pkl or .code.pkl, e.g. sql.test.qt.pkl)",
                         hint="give sql.{train,val,test}.{qt,code}.pkl or codenn_combine_new.sql.{dev,eval}.*.pkl")
    d, stem = path.parent, m["stem"]
    files = (d / f"{stem}.qt.pkl", d / f"{stem}.code.pkl", d / f"{m['lang']}.qt.vocab.pkl",
             d / f"{m['lang']}.code.vocab.pkl")
    for f in files:
        if not f.is_file():
            raise InputError(f"{f.name} is missing beside {path.name}",
                             hint="CoaCor's qt and code pickles and the <lang>.qt.vocab.pkl / <lang>.code.vocab.pkl "
                                  "vocabularies lie in one folder (code/CodeRetrieval-Main/data/)")
    return (*files, m["codenn"] is not None)


def _inverse_vocab(path: Path) -> dict[int, str]:
    v = safe_load(path)
    if not isinstance(v, dict) or not v or not all(isinstance(i, int) for i in v.values()):
        raise InputError(f"{path}: a CoaCor vocabulary is a dict {{word: id}}",
                         hint="give CoaCor's sql.qt.vocab.pkl / sql.code.vocab.pkl")
    inv: dict[int, str] = {}
    for w, i in v.items():
        w = _text(w)
        if w is not None:
            inv[int(i)] = w
    return inv


_SPECIAL = {"<pad>", "<sos>", "<eos>"}


def _decode(ids, inv: dict[int, str], where: str) -> str:
    """Words of one space-separated token-id string (ids not in the vocabulary and pad/sos/eos dropped)."""
    s = _text(ids) if not isinstance(ids, (list, tuple)) else " ".join(map(str, ids))
    if s is None:
        return ""
    try:
        toks = [inv.get(int(t)) for t in s.split()]
    except ValueError:
        raise InputError(f"{where}: not a token-id string ({s[:40]!r})",
                         hint="CoaCor's pickles hold space-separated integer ids") from None
    return " ".join(t for t in toks if t is not None and t not in _SPECIAL)


@dataclass
class Pools:
    """Released evaluation pools of one CoaCor file: query i is ranked among codes[cols[i]] with its true code at
    column true[i]; pool[i] numbers its pool; dropped = entries of a short last pool left out."""
    queries: list[str]
    codes: list[str]
    cols: np.ndarray
    true: np.ndarray
    pool: np.ndarray
    dropped: int
    kind: str


def _load_coacor(path: Path):
    qt_p, code_p, qv_p, cv_p, codenn = _coacor_files(path)
    qt, code = safe_load(qt_p), safe_load(code_p)
    for name, obj in ((qt_p, qt), (code_p, code)):
        if not isinstance(obj, list):
            raise InputError(f"{name}: a CoaCor pickle holds a list, not {type(obj).__name__}",
                             hint="lists of (id, token ids) (StaQC) or token-id strings (codenn)")
    if len(qt) != len(code):
        raise InputError(f"{qt_p.name} has {len(qt)} entries, {code_p.name} {len(code)}: not aligned",
                         hint="give the qt and code pickles of one split")
    return qt, code, _inverse_vocab(qv_p), _inverse_vocab(cv_p), codenn, code_p


def _entry(x, where: str):
    """(id, token ids) of a StaQC-SQL entry."""
    if isinstance(x, (tuple, list)) and len(x) == 2 and not isinstance(x[1], (list, tuple)):
        return x[0], x[1]
    raise InputError(f"{where}: a CoaCor StaQC entry is (id, token ids), not {type(x).__name__} {str(x)[:40]}",
                     hint="codenn files are named codenn_*.{dev,eval}.{qt,code}.pkl")


def read_coacor(path: Path) -> tuple[list[D.Pair], dict]:
    """(query, code) pairs of a CoaCor qt/code pickle pair in file order (not de-duplicated), and the counts.
    codenn: one pair per pool and paraphrase (the pool's first code is the true one)."""
    qt, code, qinv, cinv, codenn, code_p = _load_coacor(path)
    pairs: list[D.Pair] = []
    counts = {"records": len(qt), "records_without_pair": 0}
    if codenn:
        for p in range(0, len(qt), POOL):
            qs, c = qt[p], _decode(code[p], cinv, f"{code_p}[{p}]")
            if not isinstance(qs, (list, tuple)):
                raise InputError(f"{path}[{p}]: a codenn qt entry is a list of paraphrases",
                                 hint="codenn_combine_new.sql.*.qt.pkl holds lists of 3 id strings")
            for j, q in enumerate(qs):
                q = _decode(q, qinv, f"{path}[{p}]")
                if q and c:
                    pairs.append(D.Pair(q, c, f"coacor:codenn:{qs[0]}", str(code_p), 0, f"{p}.{j}", D.norm_hash(c)))
        return pairs, counts
    for i, (a, b) in enumerate(zip(qt, code)):
        qid, qids = _entry(a, f"{path}[{i}]")
        cid, cids = _entry(b, f"{code_p}[{i}]")
        q, c = _decode(qids, qinv, f"{path}[{i}]"), _decode(cids, cinv, f"{code_p}[{i}]")
        if not q or not c:
            counts["records_without_pair"] += 1
            continue
        pairs.append(D.Pair(q, c, f"coacor:{qid}", str(code_p), 0, str(cid), D.norm_hash(c)))
    return pairs, counts


def coacor_pools(path: Path, size: int = POOL) -> Pools:
    """The released pools of a CoaCor file (see the module docstring): StaQC consecutive blocks of `size` pairs,
    true code on the diagonal; codenn blocks of `size` codes with their 3 paraphrase queries, true code first.
    Empty decoded texts stay in place (an empty code never matches; an empty query ranks with all-tied scores),
    so the pools are exactly the released ones."""
    qt, code, qinv, cinv, codenn, code_p = _load_coacor(path)
    n = len(qt) // size * size
    dropped = len(qt) - n
    codes: list[str] = []
    col_of: dict[str, int] = {}

    def col(text: str) -> int:
        if text not in col_of:
            col_of[text] = len(codes)
            codes.append(text)
        return col_of[text]

    pool_cols = []
    for p in range(0, n, size):
        ids = []
        for i in range(p, p + size):
            ids.append(col(_decode(code[i] if codenn else _entry(code[i], f"{code_p}[{i}]")[1], cinv,
                                   f"{code_p}[{i}]")))
        pool_cols.append(ids)
    queries, cols, true, pool = [], [], [], []
    for k, ids in enumerate(pool_cols):
        p = k * size
        if codenn:
            qs = qt[p]
            if not isinstance(qs, (list, tuple)):
                raise InputError(f"{path}[{p}]: a codenn qt entry is a list of paraphrases",
                                 hint="codenn_combine_new.sql.*.qt.pkl holds lists of 3 id strings")
            for q in qs:
                queries.append(_decode(q, qinv, f"{path}[{p}]"))
                cols.append(ids)
                true.append(0)
                pool.append(k)
        else:
            for j in range(size):
                queries.append(_decode(_entry(qt[p + j], f"{path}[{p + j}]")[1], qinv, f"{path}[{p + j}]"))
                cols.append(ids)
                true.append(j)
                pool.append(k)
    if not queries:
        raise InputError(f"{path}: fewer than {size} entries, no released pool of {size}",
                         hint="CoaCor's val/test files hold pools of 50")
    return Pools(queries, codes, np.asarray(cols, np.int64), np.asarray(true, np.int64), np.asarray(pool, np.int64),
                 dropped, "codenn" if codenn else "staqc")
