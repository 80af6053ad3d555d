"""The one output sink: data on stdout (a table, `--json` one document, `--jsonl` one record per item),
everything else (info, warnings, progress) on stderr, so pipelines only ever read data."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def to_plain(obj: Any) -> Any:
    """JSON-ready copy: numpy and torch scalars/arrays, Paths, sets and tuples become plain values."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return to_plain(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_plain(obj.item())
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON of `to_plain(obj)`: NaN and infinities are null, never `NaN`/`Infinity`."""
    return json.dumps(to_plain(obj), indent=indent, allow_nan=False)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return "[" + ", ".join(_cell(v) for v in value) + "]"  # an interval or a short vector, read like a float
    if isinstance(value, (dict, list)):
        return dumps(value)
    return "" if value is None else str(value)


def info_rows(doc: dict, expand: dict[str, str] | None = None) -> list[dict]:
    """The `info` table of a method: a row per top-level item of `doc` that is not a dict (nested dicts are left
    to `--json`), then a row per entry of each dict named in `expand` (doc key -> row prefix, e.g. {"choices":
    "choice"})."""
    rows = [{"item": k, "value": v} for k, v in doc.items() if not isinstance(v, dict)]
    for key, prefix in (expand or {}).items():
        rows += [{"item": f"{prefix} {k}", "value": v} for k, v in doc[key].items()]
    return rows


class Sink:
    """Where a command's words go; one per command invocation."""

    def __init__(self, *, json: bool = False, jsonl: bool = False, quiet: bool | None = None,
                 verbose: bool | None = None):
        """`quiet`/`verbose` left at None come from the verb's shared `-q`/`-v` (`cli.common`)."""
        if json and jsonl:
            from wisecli.cli.errors import InputError

            raise InputError("--json and --jsonl exclude each other",
                             hint="--json prints one document at the end, --jsonl one line per input: pick one")
        from wisecli.cli.common import shared

        self.json = json
        self.jsonl = jsonl
        self.quiet = bool(shared("quiet") if quiet is None else quiet)
        self.verbose = bool(shared("verbose") if verbose is None else verbose)
        self._err = None

    @property
    def err(self):
        """The rich console on stderr (made on first use)."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err

    # data --------------------------------------------------------------------------------------------
    def record(self, rec: dict) -> None:
        """One record per finished item, printed at once with `--jsonl`."""
        if self.jsonl:
            sys.stdout.write(dumps(rec) + "\n")
            sys.stdout.flush()

    def result(self, doc: Any, *, rows: list[dict] | None = None, title: str | None = None,
               columns: list[str] | None = None) -> None:
        """The command's result: `--json` prints `doc`; otherwise a table of `rows` (or of `doc`)."""
        if self.json:
            sys.stdout.write(dumps(doc, indent=2) + "\n")
            sys.stdout.flush()
            return
        if self.jsonl:
            return
        if rows is None:
            rows = doc if isinstance(doc, list) else [doc] if isinstance(doc, dict) else None
        if rows is None:
            sys.stdout.write(f"{doc}\n")
            return
        self.table(rows, title=title, columns=columns)

    def table(self, rows: list[dict], *, title: str | None = None, columns: list[str] | None = None) -> None:
        """Rows as a rich table on stdout (200 columns wide when stdout is not a terminal)."""
        from rich.console import Console
        from rich.table import Table

        if columns is None:
            columns = []
            for r in rows:
                columns.extend(k for k in r if k not in columns)
        table = Table(title=title, show_lines=False)
        for c in columns:
            table.add_column(str(c))
        for r in rows:
            table.add_row(*(_cell(r.get(c)) for c in columns))
        Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(table)

    def finish(self, records: list[dict], what: str = "inputs") -> None:
        """After the result is printed: exit 3 (PartialFailure) when some records failed: any status other than
        `ok` and `skipped` (`error`, or a method's own failure such as fas's `no_face`), as `run_batch` counts them."""
        failed = sum(1 for r in records if r.get("status", "ok") not in ("ok", "skipped"))
        if failed:
            from wisecli.cli.errors import PartialFailure

            raise PartialFailure(f"{failed} of {len(records)} {what} failed",
                                 hint="see the records whose status is not 'ok' (--jsonl) or the warnings above")

    def demo(self, result: Any, *, title: str) -> None:
        """Print a demo's gates (a `DemoResult`); exit 1 (WorkFailed) when a gate failed."""
        doc = result.as_dict()
        rows = [{"gate": g["gate"], "value": g["value"], "needs": f"{g['op']} {g['threshold']}",
                 "ok": "yes" if g["ok"] else "NO"} for g in doc["gates"]]
        self.result(doc, rows=rows, title=title)
        if not result.ok:
            from wisecli.cli.errors import WorkFailed

            bad = [g["gate"] for g in doc["gates"] if not g["ok"]]
            raise WorkFailed(f"demo gate failed: {', '.join(bad)}", hint="the table shows the value and the threshold")

    def benchmark(self, records: list[Any], *, title: str) -> None:
        """Print benchmark records (`BenchRecord`s) as one table or `--json` document; a `BenchRecords` list's
        `summary` (what a method's spec asks for beside the records) goes into that document too."""
        recs = [r.as_dict() for r in records]
        cols = ["case", "ours_s", "peer", "peer_s", "speedup", "device"]
        self.result({"records": recs, **getattr(records, "summary", {})}, rows=recs,
                    columns=[c for c in cols if any(c in r for r in recs)] or None, title=title)

    # messages ----------------------------------------------------------------------------------------
    def info(self, msg: str) -> None:
        """A message on stderr (hidden by -q)."""
        if not self.quiet:
            self.err.print(msg, markup=False)

    def warn(self, msg: str) -> None:
        """`Warning: msg` on stderr (hidden by -q)."""
        if not self.quiet:
            self.err.print(f"Warning: {msg}", markup=False, style="yellow")

    def debug(self, msg: str) -> None:
        """Detail on stderr, shown with -v only."""
        if self.verbose:
            self.err.print(msg, markup=False, style="dim")
