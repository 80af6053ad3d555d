"""The peers' side of the race (specs/code-search.md §7): plain BM25 is ours too (bm25.py, it is also a search
method); the optional `bm25s` package, when importable (not a dependency), is raced beside it."""

from __future__ import annotations


def bm25s_or_none():
    """The `bm25s` module, or None when it is not installed."""
    try:
        import bm25s  # noqa: F401
    except Exception:
        return None
    return bm25s
