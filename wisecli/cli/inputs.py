"""Batch inputs: files, folders (with a pattern), quoted globs, `@list.txt`, `@-` and `--shard I/N`.

`@list.txt` holds one path a line (blank lines and `#` comments skipped, relative paths taken from the
list's folder); `@-` reads such lines from stdin. A lone `-` is the data itself on stdin, for methods that
read a stream; `read_stdin_data` returns it. Paths come back sorted and de-duplicated, so every shard of a
batch sees the same order.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable
from pathlib import Path

from wisecli.cli.errors import InputError

_GLOB_CHARS = set("*?[")


def _list_lines(text: str, base: Path | None) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        out.append(str(p))
    return out


def _from_list(item: str) -> list[str]:
    name = item[1:]
    if name == "-":
        return _list_lines(sys.stdin.read(), None)
    path = Path(name).expanduser()
    try:
        return _list_lines(path.read_text(), path.parent)
    except FileNotFoundError:
        raise InputError(f"list file not found: {name}", hint="@FILE names a text file with one path a line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read list file {name}: {exc}", hint="@FILE must be a text file") from None


def _matches(path: Path, pattern: str | None, extensions: tuple[str, ...]) -> bool:
    name = path.name.lower()
    if pattern is not None:
        return path.match(pattern)
    if extensions:
        return any(name.endswith(e.lower()) for e in extensions)
    return not name.startswith(".")


def _walk(folder: Path, pattern: str | None, extensions: tuple[str, ...],
          dir_is_item: Callable[[Path], bool] | None) -> list[Path]:
    """Files under `folder` (recursively) that match; a sub-folder that is an item is taken whole."""
    out: list[Path] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            out.extend([p] if dir_is_item is not None and dir_is_item(p) else
                       _walk(p, pattern, extensions, dir_is_item))
        elif p.is_file() and _matches(p, pattern, extensions):
            out.append(p)
    return out


def expand_inputs(
    items: list[str],
    *,
    pattern: str | None = None,
    extensions: tuple[str, ...] = (),
    dir_is_item: Callable[[Path], bool] | None = None,
    allow_empty: bool = False,
) -> list[Path]:
    """Resolve the command line's input words to a sorted list of paths, or raise `InputError`."""
    words: list[str] = []
    for item in items:
        words.extend(_from_list(item) if item.startswith("@") and len(item) > 1 else [item])

    found: list[Path] = []
    for word in words:
        if word == "-":
            raise InputError("'-' (data on stdin) is not accepted here", hint="use @- to read a list of paths on stdin")
        path = Path(word).expanduser()
        if path.is_dir():
            if dir_is_item is not None and dir_is_item(path):
                found.append(path)
                continue
            inside = _walk(path, pattern, extensions, dir_is_item)
            if not inside:
                what = f"matching '{pattern}'" if pattern else (f"with {', '.join(extensions)}" if extensions else "")
                raise InputError(f"no input files {what} in folder {path}".replace("  ", " "),
                                 hint="check the folder or pass --pattern")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        elif _GLOB_CHARS & set(word):
            hits = sorted(Path(p) for p in glob.glob(word, recursive=True))
            if not hits:
                raise InputError(f"no files match {word!r}", hint="check the glob; quote it so the shell passes it on")
            found.extend(hits)
        else:
            raise InputError(f"input not found: {word}", hint="check the path (relative to the current folder)")

    unique = sorted({p.resolve(): p for p in found}.values(), key=lambda p: str(p))
    if not unique and not allow_empty:
        raise InputError("no inputs given", hint="pass files, folders, a quoted glob, @list.txt or @-")
    return unique


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """Parse `I/N` (0-based shard I of N)."""
    if spec is None:
        return None
    try:
        i_text, n_text = spec.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise InputError(f"--shard expects I/N, got {spec!r}", hint="for example --shard 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {spec}: need 0 <= I < N", hint="shards are numbered from 0, e.g. 0/4 .. 3/4")
    return i, n


def apply_shard(paths: list, shard: tuple[int, int] | None) -> list:
    """Round-robin split: shard I of N takes items I, I+N, I+2N, ... of the sorted list."""
    if shard is None:
        return list(paths)
    i, n = shard
    return list(paths[i::n])


def read_stdin_data() -> str:
    """The data itself on stdin (the lone `-` input)."""
    if sys.stdin is None or (sys.stdin.isatty() if hasattr(sys.stdin, "isatty") else False):
        raise InputError("'-' reads data on stdin, but stdin is a terminal", hint="pipe the data in: ... | wise ...")
    return sys.stdin.read()
