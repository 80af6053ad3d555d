"""Every verb of every method has a valid example in its conformance module (CONTRACT.md §6): it exits 0 and
writes only under tmp/out (or tmp/out.ext), and
leaves nothing in $TMPDIR. The other conformance checks start from these examples."""

import pytest
from conformance_kit import VERB_IDS, VERB_PAIRS, examples_of


@pytest.mark.parametrize("method, verb", VERB_PAIRS, ids=VERB_IDS)
def test_example_runs_and_writes_only_under_out(method, verb, tmp_path_factory):
    ex = examples_of(method, tmp_path_factory)
    ex.clean_run(verb)
    left = ex.tmpdir_left[verb]
    assert not left, f"'wise {method} {verb}' leaves files in $TMPDIR: {left[:5]} (use tempfile.TemporaryDirectory)"
