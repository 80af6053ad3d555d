import pytest

from wisecli.cli.config import resolve
from wisecli.cli.errors import InputError

DEFAULTS = {"schedule.epochs1": 30, "lr": 1e-3, "device": "auto", "amp": True, "ks": [1, 2]}


def test_precedence_flag_over_set_over_env_over_file_over_default(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("lr = 0.5\ndevice = 'cpu'\namp = false\n[schedule]\nepochs1 = 7\n")
    env = {"WISE_LR": "0.25", "WISE_DEVICE": "cuda"}
    r = resolve(DEFAULTS, config_file=cfg, environ=env, sets=["device=cuda:1"], flags={"device": None, "amp": None})
    assert r.values == {"schedule.epochs1": 7, "lr": 0.25, "device": "cuda:1", "amp": False, "ks": [1, 2]}
    assert r.sources == {"schedule.epochs1": "config", "lr": "env", "device": "set", "amp": "config", "ks": "default"}
    r = resolve(DEFAULTS, config_file=cfg, environ=env, sets=["device=cuda:1"], flags={"device": "cpu"})
    assert r["device"] == "cpu" and r.sources["device"] == "flag"
    assert r.as_record()["lr"] == {"value": 0.25, "source": "env"}


def test_values_are_coerced_to_the_default_type():
    r = resolve(DEFAULTS, sets=["schedule.epochs1=12", "amp=off", "ks=3,4,5"], environ={})
    assert r["schedule.epochs1"] == 12 and r["amp"] is False and r["ks"] == [3, 4, 5]
    with pytest.raises(InputError, match="must be int"):
        resolve(DEFAULTS, sets=["schedule.epochs1=1.5"], environ={})
    with pytest.raises(InputError, match="must be bool"):
        resolve(DEFAULTS, sets=["amp=maybe"], environ={})


def test_unknown_keys_get_a_did_you_mean(tmp_path):
    with pytest.raises(InputError) as exc:
        resolve(DEFAULTS, sets=["schedule.epoch1=3"], environ={})
    assert "schedule.epochs1" in exc.value.hint
    cfg = tmp_path / "c.toml"
    cfg.write_text("[schedul]\nepochs1 = 7\n")
    with pytest.raises(InputError, match="unknown setting 'schedul.epochs1'"):
        resolve(DEFAULTS, config_file=cfg, environ={})


def test_bad_config_files_and_set_words(tmp_path):
    with pytest.raises(InputError, match="not found"):
        resolve(DEFAULTS, config_file=tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(InputError, match="not valid TOML"):
        resolve(DEFAULTS, config_file=bad, environ={})
    with pytest.raises(InputError, match="key=value"):
        resolve(DEFAULTS, sets=["lr"], environ={})


def test_a_negative_seed_is_refused_from_any_layer_and_zero_is_kept():
    d = {"seed": 0, "epochs": 3}
    with pytest.raises(InputError, match="--seed must be 0 or more, got -1"):
        resolve(d, flags={"seed": -1}, sets=[], environ={})
    with pytest.raises(InputError, match="got -4"):
        resolve(d, flags={}, sets=["seed=-4"], environ={})
    assert resolve(d, flags={"seed": 0}, sets=[], environ={}).values["seed"] == 0
    assert resolve({"epochs": -1}, flags={}, sets=[], environ={}).values["epochs"] == -1


def test_check_settings_refuses_out_of_range_values_with_the_flag_name():
    from wisecli.cli.config import check_settings

    d = {"lr": 1e-3, "dropout": 0.1, "beam": 4, "mode": "a", "name": "x"}
    kw = dict(choices={"mode": ("a", "b")}, positive=("lr", "beam"), not_negative=("dropout",), caps={"beam": 256})
    check_settings({**d, "dropout": 0.0}, d, **kw)  # zero is fine where not negative is the rule
    for bad, match in [({"lr": 0.0}, "--lr must be a finite number > 0"), ({"lr": float("nan")}, "--lr must"),
                       ({"dropout": -0.5}, "--dropout must be a finite number >= 0"),
                       ({"beam": 300}, "--beam 300 is too large"), ({"mode": "c"}, "--mode 'c' is not one of"),
                       ({"name": 2**31}, "--name 2147483648 is too large")]:
        with pytest.raises(InputError, match=match):
            check_settings({**d, **bad}, d, **kw)
