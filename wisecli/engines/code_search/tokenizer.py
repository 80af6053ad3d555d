"""Tokens of code and of queries, and the shared vocabulary (specs/code-search.md §2.1, reconstructed).

Code side: Python's `tokenize` over one function's source (docstring already removed). Identifiers are split into
lower-cased subtokens at `_`, case changes and digit runs (`readCSVFile2` → read csv file 2, `__init__` → init);
keywords and a fixed operator set are kept; numbers become `<num>`; a string becomes `<str>` plus at most 4 word
subtokens of its text; a comment at most 16 word subtokens; layout (NEWLINE, INDENT, ...) is dropped; at most
`max_len` (256) tokens. Source that `tokenize` refuses (other languages, fragments) goes through a regex tokenizer
with the same identifier splitting.
Query side: lower-cased, split on non-alphanumerics and identifier boundaries, at most 32 tokens.
Vocabulary: tokens seen at least `min_count` (2) times in the training pairs (code and queries together, so
"read file" meets `read_file`), at most 50,000, ids 0 `<pad>` and 1 `<unk>`; ties in count fall to the token's
text, so the vocabulary is the same on every machine.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from collections import Counter

PAD, UNK = "<pad>", "<unk>"
NUM, STR = "<num>", "<str>"
OPERATORS = frozenset("( ) [ ] { } : , . ; + - * / // % ** = == != < > <= >= += -= *= /= -> @ & | ^ ~ << >> "
                      "and or not in is".split())
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_REGEX_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|"
                          r"//[^\n]*|#[^\n]*|\S")


def split_identifier(name: str) -> list[str]:
    """`readCSVFile2` → ['read', 'csv', 'file', '2']; `__init__` → ['init']; lower-cased subtokens."""
    out: list[str] = []
    for part in name.split("_"):
        out.extend(m.group(0).lower() for m in _PART.finditer(part))
    return out


def words(text: str) -> list[str]:
    """Every identifier-like word of free text, split into subtokens."""
    out: list[str] = []
    for w in _WORD.findall(text):
        out.extend(split_identifier(w))
    return out


def _string_tokens(text: str) -> list[str]:
    return [STR, *words(_string_body(text))[:4]]


def _string_body(text: str) -> str:
    m = re.match(r"(?i)^[rbuf]*('''|\"\"\"|'|\")", text)
    return text[m.end(): len(text) - len(m.group(1))] if m else text


def code_tokens(source: str, max_len: int = 256) -> list[str]:
    """The code side's tokens of `source` (see the module docstring); at most `max_len`."""
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if len(out) >= max_len:
                break
            t, s = tok.type, tok.string
            if t == tokenize.NAME:
                out.extend([s] if keyword.iskeyword(s) or keyword.issoftkeyword(s) and s in ("match", "case")
                           else split_identifier(s))
            elif t == tokenize.NUMBER:
                out.append(NUM)
            elif t == tokenize.STRING:
                out.extend(_string_tokens(s))
            elif t == tokenize.COMMENT:
                out.extend(words(s)[:16])
            elif t == tokenize.OP and s in OPERATORS:
                out.append(s)
            elif t == getattr(tokenize, "FSTRING_START", -1):
                out.append(STR)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return regex_tokens(source, max_len)
    return out[:max_len]


def regex_tokens(source: str, max_len: int = 256) -> list[str]:
    """Tokens of non-Python source: identifiers split, numbers `<num>`, strings `<str>` + 4 words, `#`/`//`
    comments 16 words, operators from the fixed set."""
    out: list[str] = []
    for m in _REGEX_TOKEN.finditer(source):
        s = m.group(0)
        if s[0].isalpha() or s[0] == "_":
            out.extend([s] if keyword.iskeyword(s) else split_identifier(s))
        elif s[0].isdigit():
            out.append(NUM)
        elif s[0] in "\"'":
            out.extend(_string_tokens(s))
        elif s.startswith("#") or s.startswith("//"):
            out.extend(words(s)[:16])
        elif s in OPERATORS:
            out.append(s)
        if len(out) >= max_len:
            break
    return out[:max_len]


def query_tokens(text: str, max_len: int = 32) -> list[str]:
    """The query side's tokens: lower-cased subtokens of every alphanumeric word; at most `max_len`."""
    return words(text)[:max_len]


class Vocab:
    """Token ↔ id for both sides; 0 is padding, 1 unknown."""

    def __init__(self, tokens: list[str]):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sequences, min_count: int = 2, max_size: int = 50000) -> "Vocab":
        """From token sequences: tokens seen >= `min_count` times, the most frequent `max_size` (with pad, unk)."""
        counts = Counter(t for seq in sequences for t in seq)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept[: max(0, max_size - 2)]])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids of `tokens` (unknown → 1)."""
        return [self.stoi.get(t, 1) for t in tokens]

    def known(self, tokens: list[str]) -> int:
        """How many of `tokens` are in the vocabulary."""
        return sum(1 for t in tokens if t in self.stoi and self.stoi[t] > 1)

    def state(self) -> list[str]:
        """The plain list stored in checkpoints."""
        return list(self.itos)
