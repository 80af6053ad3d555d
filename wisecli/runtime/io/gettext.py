"""gettext catalogs as parallel text: a `.mo`/`.po` parser, the catalogs a machine holds, and the cleaning rules
that turn program messages into sentence pairs (specs/translate.md §4).

Parsing (`read_mo`, `read_po`): magic 0x950412de in either byte order; the header entry's `charset=` decodes
the strings (an undecodable catalog is a `CatalogError`, skipped and listed by `load_pairs`); a `msgctxt`
(`ctx\\x04msgid`) is stripped; plural entries (`msgid\\x00plural`) and untranslated entries are skipped; `.po`
entries marked `#, fuzzy` are skipped (not reviewed translations).

Cleaning (`clean_pairs`), in this order, each rule counted: (1) `iso_*` domains dropped (in `load_pairs`);
(2) multi-line entries (a newline before the end); (3) placeholders — printf (`%s`, `%1$s`, `%-10s`, `%lu`,
`%'d`, `%B`), `%(name)s`, `{name}`, `$VAR`/`${VAR}`, tags, a (final) newline, entities: `placeholders="drop"`
drops the pair, `"mask"` numbers them `⟦1⟧`, `⟦2⟧`... (by first appearance in the source) when both sides hold
the same multiset, else drops; (4) option-help lines (a leading `-` or a run of 3+ spaces); (5) one
accelerator per side (`_` or `&` before a letter at a word start: `_Open` → `Open`; `log_statement_stats`
kept); (6) NFC, NBSP → space, outer whitespace stripped; (7) at least 3 source words, at most 300 characters a
side, source ≠ target; (8) exact duplicate pairs dropped (first kept). Our choices: `%%` is a literal percent,
not a placeholder; a space is not a printf flag (so "50 % of" is text).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections import Counter
from pathlib import Path

MAGIC = 0x950412DE
LOCALE_DIRS = (Path("/usr/share/locale"), Path("/usr/local/share/locale"))


class CatalogError(ValueError):
    """A catalog that cannot be read (bad magic, truncated tables, undecodable strings)."""


def _charset(header: bytes) -> str:
    m = re.search(rb"charset=([A-Za-z0-9_.:-]+)", header)
    return m.group(1).decode("ascii") if m else "utf-8"


def _entries(raw: list[tuple[bytes, bytes]], where: str) -> list[tuple[str, str]]:
    """Decode (msgid, msgstr) byte pairs with the header's charset: contexts stripped, plurals and untranslated
    entries and the header skipped."""
    charset = "utf-8"
    for k, v in raw:
        if k == b"":
            charset = _charset(v)
    if charset.upper() == "CHARSET":  # the .pot template's placeholder
        charset = "utf-8"
    out = []
    for k, v in raw:
        if not k or not v or b"\x00" in k or b"\x00" in v:
            continue
        if b"\x04" in k:
            k = k.split(b"\x04", 1)[1]
        try:
            out.append((k.decode(charset), v.decode(charset)))
        except (UnicodeDecodeError, LookupError) as exc:
            raise CatalogError(f"{where}: not decodable as {charset} ({type(exc).__name__})") from None
    return out


def read_mo(path: Path | str) -> list[tuple[str, str]]:
    """The (msgid, msgstr) pairs of a binary `.mo` catalog, in file order."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 28:
        raise CatalogError(f"{path}: too short for a .mo file")
    for order in ("<", ">"):
        if struct.unpack(order + "I", data[:4])[0] == MAGIC:
            break
    else:
        raise CatalogError(f"{path}: not a .mo file (bad magic)")
    _, n, orig, trans = struct.unpack(order + "4I", data[4:20])
    raw = []
    try:
        for i in range(n):
            klen, koff = struct.unpack(order + "2I", data[orig + 8 * i: orig + 8 * i + 8])
            vlen, voff = struct.unpack(order + "2I", data[trans + 8 * i: trans + 8 * i + 8])
            if koff + klen > len(data) or voff + vlen > len(data):
                raise CatalogError(f"{path}: truncated (string {i} lies past the end)")
            raw.append((data[koff: koff + klen], data[voff: voff + vlen]))
    except struct.error:
        raise CatalogError(f"{path}: truncated string tables") from None
    return _entries(raw, str(path))


def write_mo(path: Path | str, entries: list[tuple[str, str]], *, charset: str = "UTF-8",
             byteorder: str = "<") -> Path:
    """Write a `.mo` catalog of (msgid, msgstr) pairs (a header entry with `charset` first; contexts as
    `ctx\\x04id`, plurals as `a\\x00b` strings), in either byte order ('<' little, '>' big). For tests and tools."""
    header = f"Content-Type: text/plain; charset={charset}\n"
    items = [(b"", header.encode("ascii"))] + [(k.encode(charset), v.encode(charset)) for k, v in entries]
    items.sort(key=lambda kv: kv[0])
    n = len(items)
    orig, trans = 28, 28 + 8 * n
    offset = trans + 8 * n
    table_k, table_v, blob = [], [], b""
    for k, _ in items:
        table_k.append((len(k), offset + len(blob)))
        blob += k + b"\x00"
    for _, v in items:
        table_v.append((len(v), offset + len(blob)))
        blob += v + b"\x00"
    out = struct.pack(byteorder + "7I", MAGIC, 0, n, orig, trans, 0, 0)
    out += b"".join(struct.pack(byteorder + "2I", *e) for e in table_k)
    out += b"".join(struct.pack(byteorder + "2I", *e) for e in table_v)
    path = Path(path)
    path.write_bytes(out + blob)
    return path


_PO_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _po_string(s: str) -> str:
    s = s.strip()
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise CatalogError(f"bad .po string: {s[:40]}")
    return re.sub(r'\\(.)', lambda m: _PO_ESC.get(m.group(1), m.group(1)), s[1:-1])


def read_po(path: Path | str) -> list[tuple[str, str]]:
    """The (msgid, msgstr) pairs of a text `.po` catalog (UTF-8 or the header's charset); fuzzy entries,
    plurals, obsolete (`#~`) and untranslated entries skipped; contexts stripped."""
    path = Path(path)
    data = path.read_bytes()
    charset = _charset(data[:4096]) if b"charset=" in data[:4096] else "utf-8"
    try:
        text = data.decode("utf-8" if charset.upper() == "CHARSET" else charset)
    except (UnicodeDecodeError, LookupError):
        raise CatalogError(f"{path}: not decodable as {charset}") from None
    out: list[tuple[str, str]] = []
    entry: dict[str, str] = {}
    fuzzy, key = False, None

    def flush():
        nonlocal entry, fuzzy
        if entry.get("msgid") and entry.get("msgstr") and not fuzzy and "msgid_plural" not in entry:
            out.append((entry["msgid"], entry["msgstr"]))
        entry, fuzzy = {}, False

    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            if "msgstr" in entry:
                flush()
                key = None
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        m = re.match(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$', line)
        if m:
            word = m.group(1)
            if word in ("msgctxt", "msgid") and "msgstr" in entry:
                flush()
            if word.startswith("msgstr["):
                entry["msgid_plural"] = entry.get("msgid_plural", "")
                if word != "msgstr[0]":
                    key = "_other"
                    entry[key] = _po_string(m.group(2))
                    continue
            key = "msgstr" if word.startswith("msgstr") else word
            entry[key] = _po_string(m.group(2))
        elif line.startswith('"') and key is not None:
            entry[key] = entry.get(key, "") + _po_string(line)
        else:
            raise CatalogError(f"{path}: cannot parse line {line[:40]!r}")
    flush()
    return out


def languages(dirs=LOCALE_DIRS) -> dict[str, int]:
    """Languages with `.mo` catalogs under the locale folders, with their catalog counts (iso_* excluded)."""
    found: Counter = Counter()
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        for lang_dir in d.iterdir():
            lc = lang_dir / "LC_MESSAGES"
            if lc.is_dir():
                n = sum(1 for f in lc.glob("*.mo") if not f.name.startswith("iso_"))
                if n:
                    found[lang_dir.name] += n
    return dict(sorted(found.items()))


def catalogs(lang: str, dirs=LOCALE_DIRS) -> list[Path]:
    """The `.mo` files of one language, sorted by domain (iso_* included: `load_pairs` counts them dropped)."""
    files = []
    for d in dirs:
        lc = Path(d) / lang / "LC_MESSAGES"
        if lc.is_dir():
            files.extend(sorted(lc.glob("*.mo")) + sorted(lc.glob("*.po")))
    return files


_PLACEHOLDER = re.compile(
    r"%(?:\d+\$)?[-+0#']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|ll|[hlLqjzt])?[A-Za-z]"  # printf / strftime
    r"|%\([A-Za-z_][A-Za-z0-9_]*\)[-+0#']*\d*(?:\.\d+)?[A-Za-z]"                     # %(name)s
    r"|\{[A-Za-z0-9_.:!\[\]]*\}"                                                     # {name}, {0}, {}
    r"|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*"                         # ${VAR}, $VAR
    r"|</?[A-Za-z][^<>]*>"                                                           # tags
    r"|\n"                                                                           # a (final) newline
    r"|&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);"                                          # entities
)
_ACCEL = re.compile(r"(?<![\w&_])[_&](?=[^\W\d_])")
RULES = ("iso_domain", "multi_line", "placeholder", "option_help", "short_long_or_same", "duplicate")


def placeholders(text: str) -> list[str]:
    """The placeholders of a message, in order (`%%` is a literal percent and not counted)."""
    return [m.group(0) for m in _PLACEHOLDER.finditer(text.replace("%%", "\x00\x00"))]


def _mask(src: str, tgt: str) -> tuple[str, str] | None:
    ps, pt = placeholders(src), placeholders(tgt)
    if not ps and not pt:
        return src, tgt
    if Counter(ps) != Counter(pt):
        return None
    number: dict[str, int] = {}
    for p in ps:
        number.setdefault(p, len(number) + 1)

    def sub(text):
        return _PLACEHOLDER.sub(lambda m: f"⟦{number[m.group(0)]}⟧" if m.group(0) in number else m.group(0),
                                text.replace("%%", "\x00\x00")).replace("\x00\x00", "%%")
    return sub(src), sub(tgt)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFC", text).replace("\u00a0", " ").strip()


def clean_pairs(pairs: list[tuple[str, str]], *, placeholders: str = "drop",
                counts: Counter | None = None) -> list[tuple[str, str]]:
    """Rules 2–8 of the module docstring on (source, target) pairs; `counts[rule]` is increased per dropped
    pair. Returns the kept pairs in input order."""
    if placeholders not in ("drop", "mask"):
        raise ValueError(f"placeholders must be 'drop' or 'mask', not {placeholders!r}")
    counts = Counter() if counts is None else counts
    kept, seen = [], set()
    for src, tgt in pairs:
        if "\n" in src.rstrip("\n") or "\n" in tgt.rstrip("\n"):
            counts["multi_line"] += 1
            continue
        if placeholders == "drop":
            if globals()["placeholders"](src) or globals()["placeholders"](tgt):
                counts["placeholder"] += 1
                continue
        else:
            masked = _mask(src, tgt)
            if masked is None:
                counts["placeholder"] += 1
                continue
            src, tgt = masked
        if src.lstrip().startswith("-") or "   " in src:
            counts["option_help"] += 1
            continue
        src, tgt = _ACCEL.sub("", src, count=1), _ACCEL.sub("", tgt, count=1)
        src, tgt = _norm(src), _norm(tgt)
        if len(src.split()) < 3 or len(src) > 300 or len(tgt) > 300 or src == tgt:
            counts["short_long_or_same"] += 1
            continue
        if (src, tgt) in seen:
            counts["duplicate"] += 1
            continue
        seen.add((src, tgt))
        kept.append((src, tgt))
    return kept


def load_pairs(lang: str, *, dirs=LOCALE_DIRS, direction: str | None = None, placeholders: str = "drop") -> dict:
    """Every cleaned en↔`lang` pair of the machine's catalogs. `direction` "en-LANG" (default: English source)
    or "LANG-en". Returns {src, tgt, domains, skipped (unreadable catalogs), raw (pairs before cleaning),
    dropped (per rule), sha256 (of the kept pairs)}."""
    direction = direction or f"en-{lang}"
    counts: Counter = Counter()
    raw, domains, skipped = [], [], []
    for f in catalogs(lang, dirs):
        if f.stem.startswith("iso_"):
            try:
                counts["iso_domain"] += len(read_mo(f) if f.suffix == ".mo" else read_po(f))
            except (CatalogError, OSError):
                pass
            continue
        try:
            entries = read_mo(f) if f.suffix == ".mo" else read_po(f)
        except (CatalogError, OSError) as exc:
            skipped.append(f"{f}: {exc}")
            continue
        domains.append(f.stem)
        raw.extend(entries)
    pairs = clean_pairs(raw, placeholders=placeholders, counts=counts)
    if direction == f"{lang}-en":
        pairs = [(t, s) for s, t in pairs]
    h = hashlib.sha256()
    for s, t in pairs:
        h.update(f"{s}\t{t}\n".encode("utf-8"))
    return {"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs], "domains": domains, "skipped": skipped,
            "raw": len(raw), "dropped": {r: int(counts.get(r, 0)) for r in RULES}, "sha256": h.hexdigest(),
            "direction": direction}
