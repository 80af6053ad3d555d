"""Valid, fast examples of every verb of text-vae, for the conformance suite (tests/suite).

The data are the engine's synthetic sentences written as text files; the checkpoint is what `text-vae train`
writes (`save_checkpoint` of a tiny TWR model with the vocabulary of those sentences, built in milliseconds
instead of trained: decoding it gives arbitrary but valid text). `predict` INPUTS are strings because `-` reads
text lines on stdin.
"""

from __future__ import annotations

from pathlib import Path

VALID_EDGES: dict[str, set[str]] = {
    "train --dropout": {"0"},        # 0: no dropout
    "train --patience": {"0"},       # 0: no early stopping
    "train --kl-start": {"0"},       # 0: annealing from 0
    "train --anneal-epochs": {"0"},  # 0: no annealing
    "train --seed": {"0"},
    "predict --seed": {"0"},
    "evaluate --seed": {"0"},
}
STDIN: set[str] = {"predict INPUTS"}  # "-" reads text lines on stdin


def _text(tmp: Path, name: str = "train.txt", n: int = 60, seed: int = 3) -> Path:
    from wisecli.engines.text_vae.synthetic import lm_sentences

    tmp.mkdir(parents=True, exist_ok=True)
    p = tmp / name
    if not p.is_file():
        p.write_text("\n".join(lm_sentences(n, seed=seed)[0]) + "\n", encoding="utf-8")
    return p


def _checkpoint(tmp: Path, kind: str = "twr") -> Path:
    import torch

    from wisecli.engines.text_vae import data as D
    from wisecli.engines.text_vae.api import DEFAULTS
    from wisecli.engines.text_vae.model import TextVAE, model_config
    from wisecli.engines.text_vae.synthetic import lm_sentences
    from wisecli.runtime.checkpoints import save_checkpoint

    path = tmp / f"ckpt_{kind}" / "best.pt"
    if not path.is_file():
        sents, _ = lm_sentences(300, seed=4)
        vocab = D.Vocab.build([D.tokenize(s) for s in sents])
        mc = model_config(len(vocab), model=kind, emb=16, hidden=16, z_dim=4)
        torch.manual_seed(0)
        save_checkpoint(path, method="text-vae", arch=kind,
                        config={"model": mc, "train": {**DEFAULTS["train"], "max_len": 20}},
                        state_dict=TextVAE(mc).state_dict(), vocab=vocab.state())
    return path


def examples(tmp: Path) -> dict[str, list[str]]:
    """verb -> argv after `wise text-vae <verb>`: a valid run (exit 0) taking at most ~2 s on 1 CPU core,
    reading inputs it creates under `tmp` and writing only into `tmp/out` (a folder) or `tmp/out.EXT`."""
    tmp = Path(tmp)
    train = _text(tmp / "data")
    test = _text(tmp / "data", "test.txt", 10, seed=5)
    ckpt = _checkpoint(tmp)
    cpu = ["--device", "cpu"]
    return {
        "train": [str(train), "-o", str(tmp / "out"), "--emb", "8", "--hidden", "8", "--z-dim", "2", "--epochs", "1",
                  "--batch-size", "32", "--no-progress", *cpu],
        "predict": [str(test), "--weights", str(ckpt), "--mode", "reconstruct", *cpu],
        "evaluate": [str(test), "--weights", str(ckpt), "--iw-samples", "4", "--iw-chunk", "4", "--elbo-samples", "2",
                     *cpu],
        "demo": ["--quick", *cpu],
        "info": [],
        "benchmark": ["--quick", *cpu],
    }


def batch(tmp: Path, corrupt: int | None = None) -> list[str] | None:
    """argv after `wise text-vae` of `predict --mode reconstruct` over 3 text files written under tmp, outputs in
    tmp/"out"; with `corrupt=i` file i is replaced by random bytes (not UTF-8: an item error, exit 3)."""
    import os

    tmp = Path(tmp)
    ckpt = _checkpoint(tmp)
    folder = tmp / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i in range(3):
        p = folder / f"doc{i}.txt"
        if corrupt == i:
            p.write_bytes(b"\xff\xfe" + os.urandom(200))
        else:
            p.write_text(f"the ship sails near the island {i}\nthe cow eats .\n", encoding="utf-8")
        inputs.append(str(p))
    return ["predict", *inputs, "--weights", str(ckpt), "-o", str(tmp / "out"), "--mode", "reconstruct",
            "--device", "cpu"]
