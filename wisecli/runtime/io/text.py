"""Line-aligned text: the readers of parallel corpora (Moses/fairseq raw files, `.gz`, TSV) and of text on stdin.

Every reader returns a list of lines (no line ends) and names a defect as `file:line`:
- bytes that are not text in the encoding (UTF-8 by default; `encoding=` overrides, e.g. "latin-1");
- a TSV row with fewer columns than asked for;
- `read_parallel` with source and target files whose line counts differ.
A UTF-8 byte-order mark at the start is dropped; `\\r\\n` line ends are read as `\\n`; a final line end does
not make an extra empty line (an empty line inside the file is a line, and stays one). A corrupt or truncated
`.gz` is an InputError naming the file. All errors are `InputError` (exit 2).
"""

from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path

from wisecli.cli.errors import InputError

TEXT_HINT = "give UTF-8 text, one sentence a line (plain or .gz); --encoding names another encoding"


def _split_lines(text: str) -> list[str]:
    """Lines of a text on `\\n` only (a `\\r` before it is dropped); no extra line after a final line end.
    `str.splitlines` would also split on U+2028, U+0085, form feeds... which would break line alignment."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _raw_bytes(path: Path) -> bytes:
    if not path.exists():
        raise InputError(f"text file not found: {path}", hint=TEXT_HINT)
    if not path.is_file():
        raise InputError(f"not a file: {path}", hint=TEXT_HINT)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint=TEXT_HINT) from None
    if path.suffix.lower() == ".gz" or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"cannot read {path}: corrupt or truncated gzip ({type(exc).__name__})",
                             hint="check the download, or give the uncompressed file") from None
    return data


def decode_lines(data: bytes, source: str, encoding: str = "utf-8") -> list[str]:
    """Decode bytes into lines; an undecodable byte is an InputError naming `source:line`."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{source}:{line}: not {encoding} text (byte 0x{data[exc.start]:02x})",
                         hint=TEXT_HINT) from None
    except LookupError:
        raise InputError(f"unknown text encoding: {encoding}", hint="e.g. utf-8, latin-1, cp1252") from None
    return _split_lines(text)


def read_lines(path: Path | str, *, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file (`.gz` read transparently) or of stdin for `-`."""
    if str(path) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("'-' reads text lines on stdin, but stdin is a terminal",
                             hint="pipe the text in: printf 'a line\\n' | wise ...")
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
        return decode_lines(data, "stdin", encoding)
    path = Path(path)
    return decode_lines(_raw_bytes(path), str(path), encoding)


def read_parallel(src: Path | str, tgt: Path | str, *, encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """Source and target lines of a line-aligned pair of files; differing line counts are an InputError."""
    s, t = read_lines(src, encoding=encoding), read_lines(tgt, encoding=encoding)
    if len(s) != len(t):
        raise InputError(f"{src} has {len(s)} lines but {tgt} has {len(t)}",
                         hint="source and target files must be line-aligned (line i translates line i)")
    return s, t


def read_tsv(path: Path | str, *, src_col: int = 0, tgt_col: int = 1,
             encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """Two columns of a tab-separated file (OPUS/Tatoeba exports); a short row is an InputError at file:line.
    Empty lines are skipped (they hold no pair)."""
    if src_col < 0 or tgt_col < 0:
        raise InputError("TSV columns count from 0", hint="e.g. --src-col 0 --tgt-col 1")
    need = max(src_col, tgt_col) + 1
    src, tgt = [], []
    for i, line in enumerate(read_lines(path, encoding=encoding), 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < need:
            raise InputError(f"{path}:{i}: {len(cells)} column(s), but column {need - 1} is needed",
                             hint="give a tab-separated file with the source and target columns (--src-col, --tgt-col)")
        src.append(cells[src_col])
        tgt.append(cells[tgt_col])
    return src, tgt
