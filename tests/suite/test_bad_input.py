"""Bad input to every verb of every method (CONTRACT.md §5-§6): each case starts from the verb's valid example
and spoils one thing. Each must be exit 2 before any work: stdout empty, stderr exactly one `Error: ...` line
(naming the bad file where there is one) and at most one `Hint: ...`, no traceback, and no file left behind.

- every file-reading argument/option (Path-typed and not an output, or listed in STDIN): missing, empty,
  random bytes, truncated (.gz, .npz, .zip, .pt, .nii.gz, .mha, ...), a folder instead of the file; a
  folder value: missing and empty. Only the first value of a list is kept (a lone bad input is exit 2);
- `--weights/--pretrained/--init`: another method's checkpoint and a corrupt .pt;
- `train --resume`: a run folder whose checkpoints/last.pt is corrupt or another method's;
- `--config`: a binary file and a missing file;
- every int/float option (not shared, not --seed): 0, -1, nan, inf unless listed in VALID_EDGES;
- `--json --jsonl` together.

All cases run in-process (`run_wise`) in the method's shared example folder; a case's files live in
tmp/_cases/N/ and everything a case leaves is removed before the next.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance_kit import (CHECKPOINT_OPTS, EDGES, VERB_IDS, VERB_PAIRS, error_problems, examples_of, foreign_checkpoint,
                             is_shared, kind, locate, long_name, only_token, out_location, random_bytes,
                             resolve_path, run_in, snapshot, stderr_summary, token_value, truncatable,
                             valid_edges, file_params, verbs_of)


class Cases:
    """Runs spoilt argvs of one verb and collects what is wrong with each."""

    def __init__(self, ex, verb):
        self.ex, self.verb, self.n, self.failures, self.count = ex, verb, 0, [], 0

    def folder(self) -> Path:
        self.n += 1
        d = self.ex.tmp / "_cases" / str(self.n)
        d.mkdir(parents=True)
        return d

    def check(self, label: str, argv: list[str], *, name: str | None = None, expect: int = 2) -> None:
        before = snapshot(self.ex.tmp)
        code, out, err = run_in(self.ex.tmp, self.ex.method, [self.verb, *argv], timeout=20)
        left = sorted(k for k in snapshot(self.ex.tmp) if k not in before)
        problems = error_problems(code, out, err, expect=expect, name=name)
        if left:
            problems.append(f"left behind: {left[:4]}")
        self.count += 1
        if problems:
            self.failures.append(f"{label}: {'; '.join(problems)}  [stderr: {stderr_summary(err)}]")
        self.ex.restore()

    def report(self) -> None:
        head = f"wise {self.ex.method} {self.verb}: {len(self.failures)} of {self.count} bad-input cases fail"
        assert not self.failures, head + "\n  " + "\n  ".join(self.failures)


def _setup(method, verb, tmp_path_factory):
    ex = examples_of(method, tmp_path_factory)
    return ex, verbs_of(method)[verb], ex.example(verb)


def _file_cases(src: Path):
    """(label, make(target)) for a file value."""
    def missing(t):
        pass

    def empty(t):
        t.write_bytes(b"")

    def garbage(t):
        t.write_bytes(random_bytes(512))

    def truncated(t):
        data = src.read_bytes()
        t.write_bytes(data[: len(data) // 2])

    def folder(t):
        t.mkdir()

    cases = [("missing", missing), ("empty", empty), ("random bytes", garbage)]
    if truncatable(src.name):
        cases.append(("truncated", truncated))
    return cases + [("a folder", folder)]


def _folder_cases():
    return [("missing folder", lambda t: None), ("empty folder", lambda t: t.mkdir())]


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_bad_file_inputs(method, verb, tmp_path_factory):
    ex, cmd, argv = _setup(method, verb, tmp_path_factory)
    cases = Cases(ex, verb)
    where = locate(cmd, argv)
    for p in file_params(method, verb, cmd):
        for i in where.get(p.name, [])[:1]:
            value = token_value(argv, i)
            if value == "-" or value.startswith("@"):
                continue
            src = resolve_path(ex.tmp, value)
            if src.is_file():
                variants = _file_cases(src)
            elif src.is_dir():
                variants = _folder_cases()
            else:
                continue
            for label, make in variants:
                target = cases.folder() / src.name
                make(target)
                cases.check(f"{long_name(p) if p.opts[0].startswith('-') else p.name.upper()} {label}",
                            only_token(argv, cmd, p, i, str(target)), name=src.name)
    cases.report()


def _with_option(argv: list[str], cmd, opt: str, value: str) -> list[str]:
    param = next(p for p in cmd.params if opt in p.opts)
    where = locate(cmd, argv).get(param.name, [])
    return only_token(argv, cmd, param, where[0], value) if where else [*argv, opt, value]


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_bad_checkpoints(method, verb, tmp_path_factory):
    ex, cmd, argv = _setup(method, verb, tmp_path_factory)
    opts = [o for o in CHECKPOINT_OPTS if any(o in p.opts for p in cmd.params)]
    cases = Cases(ex, verb)
    for opt in opts:
        target = foreign_checkpoint(cases.folder() / "foreign.pt", method)
        cases.check(f"{opt} another method's checkpoint", _with_option(argv, cmd, opt, str(target)), name="foreign.pt")
        target = cases.folder() / "corrupt.pt"
        target.write_bytes(random_bytes(2048))
        cases.check(f"{opt} corrupt checkpoint", _with_option(argv, cmd, opt, str(target)), name="corrupt.pt")
    cases.report()


@pytest.mark.parametrize("method, verb", [pv for pv in VERB_PAIRS if pv[1] == "train"],
                         ids=[i for i, pv in zip(VERB_IDS, VERB_PAIRS) if pv[1] == "train"])
def test_bad_resume_folder(method, verb, tmp_path_factory):
    ex, cmd, argv = _setup(method, verb, tmp_path_factory)
    if not any("--resume" in p.opts for p in cmd.params):
        pytest.fail(f"'wise {method} train' has no --resume (every train resumes: o.Resume)", pytrace=False)
    out = out_location(ex.tmp, argv)
    assert out, f"the train example of {method} does not write into tmp/out (-o {ex.tmp / 'out'})"
    cases = Cases(ex, verb)
    for label in ("corrupt", "another method's"):
        run = cases.folder() / "run"
        (run / "checkpoints").mkdir(parents=True)
        last = run / "checkpoints" / "last.pt"
        if label == "corrupt":
            last.write_bytes(random_bytes(2048))
        else:
            foreign_checkpoint(last, method)
        new = list(argv)
        new[out[0]] = str(run)
        cases.check(f"--resume with {label} checkpoints/last.pt", [*new, "--resume"], name="last.pt")
    cases.report()


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_bad_config_file(method, verb, tmp_path_factory):
    ex, cmd, argv = _setup(method, verb, tmp_path_factory)
    cases = Cases(ex, verb)
    binary = cases.folder() / "bad.toml"
    binary.write_bytes(random_bytes(256))
    cases.check("--config binary file", [*argv, "--config", str(binary)], name="bad.toml")
    cases.check("--config missing file", [*argv, "--config", str(cases.folder() / "missing.toml")],
                name="missing.toml")
    cases.report()


def numeric_options(cmd) -> list:
    return [p for p in cmd.params if p.opts[0].startswith("-") and kind(p) in ("int", "float") and not is_shared(p)
            and p.name != "seed" and p.nargs == 1]


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_bad_numbers(method, verb, tmp_path_factory):
    ex, cmd, argv = _setup(method, verb, tmp_path_factory)
    valid = valid_edges(method)
    cases = Cases(ex, verb)
    for p in numeric_options(cmd):
        name = long_name(p)
        for edge in EDGES:
            if edge in ("nan", "inf") and kind(p) != "float":
                continue
            if edge in valid.get(f"{verb} {name}", set()):
                continue
            cases.check(f"{name} {edge}", [*argv, name, edge])
    cases.report()


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_json_and_jsonl_together_is_a_usage_error(method, verb, tmp_path_factory):
    cmd = verbs_of(method)[verb]
    opts = {o for p in cmd.params for o in p.opts}
    if not {"--json", "--jsonl"} <= opts:
        return  # nothing to check: the verb has not both
    ex, cmd, argv = _setup(method, verb, tmp_path_factory)
    cases = Cases(ex, verb)
    cases.check("--json --jsonl", [*argv, "--json", "--jsonl"])
    cases.report()
