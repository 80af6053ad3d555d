"""`import wisecli.main` must not load the heavy stack, so `wise --help` and TAB completion stay fast."""

import json
import subprocess
import sys

HEAVY = ("torch", "monai", "SimpleITK", "cv2", "numpy", "scipy", "sklearn", "skimage")


def test_import_main_loads_no_heavy_module():
    code = ("import json, sys, wisecli.main; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_completion_request_loads_no_heavy_module():
    code = ("import os, sys, json, atexit; "
            f"atexit.register(lambda: sys.stderr.write(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))); "
            "from wisecli.main import main; main([])")
    env = {"_WISE_COMPLETE": "complete_bash", "COMP_WORDS": "wise ", "COMP_CWORD": "1", "PATH": ""}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert loaded == []
    assert "doctor" in proc.stdout.split()
