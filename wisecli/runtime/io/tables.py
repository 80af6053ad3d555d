"""Tables and arrays: CSV/TSV with a header row, .npy and .npz arrays.

Choices: the separator follows the extension (.tsv/.tab tab, .csv comma); for stdin (`-`) and other names
it is a tab when the header line holds one, else a comma. Cells keep their raw text (stripped of
surrounding spaces, CSV quoting honoured); numbers are parsed only when asked, so a label column can sit
beside numeric ones. Blank lines are skipped. An empty cell is not a number: missing values are an error
that names the cell, never a silent NaN ("nan" written out is accepted).
"""

from __future__ import annotations

import csv
import difflib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

TABLE_HINT = "give a CSV or TSV file with one header row (or '-' for stdin)"


def _suggest(name: str, choices: list[str], what: str) -> str:
    """A did-you-mean hint (case-insensitive), else the first choices."""
    lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1)
    return f"did you mean '{lower[close[0]]}'?" if close else f"{what}: " + ", ".join(choices[:20])


@dataclass
class Table:
    """A table of raw text tokens: `columns` from the header, `rows` the cells, `lines` each row's line
    number in the file (for messages)."""

    columns: list[str]
    rows: list[list[str]]
    lines: list[int] = field(default_factory=list)
    source: str = "table"

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, name: str) -> int:
        """The position of column `name`; an unknown name is an InputError with a did-you-mean hint."""
        try:
            return self.columns.index(name)
        except ValueError:
            raise InputError(f"no column '{name}' in {self.source}",
                             hint=_suggest(name, self.columns, "columns")) from None

    def column(self, name: str) -> list[str]:
        """The raw tokens of one column."""
        j = self.index(name)
        return [row[j] for row in self.rows]

    def numeric(self, cols: list[str] | None = None) -> np.ndarray:
        """The named columns (all when None) as a float64 array (rows, columns); the first cell that is
        not a number is an InputError naming its line and column."""
        names = list(self.columns) if cols is None else list(cols)
        idx = [self.index(c) for c in names]
        out = np.empty((len(self.rows), len(idx)), dtype=np.float64)
        for i, row in enumerate(self.rows):
            for k, j in enumerate(idx):
                token = row[j]
                try:
                    out[i, k] = float(token)
                except ValueError:
                    line = self.lines[i] if i < len(self.lines) else i + 2
                    what = "is empty" if token == "" else f"'{token[:40]}' is not a number"
                    raise InputError(f"{self.source} line {line}, column '{self.columns[j]}': {what}",
                                     hint="numeric columns must hold numbers only") from None
        return out


def _read_text(path: Path | str) -> tuple[str, str]:
    if str(path) == "-":
        return sys.stdin.read(), "stdin"
    path = Path(path)
    if not path.is_file():
        raise InputError(f"table not found: {path}", hint=TABLE_HINT)
    try:
        return path.read_text(encoding="utf-8-sig"), str(path)
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {path}: not UTF-8 text (byte {exc.start})", hint=TABLE_HINT) from None


def _sep_for(path: Path | str, text: str) -> str:
    suffix = Path(str(path)).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    return "\t" if "\t" in header else ","


def read_table(path: Path | str, *, sep: str | None = None) -> Table:
    """Read a CSV/TSV table with a header row; `-` reads stdin. Ragged rows are an InputError naming the line."""
    text, source = _read_text(path)
    return _parse(text, source, sep or _sep_for(path, text), header=True)


def _parse(text: str, source: str, sep: str, *, header: bool) -> Table:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sep)
    columns: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not record or all(not cell.strip() for cell in record):
                continue
            cells = [cell.strip() for cell in record]
            if columns is None:
                if header:
                    columns = cells
                    dup = sorted({c for c in columns if columns.count(c) > 1})
                    if dup:
                        raise InputError(f"{source}: duplicate column name '{dup[0]}' in the header",
                                         hint="give every column a unique name")
                    continue
                columns = [f"column {j + 1}" for j in range(len(cells))]
            if len(cells) != len(columns):
                raise InputError(f"{source} line {reader.line_num}: {len(cells)} fields, the {'header' if header else 'first row'} has {len(columns)}",
                                 hint=f"every row needs {len(columns)} fields separated by {sep!r}")
            rows.append(cells)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(f"{source} line {reader.line_num}: {exc}", hint=TABLE_HINT) from None
    if columns is None:
        raise InputError(f"{source} is empty", hint=TABLE_HINT)
    return Table(columns, rows, lines, source)


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def read_array(path: Path | str, *, key: str | None = None) -> np.ndarray:
    """A numeric array from .npy, .npz (`key`, or the only array) or a numeric .csv/.tsv/.txt (a first row
    holding a token that is not a number is taken as a header)."""
    p = Path(str(path))
    suffix = p.suffix.lower()
    if suffix in (".npy", ".npz"):
        if not p.is_file():
            raise InputError(f"array file not found: {p}", hint="give a .npy, .npz or numeric .csv file")
        try:
            data = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot read {p}: {first}",
                             hint="the file is corrupt or holds Python objects (only plain numeric arrays are read)") from None
        if suffix == ".npy":
            return data
        with data:
            names = list(data.files)
            if key is None:
                if len(names) != 1:
                    raise InputError(f"{p} holds {len(names)} arrays: {', '.join(names[:10])}",
                                     hint="choose one with its key")
                key = names[0]
            if key not in names:
                raise InputError(f"no array '{key}' in {p}", hint=_suggest(key, names, "keys"))
            try:
                return data[key]
            except ValueError as exc:
                raise InputError(f"cannot read '{key}' from {p}: {str(exc)[:200]}",
                                 hint="only plain numeric arrays are read") from None
    text, source = _read_text(path)
    sep = _sep_for(path, text)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    header = not all(_is_number(t.strip().strip('"')) for t in first.split(sep))
    return _parse(text, source, sep, header=header).numeric()
