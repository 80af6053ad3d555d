"""A property-based fuzz of every verb's options (issue 12 §6): start from the verb's valid example, perturb one
or two of its options with values drawn by type (ints with 0/-1/huge, floats with nan/inf/1e308/-0.0, text with
unicode and empty, the choices and a wrong one, flags toggled). Whatever the values: no traceback, an exit code
in {0, 1, 2, 3}, and an empty stdout on exit 2.

File-reading and output options are left to test_bad_input/test_write_faults; --debug (which shows tracebacks
on purpose), -v/-q, --config and --set are not fuzzed. A run that is still going after STOP_S seconds (a valid
value: its work, not its checks, is running) is stopped and counts as no verdict, which keeps the suite's time
within its budget (three draws a verb). No shrinking, so a failure costs no more than the examples.
"""

from __future__ import annotations

import pytest
from conformance_kit import (TIMEOUT_CODE, VERB_IDS, VERB_PAIRS, choices, examples_of, file_params, is_option,
                             is_output, kind, locate, long_name, only_token, stderr_summary, verbs_of)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=3, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STOP_S = 3.0  # options are validated before the work starts; a valid draw's full run is what test_examples checks
NOT_FUZZED = {"debug", "verbose", "quiet", "config", "set_"}
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)


def fuzzable(method, verb, cmd) -> list:
    files = {p.name for p in file_params(method, verb, cmd)}
    return [p for p in cmd.params if is_option(p) and p.name not in NOT_FUZZED and p.name not in files
            and not is_output(p) and kind(p) != "path" and p.nargs == 1]


def values(p):
    k = kind(p)
    if p.is_flag:
        return st.just(None)
    if k == "int":
        return st.sampled_from(["0", "-1", "1", "2", "2147483648", "99999999999999999999"]) | st.integers(-3, 64).map(str)
    if k == "float":
        return st.sampled_from(["nan", "inf", "-inf", "1e308", "-0.0", "0", "-1", "1e-300"]) | \
            st.floats(-10, 10, allow_nan=False).map(repr)
    if k == "choice":
        return st.sampled_from([*choices(p), "not-a-choice"])
    return TEXT | st.sampled_from(["", "ü∂", "-", "0", "a,b", "nan"])


def perturb(argv: list[str], cmd, p, value) -> list[str]:
    names = list(p.opts) + list(p.secondary_opts)
    if p.is_flag:
        present = [t for t in argv if t in names]
        if present:
            return [t for t in argv if t not in names]
        return [*argv, p.opts[0] if p.opts[0].startswith("-") else long_name(p)]
    where = locate(cmd, argv).get(p.name, [])
    return only_token(argv, cmd, p, where[0], value) if where else [*argv, long_name(p), value]


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    """A fuzzed size (2^31 ranks, a 10^20 batch) must be refused or bounded, never allocated: under a 16 GiB
    address-space cap such a run fails here with a traceback naming the draw, instead of the OOM killer
    taking the whole test run down on a 24 GB machine."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = 16 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_fuzzed_options_never_crash(method, verb, tmp_path_factory):
    ex = examples_of(method, tmp_path_factory)
    cmd = verbs_of(method)[verb]
    base = ex.example(verb)
    # the example once in full (cached for the session): the modules it imports lazily are loaded before a run is
    # stopped at STOP_S, since stopping one inside an import would leave a half-made module for every later run
    ex.clean_run(verb)
    opts = fuzzable(method, verb, cmd)
    if not opts:
        return  # no option to fuzz

    @FUZZ
    @given(st.data())
    def check(data):
        chosen = data.draw(st.lists(st.sampled_from(opts), min_size=1, max_size=min(2, len(opts)),
                                    unique_by=lambda p: p.name), label="options")
        argv = list(base)
        for p in chosen:
            argv = perturb(argv, cmd, p, data.draw(values(p), label=long_name(p)))
        code, out, err = ex.run([verb, *argv], timeout=STOP_S)
        ex.restore()
        if code == TIMEOUT_CODE:
            return
        shown = f"wise {method} {verb} {' '.join(argv)}"
        assert "Traceback" not in err, f"{shown}: traceback: {stderr_summary(err)}"
        assert code in (0, 1, 2, 3), f"{shown}: exit {code}: {stderr_summary(err)}"
        if code == 2:
            assert out == "", f"{shown}: exit 2 with stdout {out[:200]!r}"

    check()
