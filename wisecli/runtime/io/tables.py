"""Delimited text tables (CSV/TSV with a header row) kept as their raw text tokens.

Cells stay strings, so a tool that passes columns through (`select-features predict`) writes them back
byte-identical; `Table.numeric` converts the columns a method computes on. Parsed with the `csv` module
(pandas is not a dependency). Missing cells: empty, `NA`, `NaN`/`nan` (any case), `null`, `None`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

MISSING = frozenset({"", "na", "nan", "null", "none", "n/a"})


def default_sep(path: Path | str | None) -> str:
    """`,` for .csv (and stdin), tab for .tsv/.tab/.txt."""
    suffix = Path(str(path)).suffix.lower() if path is not None else ""
    return "\t" if suffix in (".tsv", ".tab", ".txt") else ","


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    lines: list[int] = field(default_factory=list)  # 1-based line number of each row in the source
    source: str = ""
    sep: str = ","

    def index(self, name: str) -> int:
        return self.columns.index(name)

    def column(self, name: str) -> list[str]:
        j = self.index(name)
        return [r[j] for r in self.rows]

    def non_numeric(self, cols: list[str]) -> list[str]:
        """The columns among `cols` holding a token that is neither a number nor a missing marker."""
        bad = []
        for c in cols:
            j = self.index(c)
            for r in self.rows:
                tok = r[j].strip()
                if tok.lower() in MISSING:
                    continue
                try:
                    float(tok)
                except ValueError:
                    bad.append(c)
                    break
        return bad

    def numeric(self, cols: list[str]) -> np.ndarray:
        """float64 matrix (rows × cols); missing cells are NaN. A non-numeric cell is an InputError."""
        bad = self.non_numeric(cols)
        if bad:
            raise InputError(f"{self.source}: non-numeric column(s) {', '.join(bad[:5])}"
                             + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""),
                             hint="drop or encode these columns")
        idx = [self.index(c) for c in cols]
        out = np.empty((len(self.rows), len(idx)), dtype=np.float64)
        for i, r in enumerate(self.rows):
            for k, j in enumerate(idx):
                tok = r[j].strip()
                out[i, k] = np.nan if tok.lower() in MISSING else float(tok)
        return out


def parse_table(text: str, *, sep: str = ",", source: str = "<stdin>") -> Table:
    """Parse header + rows; empty tables, duplicate column names and ragged rows are InputErrors."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header: list[str] | None = None
    rows, lines = [], []
    for rec in reader:
        if not rec or (len(rec) == 1 and rec[0].strip() == ""):
            continue  # blank line
        if header is None:
            header = [h.strip() for h in rec]
            continue
        if len(rec) != len(header):
            raise InputError(f"{source}: line {reader.line_num} has {len(rec)} fields, the header has {len(header)}",
                             hint=f"every row needs one value per column; check the separator (--sep, now {sep!r})")
        rows.append(rec)
        lines.append(reader.line_num)
    if header is None or not rows:
        raise InputError(f"{source}: the table is empty" + ("" if header is None else " (a header and no rows)"),
                         hint="give a CSV/TSV file with a header row and at least one data row")
    seen, dups = set(), []
    for h in header:
        if h in seen and h not in dups:
            dups.append(h)
        seen.add(h)
    if dups:
        raise InputError(f"{source}: duplicate column name(s) {', '.join(dups[:5])}",
                         hint="rename the columns so that every name is unique")
    return Table(columns=header, rows=rows, lines=lines, source=source, sep=sep)


def read_table(path: Path | str, *, sep: str | None = None) -> Table:
    """Read a CSV/TSV file with a header row (UTF-8, BOM tolerated); `sep` defaults by extension."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"file not found: {path}", hint="check the path") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text table", hint="give a CSV/TSV text file") from None
    return parse_table(text, sep=sep or default_sep(path), source=str(path))


def write_table(columns: list[str], rows: list[list[str]], *, sep: str = ",") -> str:
    """The table as text, tokens written as given (quoted only where the separator or quotes need it)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def read_array(path: Path | str, *, key: str | None = None) -> np.ndarray:
    """.npy, .npz (`key` or the only array) or a numeric CSV/TSV as a float64 array."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}", hint="check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None:
                    if len(names) != 1:
                        raise InputError(f"{path}: holds {', '.join(names)}; which one?", hint="name the array key")
                    key = names[0]
                if key not in names:
                    raise InputError(f"{path}: no array {key!r} (has {', '.join(names)})", hint="name one of these keys")
                return z[key]
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="give a valid .npy/.npz file") from None
    table = read_table(path)
    return table.numeric(table.columns)
