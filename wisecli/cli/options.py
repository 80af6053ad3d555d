"""The shared options, defined once as `Annotated` aliases so every command spells them the same way.

Precedence of values: command line > `WISE_*` environment variable > `--config` file > engine default
(resolved by `wisecli.cli.config.resolve`). Only typed `--flag value` options, never `key=value` words,
except the explicit `--set key=value`.
"""

from __future__ import annotations

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
