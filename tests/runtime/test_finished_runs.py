"""runtime.results.finished_runs: the resume record of classify's and translate's studies."""

import json

from wisecli.runtime.results import finished_runs


def test_keys_by_setting_and_seed_and_skips_a_cut_off_line(tmp_path):
    p = tmp_path / "results.jsonl"
    assert finished_runs(p) == {}
    rows = [{"setting": "baseline", "seed": 1, "bleu": 30.0}, {"setting": "mv", "seed": "2", "bleu": 31.0}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"setting": "mv", "seed": 3, "bl')
    done = finished_runs(p)
    assert set(done) == {("baseline", 1), ("mv", 2)} and done[("mv", 2)]["bleu"] == 31.0
    p.write_text('{"seed": 1}\n[1, 2]\n')
    assert finished_runs(p) == {}
