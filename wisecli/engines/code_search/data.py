"""Real layouts read by `wise code-search`: Python source trees (functions found with `ast`, never imported or
run), JSONL snippets and (query, code) pairs, docstring-derived training pairs, module splits.

Choices (specs/code-search.md §2.1, §4 where silent):
- A function's code side is its source from the first decorator to its last line, dedented, with the docstring
  removed line by line (comments kept for the tokenizer); a body that was only a docstring becomes `...`. Where
  the docstring shares a line with other code, the function is re-written by `ast.unparse` instead.
- Query = the docstring's first sentence: `inspect.cleandoc`, doctest (`>>>`) lines dropped, cut at the first
  blank line, Sphinx roles (`:param x:`, `:func:`x``) and markup (``` `` ```, `*`) removed, cut at the first ". ",
  at least 3 words; a pair whose query appears verbatim (case-insensitive) in its code side is dropped.
- Normalised-code hash: SHA-256 of the code tokens joined by spaces (identical small functions collide).
- Split: top-level module name → SHA-256 → bucket of 100; < 80 train, < 90 val, else test. De-duplication keeps
  the first of a code hash in sorted path order, so no code hash is in two splits.
- Standard library: `sysconfig`'s stdlib folder, skipping `test/`, `tests/`, `idlelib/`, `site-packages/`,
  `lib2to3/tests`, and files that fail to parse (recorded, not fatal for the built-in source).
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import inspect
import json
import re
import sysconfig
import textwrap
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wisecli.cli.errors import InputError

from .tokenizer import code_tokens, query_tokens

SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}
EXCLUDE = (".git", "__pycache__", ".venv", "venv", "build", "dist", "node_modules", "site-packages")


@dataclass
class Function:
    """One searchable function: where it is, its code side (docstring removed) and its docstring."""

    path: str
    qualname: str
    start_lineno: int
    lineno: int
    end_lineno: int
    signature: str
    code: str
    docstring: str | None = None
    module: str = ""
    file_sha256: str = ""
    code_sha256: str = ""
    language: str = "python"
    id: str = ""
    extra: dict = field(default_factory=dict)

    def meta(self) -> dict:
        """The functions.jsonl record (no code, no docstring)."""
        d = asdict(self)
        for k in ("code", "docstring", "extra"):
            d.pop(k)
        return d


_COMMENT = re.compile(r"#[^\n]*")


def norm_hash(code: str) -> str:
    """The normalised-code hash: SHA-256 of the code with `#` comments removed and whitespace runs made one space
    (a regex, not `tokenize`: a `#` inside a string is cut the same way in every copy)."""
    return hashlib.sha256(" ".join(_COMMENT.sub("", code).split()).encode()).hexdigest()


def _docstring_node(fn) -> ast.Expr | None:
    if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) \
            and isinstance(fn.body[0].value.value, str):
        return fn.body[0]
    return None


def strip_docstring(lines: list[str], fn, start: int) -> str:
    """The function's source (file lines `start`..`fn.end_lineno`, 1-based) without its docstring, dedented.
    A docstring-only body becomes `...`."""
    seg = lines[start - 1: fn.end_lineno]
    doc = _docstring_node(fn)
    if doc is not None:
        a, b = doc.lineno - start, doc.end_lineno - start
        head, tail = seg[a][: doc.col_offset], seg[b][doc.end_col_offset:]
        if head.strip() or tail.strip().lstrip(";").strip():
            return _unparse_without_doc(fn)
        indent = head
        keep = seg[:a] + ([indent + "...\n"] if len(fn.body) == 1 else []) + seg[b + 1:]
        seg = keep
    return textwrap.dedent("".join(seg))


def _unparse_without_doc(fn) -> str:
    import copy

    node = copy.deepcopy(fn)
    if _docstring_node(node) is not None:
        node.body = node.body[1:] or [ast.Expr(ast.Constant(...))]
    return ast.unparse(node) + "\n"


def _signature(lines: list[str], fn) -> str:
    first = fn.body[0].lineno if fn.body else fn.lineno
    text = " ".join(l.strip() for l in lines[fn.lineno - 1: max(fn.lineno, first - 1)])
    if fn.body and fn.body[0].lineno == fn.lineno:  # one-line def
        text = lines[fn.lineno - 1].strip()
    m = re.match(r"(.*?\)\s*(->\s*[^:]+)?:)", text)
    return (m.group(1) if m else text)[:300]


def _stmt_children(node):
    """Statements directly inside `node` (bodies, else, finally, handlers, match cases): where defs can be."""
    for name in ("body", "orelse", "finalbody"):
        v = getattr(node, name, None)
        if isinstance(v, list):
            yield from v
    for h in getattr(node, "handlers", ()) or ():
        yield from h.body
    for c in getattr(node, "cases", ()) or ():
        yield from c.body


def parse(source: str) -> ast.Module:
    """`ast.parse` with room on the stack: CPython 3.11 sizes the AST converter's depth budget from the Python
    recursion limit minus the current depth, and reports running out as "SystemError: AST constructor recursion
    depth mismatch" (python/cpython#106905) when called deep in a stack (an in-process test runner). The limit is
    raised to 10,000 for the call; a file that still fails is a ValueError (an item error)."""
    import sys

    old = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(old, 10000))
        return ast.parse(source)
    except SystemError as exc:
        raise ValueError(f"the parser gave up: {exc}") from None
    finally:
        sys.setrecursionlimit(old)


def extract_functions(source: str, path: str, module: str = "", file_sha256: str = "",
                      documented_only: bool = False) -> list[Function]:
    """Every function and method of `source` (nested ones too) with `__qualname__`-style names
    (`C.m`, `f.<locals>.g`); `documented_only` skips the code side of functions without a docstring (training
    pairs). Raises SyntaxError/ValueError when the source does not parse."""
    tree = parse(source)
    lines = source.splitlines(keepends=True)
    out: list[Function] = []

    def visit(node, prefix: str):
        for child in _stmt_children(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = prefix + child.name
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                doc = ast.get_docstring(child, clean=True)
                if documented_only and not doc:
                    visit(child, qual + ".<locals>.")
                    continue
                code = strip_docstring(lines, child, start)
                out.append(Function(path=path, qualname=qual, start_lineno=start, lineno=child.lineno,
                                    end_lineno=child.end_lineno, signature=_signature(lines, child), code=code,
                                    docstring=doc, module=module, file_sha256=file_sha256))
                visit(child, qual + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    for f in out:
        f.code_sha256 = hashlib.sha256(f.code.encode()).hexdigest()
        f.id = f"{f.path}:{f.start_lineno}:{f.qualname}"
    return out


_ROLE = re.compile(r":[A-Za-z_]+(?:\s+[^:`]*)?:(`([^`]*)`)?")
_SPACE = re.compile(r"\s+")


def query_from_docstring(doc: str | None, min_words: int = 3) -> str | None:
    """The docstring's first sentence as a query (module docstring), or None when under `min_words` words."""
    if not doc:
        return None
    lines = [l for l in inspect.cleandoc(doc).splitlines() if not l.strip().startswith((">>>", "..."))]
    para: list[str] = []
    for l in lines:
        if not l.strip():
            if para:
                break
            continue
        para.append(l.strip())
    text = " ".join(para)
    text = _ROLE.sub(lambda m: m.group(2) or "", text)
    text = text.replace("``", "").replace("`", "").replace("**", "").replace("*", "")
    text = text.split(". ")[0].strip().rstrip(".").strip()
    text = _SPACE.sub(" ", text)
    if len(text.split()) < min_words:
        return None
    return text


def stdlib_root() -> Path:
    """This interpreter's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[tuple[Path, str]]:
    """(file, top-level module) of every standard-library `.py` file (skipping tests, idlelib, site-packages)."""
    import os

    root = root or stdlib_root()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not (
            rel == Path(".") and d.startswith(("test", "idlelib", "lib2to3", "ensurepip", "turtledemo")))]
        for f in filenames:
            if f.endswith(".py") and not (rel == Path(".") and f.startswith("test")):
                p = Path(dirpath) / f
                out.append((p, f[:-3] if rel == Path(".") else rel.parts[0]))
    return sorted(out)


def module_split(module: str, val: float = 0.1, test: float = 0.1) -> str:
    """'train', 'val' or 'test' of a top-level module, by a hash (stable across machines)."""
    h = int(hashlib.sha256(module.encode()).hexdigest()[:8], 16) % 1000 / 1000
    return "train" if h < 1 - val - test else "val" if h < 1 - test else "test"


@dataclass
class Pair:
    """One (query, code) pair with where it came from."""

    query: str
    code: str
    module: str = ""
    path: str = ""
    lineno: int = 0
    qualname: str = ""
    hash: str = ""


def pairs_from_functions(funcs: list[Function], keep_docstrings: bool = False) -> tuple[list[Pair], dict]:
    """Docstring pairs of `funcs` and the filter counts (no docstring, short query, query in code)."""
    counts = {"functions": len(funcs), "no_docstring": 0, "short_query": 0, "query_in_code": 0}
    out = []
    for f in funcs:
        if not f.docstring:
            counts["no_docstring"] += 1
            continue
        q = query_from_docstring(f.docstring)
        if q is None:
            counts["short_query"] += 1
            continue
        code = f.code
        if keep_docstrings:
            code = f'"""{f.docstring}"""\n' + code
        if q.lower() in f.code.lower():
            counts["query_in_code"] += 1
            continue
        out.append(Pair(q, code, f.module, f.path, f.start_lineno, f.qualname))
    return out, counts


def dedupe(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """Keep the first pair of each normalised-code hash (sets `hash`); returns (kept, dropped)."""
    seen, out = set(), []
    for p in pairs:
        p.hash = p.hash or norm_hash(p.code)
        if p.hash in seen:
            continue
        seen.add(p.hash)
        out.append(p)
    return out, len(pairs) - len(out)


def read_python_files(files: list[tuple[Path, str]], *, strict: bool, errors: list | None = None,
                      base: Path | None = None, documented_only: bool = False) -> list[Function]:
    """Functions of (file, module) pairs; a file that fails to decode or parse raises InputError when `strict`,
    else is recorded in `errors` ({path, line, error})."""
    out = []
    for p, mod in files:
        try:
            raw = p.read_bytes()
            src = raw.decode("utf-8")
            name = str(p.relative_to(base)) if base is not None else str(p)
            out.extend(extract_functions(src, name, mod, hashlib.sha256(raw).hexdigest(), documented_only))
        except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError, OSError) as exc:
            line = getattr(exc, "lineno", None)
            msg = f"{type(exc).__name__}: {getattr(exc, 'msg', None) or exc}"
            if strict:
                raise InputError(f"{p}{':' + str(line) if line else ''}: cannot read Python source ({msg})",
                                 hint="give UTF-8 Python files that parse") from None
            if errors is not None:
                errors.append({"path": str(p), "line": line, "error": msg})
    return out


def stdlib_pairs(modules: set[str] | None = None, max_modules: int | None = None, *, split: str | None = None,
                 largest: bool = False, max_bytes: int | None = None,
                 keep_docstrings: bool = False) -> tuple[list[Pair], dict]:
    """Docstring pairs of the standard library (optionally only `modules`, one `split`, the `max_modules`
    largest modules by bytes among those of at most `max_bytes`), de-duplicated. Returns (pairs, counts)."""
    files = stdlib_files()
    if split is not None:
        files = [(p, m) for p, m in files if module_split(m) == split]
    if modules is not None:
        files = [(p, m) for p, m in files if m in modules]
    if max_modules is not None:
        size: dict[str, int] = {}
        for p, m in files:
            size[m] = size.get(m, 0) + p.stat().st_size
        cand = [m for m in size if max_bytes is None or size[m] <= max_bytes]
        order = sorted(cand, key=lambda m: (-size[m], m)) if largest else sorted(cand)
        keep = set(order[:max_modules])
        files = [(p, m) for p, m in files if m in keep]
    funcs = read_python_files(files, strict=False, errors=[], base=stdlib_root(), documented_only=True)
    pairs, counts = pairs_from_functions(funcs, keep_docstrings)
    counts.pop("no_docstring")
    pairs, dup = dedupe(pairs)
    counts.update(duplicates=dup, pairs=len(pairs), modules=len({m for _, m in files}))
    return pairs, counts


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: Path | str, *, strict: bool = True, errors: list | None = None) -> list[dict]:
    """Records of a JSONL file (`.gz` read); `-` reads stdin. A bad line is an InputError naming file:line when
    `strict`, else recorded in `errors`."""
    import sys

    recs = []
    try:
        fh = sys.stdin if str(path) == "-" else _open_text(Path(path))
        with fh if fh is not sys.stdin else _nullctx(fh) as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if not isinstance(rec, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    if strict:
                        raise InputError(f"{path}:{i}: not a JSON object ({exc})",
                                         hint="one JSON object per line") from None
                    if errors is not None:
                        errors.append({"path": str(path), "line": i, "error": f"invalid JSON: {exc}"})
                    continue
                rec["_line"] = i
                recs.append(rec)
    except (UnicodeDecodeError, OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="give a UTF-8 JSONL file (.gz ok)") from None
    if strict and not recs:
        raise InputError(f"{path} holds no JSON records", hint="one JSON object per line")
    return recs


class _nullctx:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self.f

    def __exit__(self, *a):
        return False


def pair_of_record(rec: dict) -> tuple[str, str] | None:
    """(query, code) of a pairs or CodeSearchNet record, or None without both."""
    q = rec.get("query")
    if q is None and rec.get("docstring_tokens"):
        q = " ".join(rec["docstring_tokens"])
    code = rec.get("code", rec.get("original_string"))
    if not isinstance(q, str) or not isinstance(code, str) or not q.strip() or not code.strip():
        return None
    if "docstring_tokens" in rec and rec.get("language", "python") == "python":
        try:
            fs = extract_functions(textwrap.dedent(code), "x")
            if fs:
                code = fs[0].code
        except (SyntaxError, ValueError):
            pass
    return q, code
