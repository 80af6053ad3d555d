"""runtime.batch.jsonl_output: the one JSONL file of a batch verb (shards, --skip-existing, --overwrite)."""

import pytest


def test_jsonl_output_names_shards_skips_a_finished_run_and_refuses_to_overwrite(tmp_path):
    import json

    from wisecli.cli.errors import InputError
    from wisecli.runtime.batch import jsonl_output

    kw = dict(inputs=["a.png", "b.png"], verb="x predict", config={"weights": "w.pt"})
    assert jsonl_output(None, None, skip_existing=False, overwrite=False, **kw) == (None, None)
    path, skipped = jsonl_output(tmp_path / "p.jsonl", (2, 4), skip_existing=False, overwrite=False, **kw)
    assert path == tmp_path / "p.part-2-of-4.jsonl" and skipped is None
    path.write_text("{}\n")
    with pytest.raises(InputError):
        jsonl_output(tmp_path / "p.jsonl", (2, 4), skip_existing=False, overwrite=False, **kw)
    assert jsonl_output(tmp_path / "p.jsonl", (2, 4), skip_existing=False, overwrite=True, **kw)[1] is None
    _, skipped = jsonl_output(tmp_path / "p.jsonl", (2, 4), skip_existing=True, overwrite=False, **kw)
    assert skipped["status"] == "skipped" and [r["status"] for r in skipped["records"]] == ["skipped"] * 2
    assert json.loads((tmp_path / "run.json").read_text())["items"]["skipped"] == 2
