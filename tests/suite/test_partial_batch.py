"""A batch with one bad input (issue 12 §6, DESIGN.md exit codes): with --json it prints one JSON document
holding a record per input (the good ones ok, the bad one with status "error") and exits 3; the same bad
input alone is exit 2 with one `Error:` line naming it, stdout empty, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance_kit import (METHOD_NAMES, conformance, error_problems, json_records, locate, one_json, only_token,
                             resolve_path, run_in, snapshot, stderr_summary, token_value, verbs_of)


def _corrupt_file(good: Path, bad: Path, argv: list[str], cmd) -> Path:
    """The input file that differs between the clean and the corrupt batch folder (when other files differ too,
    e.g. a model with a time stamp, the one among the values of a list argument/option, or inside its folder)."""
    g, b = snapshot(good), snapshot(bad)
    differ = [bad / rel for rel in b if not rel.endswith("/")
              and (rel not in g or (good / rel).read_bytes() != (bad / rel).read_bytes())]
    if len(differ) > 1:
        listed = []
        for p in cmd.params:
            if p.nargs == -1 or getattr(p, "multiple", False):
                for i in locate(cmd, argv[1:]).get(p.name, []):
                    listed.append(resolve_path(bad, token_value(argv[1:], i)))
        differ = [f for f in differ if any(f == t or t in f.parents for t in listed)]
    assert len(differ) == 1, f"batch(tmp, corrupt=1) must spoil exactly one input; candidates: {differ}"
    return differ[0]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_partial_batch_prints_json_and_exits_3(method, tmp_path):
    mod = conformance(method)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    argv = mod.batch(bad_dir, corrupt=1)
    if argv is None:
        return  # no batch verb
    argv = [str(a) for a in argv]
    code, out, err = run_in(bad_dir, method, [*argv, "--json"], timeout=120)
    assert code == 3, f"exit {code}, expected 3: {stderr_summary(err)}"
    assert "Traceback" not in err, stderr_summary(err)
    records = json_records(one_json(out))
    statuses = [r.get("status") for r in records]
    assert len(records) >= 3, f"expected a record per input (>= 3), got {statuses}"
    assert statuses.count("error") == 1 and statuses.count("ok") == len(records) - 1, statuses


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_the_bad_input_alone_is_exit_2(method, tmp_path):
    mod = conformance(method)
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good_dir.mkdir()
    bad_dir.mkdir()
    if mod.batch(good_dir) is None:
        return  # no batch verb
    argv = [str(a) for a in mod.batch(bad_dir, corrupt=1)]
    verb, rest = argv[0], argv[1:]
    cmd = verbs_of(method)[verb]
    corrupt = _corrupt_file(good_dir, bad_dir, argv, cmd)
    single = None
    for name, where in locate(cmd, rest).items():
        for i in where:
            p = resolve_path(bad_dir, token_value(rest, i))
            if p == corrupt or p in corrupt.parents:
                param = next(q for q in cmd.params if q.name == name)
                single = only_token(rest, cmd, param, i, str(corrupt))
                break
        if single:
            break
    assert single, f"cannot find the corrupt input {corrupt.name} (or its folder) in the batch argv {argv}"
    before = snapshot(bad_dir)
    code, out, err = run_in(bad_dir, method, [verb, *single], timeout=60)
    left = sorted(k for k in snapshot(bad_dir) if k not in before)
    problems = error_problems(code, out, err, expect=2, name=corrupt.name)
    assert not problems and not left, (f"wise {method} {verb} with the corrupt input alone: {problems}"
                                       f"{'; left behind ' + str(left[:4]) if left else ''}  [stderr: {stderr_summary(err)}]")
