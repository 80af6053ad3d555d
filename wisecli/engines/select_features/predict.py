"""`predict`: cut tables down to the selected columns. Cells are copied as their original text tokens (csv,
tsv), or parsed to numbers for `npz`. One table without `-o` (or a lone `-`, the table on stdin) gives the
reduced text back for stdout; otherwise the shared batch loop (`runtime.batch.run_batch`) writes one output per
input into `-o` with `--skip-existing`, `--overwrite`, `--fail-fast`, `--shard` and run.json.

Choice where the spec is silent: `--id-col` defaults to the id column recorded at training time when DATA
has it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError

from . import selection as sel

EXTENSIONS = (".csv", ".tsv", ".txt")


def reduce_table(doc: dict, table, *, k: int | None, order: str, id_col: str | None, keep_target: bool):
    """(columns, rows, feature names) of the reduced table: id column, the top-k feature columns, the target."""
    d = doc["n_features"]
    k = doc["k"] if k is None else k
    sel.check_k(k, d)
    top = doc["features"][:k]
    if order == "original":
        top = sorted(top, key=lambda f: f["index"])
    names = [f["name"] for f in top]
    missing = [n for n in names if n not in table.columns]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(f"{table.source}: selected column(s) missing: {', '.join(missing[:10])}{more}",
                         hint="predict needs a table with the columns the selection was trained on")
    id_col = id_col if id_col is not None else (doc.get("id_col") if doc.get("id_col") in table.columns else None)
    if id_col is not None and id_col not in table.columns:
        from .data import _suggest

        raise InputError(f"{table.source}: --id-col '{id_col}' is not in the header", hint=_suggest(id_col, table.columns))
    cols = ([id_col] if id_col else []) + names
    if keep_target and doc.get("target") in table.columns and doc["target"] not in cols:
        cols.append(doc["target"])
    idx = [table.index(c) for c in cols]
    return cols, [[r[j] for j in idx] for r in table.rows], names


def write_table(columns: list[str], rows: list[list[str]], sep: str) -> str:
    """Tokens written as read: quoted only where the separator, a quote or a newline needs it."""
    import csv
    import io as _io

    buf = _io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def predict_one(doc: dict, table, *, k, order, fmt, id_col, keep_target) -> bytes | str:
    """The reduced table as text (csv/tsv) or npz bytes."""
    cols, rows, names = reduce_table(doc, table, k=k, order=order, id_col=id_col, keep_target=keep_target)
    if fmt in ("csv", "tsv"):
        return write_table(cols, rows, sep="," if fmt == "csv" else "\t")
    import io as _io

    from .data import non_numeric, to_float

    bad = non_numeric(table, names)
    if bad:
        raise InputError(f"{table.source}: non-numeric selected column(s) {', '.join(bad[:5])}",
                         hint="--format npz needs numbers; use --format csv to copy the cells as text")
    x = to_float(table, names)
    arrays = {"X": x.astype(np.float32), "feature_names": np.array(names)}
    if doc.get("target") in cols:
        arrays["y"] = np.array(table.column(doc["target"]))
    if cols[0] not in names and cols[0] != doc.get("target"):
        arrays["ids"] = np.array(table.column(cols[0]))
    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def predict_tables(selection, data: list[str], out_dir: Path | None, *, k: int | None, order: str, fmt: str | None,
                   keep_target: bool, sep: str | None, id_col: str | None, skip_existing: bool = False,
                   overwrite: bool = False, fail_fast: bool = False, shard: str | None = None, debug: bool = False,
                   resolved=None, sink=None) -> str | list[dict]:
    """The reduced table's text for one table without `out_dir` (or the lone `-`); else the batch records."""
    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.io.tables import read_table

    data = [str(p) for p in data]
    to_stdout = out_dir is None and (data == ["-"] or (len(data) == 1 and not data[0].startswith("@")))
    if to_stdout:
        if data[0] != "-" and not Path(data[0]).exists():
            raise InputError(f"input not found: {data[0]}", hint="check the path (relative to the current folder)")
        if fmt == "npz":
            raise InputError("--format npz cannot go to stdout", hint="give -o OUT_DIR")
    elif out_dir is None:
        raise InputError("several tables need -o OUT_DIR", hint="give -o OUT_DIR for the reduced tables")
    items = None if to_stdout else apply_shard(expand_inputs(data, extensions=EXTENSIONS), parse_shard(shard))
    doc = sel.load(selection)
    if k is not None:
        sel.check_k(k, doc["n_features"])

    def out_fmt(path: str) -> str:
        return fmt or ("tsv" if Path(path).suffix.lower() in (".tsv", ".tab") else "csv")

    def reduce(path: str):
        return predict_one(doc, read_table(path, sep=sep), k=k, order=order, fmt=out_fmt(path), id_col=id_col,
                           keep_target=keep_target)

    if to_stdout:
        return reduce(data[0])
    from wisecli.runtime.batch import BatchOptions, run_batch, stem_of
    from wisecli.runtime.io.atomic import write_bytes, write_text
    from wisecli.runtime.runrecord import RunRecord

    out_dir = Path(out_dir)

    def outputs_for(p: Path) -> list[Path]:
        return [out_dir / f"{stem_of(p)}.{out_fmt(str(p))}"]

    def process(p: Path) -> dict:
        result = reduce(str(p))
        dest = outputs_for(p)[0]
        (write_bytes if isinstance(result, bytes) else write_text)(dest, result)
        return {"output": str(dest)}

    record = RunRecord("select-features predict", config=resolved, device="cpu", seed=None,
                       inputs=[str(p) for p in items])
    record.set("selection", str(selection))
    return run_batch(items, process, outputs_for=outputs_for, sink=sink, run_record=record,
                     options=BatchOptions(out_dir=out_dir, skip_existing=skip_existing, overwrite=overwrite,
                                          fail_fast=fail_fast, debug=debug))
