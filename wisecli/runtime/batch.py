"""The model-once batch loop shared by every `predict`/`run`: per-item records, refusal of existing
outputs (checked for all items before any work), `--skip-existing` resume, `--fail-fast`, exit 3 when some
items failed, and `run.json` at the end.

The caller loads its model once and passes `process(item) -> dict`, which writes its outputs atomically
(`wisecli.runtime.io.atomic`) and returns the item's metrics and output paths.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wisecli.cli.errors import InputError, OutputError, WiseError
from wisecli.runtime.rundir import made_dir

_MULTI_SUFFIXES = (".nii.gz", ".tar.gz", ".fronts.npz", ".sig.csv", ".sig.npy")


def stem_of(path: Path | str) -> str:
    """The output stem of an input: `case1.nii.gz` -> `case1`; a folder (a DICOM series) -> its name."""
    path = Path(path)
    if path.is_dir():
        return path.name
    name = path.name
    for suffix in _MULTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass
class BatchOptions:
    """The shared batch flags: `-o`, `--skip-existing`, `--overwrite`, `--fail-fast`, `--debug`."""

    out_dir: Path
    skip_existing: bool = False
    overwrite: bool = False
    fail_fast: bool = False
    debug: bool = False


def jsonl_output(output, shard: tuple[int, int] | None, *, skip_existing: bool, overwrite: bool, inputs: list,
                 verb: str, config: dict, argv=None) -> tuple[Path | None, dict | None]:
    """(path, skipped) for a batch verb that writes all its records to one JSONL file `output` (None: stdout).
    Under `--shard I/N` the file is `<stem>.part-I-of-N.jsonl`, so shards never write the same file. With
    `--skip-existing` an existing file means this run is done: `run.json` records it and `skipped` is the verb's
    summary; otherwise an existing file is refused unless `--overwrite`."""
    from wisecli.runtime.io.atomic import refuse_existing
    from wisecli.runtime.runrecord import RunRecord

    if output is None:
        return None, None
    output = Path(output)
    if shard is not None:
        stem = output.name[:-6] if output.name.endswith(".jsonl") else output.name
        output = output.with_name(f"{stem}.part-{shard[0]}-of-{shard[1]}.jsonl")
    if skip_existing and output.is_file():
        rec = RunRecord(verb, config={**config, "skipped": True}, device=None, seed=None,
                        inputs=[str(p) for p in inputs], argv=argv)
        rec.add_output(output)
        rec.set("items", {"total": len(inputs), "failed": 0, "skipped": len(inputs)})
        rec.write(output.parent)
        return output, {"output": str(output), "status": "skipped", "inputs": len(inputs), "errors": 0,
                        "records": [{"input": str(p), "status": "skipped", "output": str(output)} for p in inputs]}
    if not skip_existing:
        refuse_existing(output, overwrite)
    return output, None


def run_batch(items: list[Path], process: Callable[[Path], dict], *, outputs_for: Callable[[Path], list[Path]],
              options: BatchOptions, sink, run_record=None, progress=None) -> list[dict]:
    """Run `process` over `items` and return one record per input (`ok`, `skipped` or `error`), in input order
    of completion. Item errors do not raise: the command prints the records and then `sink.finish(records)`
    exits 3. A lone input that fails raises its error (exit 2 or 1); a write failure stops the batch."""
    if options.skip_existing and options.overwrite:
        raise InputError("--skip-existing and --overwrite exclude each other", hint="pick one")
    todo: list[Path] = []
    records: list[dict] = []
    clashes: list[Path] = []
    for item in items:
        outs = [Path(p) for p in outputs_for(item)]
        existing = [p for p in outs if p.exists()]
        if existing and options.skip_existing and len(existing) == len(outs):
            rec = {"input": str(item), "status": "skipped", "outputs": [str(p) for p in outs]}
            records.append(rec)
            sink.record(rec)
            continue
        if existing and not options.overwrite and not options.skip_existing:
            clashes.extend(existing)
        todo.append(item)
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise InputError(f"output exists: {clashes[0]}{more}",
                         hint="pass --skip-existing to resume or --overwrite to replace")

    with made_dir(options.out_dir):
        records, _ = _loop(items, todo, records, process, options, sink, run_record, progress)
    return records


def _loop(items, todo, records, process, options, sink, run_record, progress) -> tuple[list[dict], int]:
    failed = 0
    for n, item in enumerate(todo):
        t0 = time.perf_counter()
        try:
            result = process(item) or {}
        except (KeyboardInterrupt, OutputError):  # a full disk or read-only folder stops the whole batch
            raise
        except Exception as exc:  # an item error: recorded, the batch goes on
            if len(items) == 1 and isinstance(exc, WiseError):
                raise
            failed += 1
            message = exc.message if isinstance(exc, WiseError) else f"{type(exc).__name__}: {exc}"
            rec = {"input": str(item), "status": "error", "error": message,
                   "seconds": round(time.perf_counter() - t0, 4)}
            if options.debug:
                rec["traceback"] = traceback.format_exc()
            records.append(rec)
            sink.record(rec)
            sink.warn(message if str(item) in message or Path(item).name in message else f"{item}: {message}")
            if options.fail_fast:
                break
            continue
        rec = {"input": str(item), "status": result.pop("status", "ok"), **result,
               "seconds": round(time.perf_counter() - t0, 4)}
        if rec["status"] not in ("ok", "skipped"):
            failed += 1
        records.append(rec)
        sink.record(rec)
        if run_record is not None:
            for key in ("output", "outputs"):
                val = rec.get(key)
                for p in ([val] if isinstance(val, (str, Path)) else val or []):
                    run_record.add_output(p)
        if progress is not None:
            progress(n + 1, len(todo))

    if run_record is not None:
        run_record.set("items", {"total": len(items), "failed": failed,
                                 "skipped": sum(r["status"] == "skipped" for r in records)})
        run_record.write(options.out_dir)
    return records, failed
