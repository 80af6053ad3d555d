"""runtime.io.text (line-aligned readers, .gz, TSV, file:line errors) and runtime.io.gettext (.mo/.po parser,
checked against the standard library's gettext reader, and each cleaning rule passing and failing)."""

from __future__ import annotations

import gettext as stdlib_gettext
import gzip
from collections import Counter

import pytest

from wisecli.cli.errors import InputError
from wisecli.runtime.io import gettext as G
from wisecli.runtime.io.text import read_lines, read_parallel, read_tsv


def test_lines_gz_crlf_bom_and_separators(tmp_path):
    text = "\ufeffeins\r\nzwei\u2028drei\n\nvier\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    want = ["eins", "zwei\u2028drei", "", "vier"]  # U+2028 is not a line end here: alignment is on \n only
    assert read_lines(tmp_path / "a.txt") == want == read_lines(tmp_path / "a.txt.gz")
    (tmp_path / "empty.txt").write_bytes(b"")
    assert read_lines(tmp_path / "empty.txt") == []


def test_errors_name_file_and_line(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok\nfine\nbad \xff here\n")
    with pytest.raises(InputError, match=r"bad.txt:3: not utf-8"):
        read_lines(tmp_path / "bad.txt")
    assert read_lines(tmp_path / "bad.txt", encoding="latin-1")[2] == "bad \xff here"
    (tmp_path / "t.gz").write_bytes(gzip.compress(b"a\n" * 100)[:-10])
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        read_lines(tmp_path / "t.gz")
    (tmp_path / "s").write_text("a\nb\n")
    (tmp_path / "t").write_text("a\n")
    with pytest.raises(InputError, match="has 2 lines but .* has 1"):
        read_parallel(tmp_path / "s", tmp_path / "t")
    (tmp_path / "p.tsv").write_text("a\tA\textra\n\nb\tB\nc\n")
    with pytest.raises(InputError, match=r"p.tsv:4: 1 column"):
        read_tsv(tmp_path / "p.tsv")
    (tmp_path / "q.tsv").write_text("x\ta\tA\n\ny\tb\tB\n")
    assert read_tsv(tmp_path / "q.tsv", src_col=2, tgt_col=1) == (["A", "B"], ["a", "b"])


ENTRIES = [("Open the file now", "Die Datei jetzt öffnen"), ("menu\x04Quit the program", "Das Programm beenden"),
           ("one file\x00%d files", "eine Datei\x00%d Dateien"), ("untranslated entry here", "")]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("charset", ["UTF-8", "ISO-8859-1"])
def test_mo_both_byte_orders_and_charsets_match_the_stdlib(tmp_path, order, charset):
    path = G.write_mo(tmp_path / "x.mo", ENTRIES, byteorder=order, charset=charset)
    ours = G.read_mo(path)
    assert ours == [("Open the file now", "Die Datei jetzt öffnen"), ("Quit the program", "Das Programm beenden")]
    with open(path, "rb") as fh:
        std = stdlib_gettext.GNUTranslations(fh)  # the independent reader
    assert std.gettext("Open the file now") == "Die Datei jetzt öffnen"
    assert std.pgettext("menu", "Quit the program") == "Das Programm beenden"
    assert std.ngettext("one file", "%d files", 2) == "%d Dateien"  # present, and we skip it


def test_bad_catalogs_are_catalog_errors(tmp_path):
    (tmp_path / "x.mo").write_bytes(b"\x00" * 40)
    with pytest.raises(G.CatalogError, match="bad magic"):
        G.read_mo(tmp_path / "x.mo")
    data = G.write_mo(tmp_path / "y.mo", ENTRIES).read_bytes()
    (tmp_path / "y.mo").write_bytes(data[:60])
    with pytest.raises(G.CatalogError):
        G.read_mo(tmp_path / "y.mo")
    G.write_mo(tmp_path / "z.mo", [("Löschen Sie das bitte", "x")], charset="UTF-8")
    raw = (tmp_path / "z.mo").read_bytes().replace("ö".encode(), b"\xff\xfe")
    (tmp_path / "z.mo").write_bytes(raw)
    with pytest.raises(G.CatalogError, match="not decodable"):
        G.read_mo(tmp_path / "z.mo")


def test_po_reader(tmp_path):
    (tmp_path / "de.po").write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        '#: a.c:1\nmsgid "Open the "\n"file now"\nmsgstr "Die Datei jetzt öffnen"\n\n'
        '#, fuzzy\nmsgid "a fuzzy entry here"\nmsgstr "unsicher"\n\n'
        'msgctxt "menu"\nmsgid "Quit the program"\nmsgstr "Das Programm beenden"\n\n'
        'msgid "one file"\nmsgid_plural "%d files"\nmsgstr[0] "eine"\nmsgstr[1] "viele"\n\n'
        '#~ msgid "old"\n#~ msgstr "alt"\n', encoding="utf-8")
    assert G.read_po(tmp_path / "de.po") == [("Open the file now", "Die Datei jetzt öffnen"),
                                              ("Quit the program", "Das Programm beenden")]


@pytest.mark.parametrize("pair,rule", [
    (("first line\nsecond line here", "erste Zeile\nzweite"), "multi_line"),
    (("cannot open %s for reading", "kann %s nicht lesen"), "placeholder"),
    (("cannot open %1$s for reading", "kann nicht lesen %1$s"), "placeholder"),
    (("value %-10s is too long", "Wert zu lang"), "placeholder"),
    (("read %lu bytes from disk", "gelesen"), "placeholder"),
    (("%'d items were copied", "kopiert"), "placeholder"),
    (("today is %B already now", "heute"), "placeholder"),
    (("hello %(name)s how are you", "hallo"), "placeholder"),
    (("the value {name} is wrong", "falsch"), "placeholder"),
    (("set $HOME or ${PATH} please", "setzen"), "placeholder"),
    (("press <b>Enter</b> to go", "drücken"), "placeholder"),
    (("a trailing newline here\n", "Zeilenende\n"), "placeholder"),
    (("Tom &amp; Jerry are friends", "Tom und Jerry"), "placeholder"),
    (("-v, --verbose explain what is done", "erklären"), "option_help"),
    (("  --all      do not ignore entries", "nicht"), "option_help"),
    (("two words", "zwei Wörter"), "short_long_or_same"),
    (("same text on both sides", "same text on both sides"), "short_long_or_same"),
    (("a long sentence " * 30, "lang"), "short_long_or_same"),
])
def test_each_rule_drops_its_case(pair, rule):
    counts = Counter()
    assert G.clean_pairs([pair], counts=counts) == []
    assert counts == Counter({rule: 1})


def test_passing_cases_accelerators_mask_nfc_and_dedup():
    counts = Counter()
    kept = G.clean_pairs([
        ("_Open the selected file", "Ausgewählte Datei ö_ffnen"),
        ("set log_statement_stats to on", "log_statement_stats einschalten"),
        ("&Save the document now", "Dokument jetzt &speichern"),
        ("Cafe\u0301 is\u00a0open today", "Das Cafe\u0301 ist offen"),
        ("a 100%% sure thing here", "eine 100%% sichere Sache"),
        ("set log_statement_stats to on", "log_statement_stats einschalten"),
    ], counts=counts)
    assert kept == [("Open the selected file", "Ausgewählte Datei ö_ffnen"),
                    ("set log_statement_stats to on", "log_statement_stats einschalten"),
                    ("Save the document now", "Dokument jetzt speichern"),
                    ("Café is open today", "Das Café ist offen"),
                    ("a 100%% sure thing here", "eine 100%% sichere Sache")]
    assert counts == Counter({"duplicate": 1})
    masked = G.clean_pairs([("copy %s to %d places", "%d Orte für %s"), ("copy %s to %d", "nur %s")],
                           placeholders="mask")
    assert masked == [("copy ⟦1⟧ to ⟦2⟧ places", "⟦2⟧ Orte für ⟦1⟧")]


def test_load_pairs_from_a_locale_tree(tmp_path):
    lc = tmp_path / "de" / "LC_MESSAGES"
    lc.mkdir(parents=True)
    G.write_mo(lc / "tool.mo", [("Open the file now", "Die Datei jetzt öffnen"), ("cannot read %s", "x %s")])
    G.write_mo(lc / "iso_639.mo", [("German language name", "Deutsch")])
    (lc / "broken.mo").write_bytes(b"garbage" * 10)
    doc = G.load_pairs("de", dirs=[tmp_path])
    assert doc["src"] == ["Open the file now"] and doc["domains"] == ["tool"] and len(doc["skipped"]) == 1
    assert doc["dropped"]["iso_domain"] == 1 and doc["dropped"]["placeholder"] == 1
    assert G.load_pairs("de", dirs=[tmp_path], direction="de-en")["src"] == ["Die Datei jetzt öffnen"]
    assert G.languages([tmp_path]) == {"de": 2}
