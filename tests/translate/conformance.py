"""Valid, fast examples of every verb of translate, for the conformance suite (tests/suite).

The data are the engine's synthetic pairs written as line-aligned text files; the checkpoint is what `translate
train` writes (`save_checkpoint` of a `micro` 2-view model with a 300-id BPE learned on those pairs, built in
milliseconds instead of trained: decoding it gives arbitrary but valid text). `predict` INPUTS are strings
because `-` reads text lines on stdin.
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --warmup": {"0"},            # 0: no warm-up
    "train --kl-alpha": {"0"},          # 0: no KL term
    "train --aux-weight": {"0"},        # 0: no auxiliary CE
    "train --average-last": {"0"},      # 0: no averaging
    "train --label-smoothing": {"0"},   # 0: plain CE
    "train --src-col": {"0"},
    "train --tgt-col": {"0"},
    "train --seed": {"0"},
    "train --synthetic": {"0"},         # 0: no synthetic pairs
    "study --synthetic": {"0"},         # 0: the profile's data
    "evaluate --bootstrap": {"0"},      # 0: no bootstrap
    "evaluate --chrf-word-order": {"0"},  # 0: chrF (2: chrF++)
}
STDIN: set[str] = {"predict INPUTS"}  # "-" reads text lines on stdin


def _pairs(tmp: Path, n: int = 40) -> tuple[Path, Path]:
    from wisecli.engines.translate.synthetic import pairs

    tmp.mkdir(parents=True, exist_ok=True)
    s, t = tmp / "train.en", tmp / "train.xx"
    if not s.is_file():
        a, b = pairs(n, seed=3)
        s.write_text("\n".join(a) + "\n", encoding="utf-8")
        t.write_text("\n".join(b) + "\n", encoding="utf-8")
    return s, t


def _checkpoint(tmp: Path) -> Path:
    import torch

    from wisecli.engines.translate.api import DEFAULTS
    from wisecli.engines.translate.model import Translator, model_config
    from wisecli.engines.translate.synthetic import pairs
    from wisecli.engines.translate.tokenizer import learn_bpe
    from wisecli.runtime.checkpoints import save_checkpoint

    path = tmp / "ckpt" / "best.pt"
    if not path.is_file():
        a, b = pairs(200, seed=4)
        tok = learn_bpe(a + b, 300)
        mc = model_config("micro", tok.vocab_size, views=2)
        torch.manual_seed(0)
        save_checkpoint(path, method="translate", arch="micro",
                        config={"model": mc, "train": {**DEFAULTS["train"], "max_len": 64}, "data": {"tgt_lang": "xx"}},
                        state_dict=Translator(mc).state_dict(), tokenizer=tok.state())
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise translate <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out` (a folder) or `tmp/out.EXT`."""
    tmp = Path(tmp)
    src, tgt = _pairs(tmp / "data")
    ckpt = _checkpoint(tmp)
    few = tmp / "data" / "few.en"
    if not few.is_file():
        few.write_text("the dog sees a cat\n\nthe old king reads 3 books\n", encoding="utf-8")
    few_ref = tmp / "data" / "few.xx"
    if not few_ref.is_file():
        few_ref.write_text("lo dug sees una cat\n\nlo old king reads 3 books\n", encoding="utf-8")
    cpu = ["--device", "cpu"]
    return {
        "train": ["-o", str(tmp / "out"), "--src", str(src), "--tgt", str(tgt), "--arch", "micro", "--max-steps", "2",
                  "--eval-every", "2", "--vocab-size", "300", "--valid-beam", "1", "--valid-max", "4",
                  "--max-tokens", "256", "--no-progress", *cpu],
        "predict": [str(few), "--weights", str(ckpt), "--beam", "2", *cpu],
        "evaluate": ["--weights", str(ckpt), "--src", str(few), "--ref", str(few_ref), "--beam", "2", *cpu],
        "study": ["-o", str(tmp / "out"), "--synthetic", "100", "--steps", "1", "--seeds", "1", "--grid", "claim",
                  *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise translate` of `predict` over 3 text files written under tmp, outputs in tmp/"out"; with
    `corrupt=i` file i is replaced by random bytes (not UTF-8: an item error, exit 3)."""
    import os

    tmp = Path(tmp)
    ckpt = _checkpoint(tmp)
    folder = tmp / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i in range(3):
        p = folder / f"doc{i}.en"
        if corrupt == i:
            p.write_bytes(b"\xff\xfe" + os.urandom(200))
        else:
            p.write_text(f"the dog sees {i} cats\nthe old king reads a book\n", encoding="utf-8")
        inputs.append(str(p))
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out"), "--beam", "2", "--device", "cpu"]
