import io
import sys

import pytest

from wisecli.cli.errors import InputError
from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard


@pytest.fixture
def tree(tmp_path):
    for name in ("b.nii.gz", "a.nii.gz", "c.txt", ".hidden"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.nii.gz").write_text("x")
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "IM1.dcm").write_text("x")
    return tmp_path


def test_files_folders_patterns_and_globs(tree):
    assert [p.name for p in expand_inputs([str(tree / "b.nii.gz"), str(tree / "a.nii.gz")])] == ["a.nii.gz", "b.nii.gz"]
    got = expand_inputs([str(tree)], pattern="*.nii.gz")
    assert [p.name for p in got] == ["a.nii.gz", "b.nii.gz", "d.nii.gz"]
    got = expand_inputs([str(tree)], extensions=(".txt",))
    assert [p.name for p in got] == ["c.txt"]
    assert [p.name for p in expand_inputs([str(tree / "*.nii.gz")])] == ["a.nii.gz", "b.nii.gz"]
    # the same file twice (direct and through a glob) counts once
    assert len(expand_inputs([str(tree / "a.nii.gz"), str(tree / "a*.nii.gz")])) == 1


def test_folders_that_are_items(tree):
    is_series = lambda p: any(p.glob("*.dcm"))  # noqa: E731
    assert expand_inputs([str(tree / "series")], dir_is_item=is_series) == [tree / "series"]
    got = expand_inputs([str(tree)], extensions=(".nii.gz",), dir_is_item=is_series)
    assert [p.name for p in got] == ["a.nii.gz", "b.nii.gz", "series", "d.nii.gz"]


def test_list_files_and_stdin(tree, monkeypatch):
    lst = tree / "list.txt"
    lst.write_text("# a comment\na.nii.gz\n\nsub/d.nii.gz\n")
    assert [p.name for p in expand_inputs([f"@{lst}"])] == ["a.nii.gz", "d.nii.gz"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{tree / 'b.nii.gz'}\n"))
    assert [p.name for p in expand_inputs(["@-"])] == ["b.nii.gz"]


@pytest.mark.parametrize("words, match", [(["missing.nii.gz"], "not found"), (["@nolist.txt"], "list file"),
                                          (["*.nothing"], "no files match"), (["-"], "data on stdin"), ([], "no inputs")])
def test_bad_inputs_are_input_errors(tree, monkeypatch, words, match):
    monkeypatch.chdir(tree)
    with pytest.raises(InputError, match=match) as exc:
        expand_inputs(words)
    assert exc.value.exit_code == 2 and exc.value.hint


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no input files"):
        expand_inputs([str(tmp_path / "empty")])


def test_shards_partition_the_batch():
    items = list(range(10))
    parts = [apply_shard(items, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(x for p in parts for x in p) == items
    assert all(set(a).isdisjoint(b) for a in parts for b in parts if a is not b)
    assert apply_shard(items, None) == items
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(InputError):
            parse_shard(bad)
