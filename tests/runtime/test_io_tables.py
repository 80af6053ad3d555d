"""Tables and arrays: separators, quoting, stdin, numeric parsing with the offending cell named, ragged
rows with their line number, did-you-mean column hints, .npy/.npz/.csv arrays."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from wisecli.cli.errors import InputError
from wisecli.runtime.io.tables import read_array, read_table


def test_csv_with_quotes_labels_and_numbers(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('id,label,x,y\n1,"a, b",0.5,-2\n\n2,c,1e3,nan\n', encoding="utf-8")
    t = read_table(p)
    assert t.columns == ["id", "label", "x", "y"]
    assert t.rows == [["1", "a, b", "0.5", "-2"], ["2", "c", "1e3", "nan"]]
    assert t.column("label") == ["a, b", "c"]
    x = t.numeric(["x", "y"])
    assert x.dtype == np.float64 and x.shape == (2, 2)
    np.testing.assert_array_equal(x[:, 0], [0.5, 1000.0])
    assert x[0, 1] == -2 and np.isnan(x[1, 1])


def test_tsv_by_extension_and_sniffed_on_stdin(tmp_path, monkeypatch):
    p = tmp_path / "t.tsv"
    p.write_text("a\tb,c\n1\t2\n", encoding="utf-8")
    assert read_table(p).columns == ["a", "b,c"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\tb\n3\t4\n"))
    t = read_table("-")
    assert t.columns == ["a", "b"] and t.numeric().tolist() == [[3.0, 4.0]]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeffa,b\n5,6\n"))
    assert read_table("-").numeric().tolist() == [[5.0, 6.0]]


def test_ragged_row_names_its_line(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n1,2\n\n3,4,5\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_table(p)
    assert err.value.exit_code == 2 and "line 4" in err.value.message and "3 fields" in err.value.message


def test_non_numeric_cell_is_named(tmp_path):
    p = tmp_path / "n.csv"
    p.write_text("a,b\n1,2\n3,oops\n4,\n", encoding="utf-8")
    t = read_table(p)
    with pytest.raises(InputError) as err:
        t.numeric()
    assert "line 3" in err.value.message and "'b'" in err.value.message and "oops" in err.value.message
    t.rows[1][1] = "7"
    with pytest.raises(InputError) as err:
        t.numeric(["b"])
    assert "line 4" in err.value.message and "empty" in err.value.message


def test_unknown_column_has_did_you_mean(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("label,feature_1\nx,1\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_table(p).column("lable")
    assert "lable" in err.value.message and "label" in err.value.hint


@pytest.mark.parametrize("content", ["", "\n\n", "a,a\n1,2\n"])
def test_empty_or_duplicate_header_is_input_error(tmp_path, content):
    p = tmp_path / "e.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(InputError):
        read_table(p)


def test_missing_and_binary_tables(tmp_path):
    with pytest.raises(InputError):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81abc")
    with pytest.raises(InputError) as err:
        read_table(tmp_path / "bin.csv")
    assert "UTF-8" in err.value.message


def test_read_array_npy_npz_csv(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), a)
    np.savez(tmp_path / "one.npz", only=a)
    np.testing.assert_array_equal(read_array(tmp_path / "one.npz"), a)
    np.savez(tmp_path / "two.npz", X=a, y=np.array([1, 2]))
    np.testing.assert_array_equal(read_array(tmp_path / "two.npz", key="y"), [1, 2])
    with pytest.raises(InputError) as err:
        read_array(tmp_path / "two.npz")
    assert "2 arrays" in err.value.message
    with pytest.raises(InputError) as err:
        read_array(tmp_path / "two.npz", key="x")
    assert "'X'" in err.value.hint
    (tmp_path / "h.csv").write_text("u,v\n1,2\n3,4.5\n", encoding="utf-8")
    np.testing.assert_array_equal(read_array(tmp_path / "h.csv"), [[1, 2], [3, 4.5]])
    (tmp_path / "n.csv").write_text("1,2\n3,4.5\n", encoding="utf-8")
    np.testing.assert_array_equal(read_array(tmp_path / "n.csv"), [[1, 2], [3, 4.5]])
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_array(tmp_path / "bad.csv")
    assert "line 2" in err.value.message


def test_read_array_refuses_corrupt_and_pickled(tmp_path):
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("c.npy", "o.npy", "missing.npz"):
        with pytest.raises(InputError) as err:
            read_array(tmp_path / name)
        assert err.value.exit_code == 2
