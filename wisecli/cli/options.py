"""The shared options, defined once as `Annotated` aliases so every command spells them the same way.

Precedence of values: command line > `WISE_*` environment variable > `--config` file > engine default
(resolved by `wisecli.cli.config.resolve`). Only typed `--flag value` options, never `key=value` words,
except the explicit `--set key=value`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

_SHARED = "Shared options"

Device = Annotated[
    str,
    typer.Option(
        "--device",
        envvar="WISE_DEVICE",
        help="auto | cpu | cuda | cuda:N. auto picks CUDA when present, else CPU.",
        rich_help_panel=_SHARED,
    ),
]
Amp = Annotated[
    bool,
    typer.Option("--amp/--no-amp", envvar="WISE_AMP", help="Mixed precision (bf16 where supported) on CUDA.",
                 rich_help_panel=_SHARED),
]
Seed = Annotated[int, typer.Option("--seed", envvar="WISE_SEED", help="Random seed.", rich_help_panel=_SHARED)]
Compile = Annotated[Optional[bool], typer.Option(
    "--compile", help="torch.compile the training step (CUDA graphs for fixed shapes on CUDA); eager, with a warning, "
                      "if compiling fails.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.", rich_help_panel=_SHARED)]
Jsonl = Annotated[
    bool, typer.Option("--jsonl", help="Print one JSON record per input as it finishes.", rich_help_panel=_SHARED)
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.", rich_help_panel=_SHARED)]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="More detail on stderr.", rich_help_panel=_SHARED)]
NoProgress = Annotated[
    bool, typer.Option("--no-progress", envvar="WISE_NO_PROGRESS", help="No progress bars.", rich_help_panel=_SHARED)
]
Debug = Annotated[
    bool, typer.Option("--debug", envvar="WISE_DEBUG", help="Show tracebacks of errors.", rich_help_panel=_SHARED)
]
Config = Annotated[
    Optional[Path],
    typer.Option("--config", envvar="WISE_CONFIG", help="TOML file of settings.", rich_help_panel=_SHARED),
]
Set = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override one setting: --set key=value (repeatable).", rich_help_panel=_SHARED),
]
OutDir = Annotated[
    Optional[Path], typer.Option("-o", "--out-dir", help="Folder for the outputs.", rich_help_panel=_SHARED)
]
OutFile = Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file.", rich_help_panel=_SHARED)]
SkipExisting = Annotated[
    bool, typer.Option("--skip-existing", help="Skip inputs whose outputs exist (resume).", rich_help_panel=_SHARED)
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.", rich_help_panel=_SHARED)]
FailFast = Annotated[
    bool, typer.Option("--fail-fast", help="Stop the batch at the first failing item.", rich_help_panel=_SHARED)
]
Shard = Annotated[
    Optional[str],
    typer.Option("--shard", help="Process shard I of N (0-based), e.g. 0/4: one process per GPU or node.",
                 rich_help_panel=_SHARED),
]
Pattern = Annotated[
    Optional[str], typer.Option("--pattern", help="Glob for files inside input folders.", rich_help_panel=_SHARED)
]
Quick = Annotated[bool, typer.Option("--quick", help="Seconds-long smoke version.")]

# Options that three or more methods declare. Typed ones are whole aliases; those whose choices differ per
# method are the option alone, used as `Annotated[Optional[Literal["csv", "npz"]], o.FORMAT] = None`, so the
# choices show in help and completions. Leave the value at None: the engine's DEFAULTS fill it in.
def _check(test, words: str):
    def callback(value):
        if value is not None and not test(value):
            raise typer.BadParameter(f"{value} is not {words}")
        return value

    return callback


positive = _check(lambda v: math.isfinite(v) and v > 0, "a positive finite number")
"""Callback for options that must be > 0 and finite (rates, sizes in mm, thresholds): NaN and inf are refused."""
at_least_one = _check(lambda v: v >= 1, "at least 1")
"""Callback for counts that must be ≥ 1 (batch sizes, steps, repeats)."""
not_negative = _check(lambda v: math.isfinite(v) and v >= 0, "zero or more")
"""Callback for counts or amounts that may be 0 but not negative (epochs, workers)."""

Weights = Annotated[
    Optional[Path],
    typer.Option("--weights", help="Checkpoint written by this method's train (a .pt file or its run folder)."),
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in the output folder from its last.pt.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", callback=at_least_one, help="Samples per batch.")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", callback=not_negative, help="Training epochs.")]
Lr = Annotated[Optional[float], typer.Option("--lr", callback=positive, help="Learning rate.")]
Workers = Annotated[Optional[int], typer.Option("--workers", callback=not_negative, help="Data-loading worker processes.")]
Plot = Annotated[Optional[Path], typer.Option("--plot", help="Write a picture of the result to this PNG.")]
Series = Annotated[
    Optional[str],
    typer.Option("--series", help="DICOM SeriesInstanceUID to read when a folder holds several series."),
]
FORMAT = typer.Option("--format", help="Output format.")
DATASET = typer.Option("--dataset", help="Embedded or installed data set to use instead of files.")
