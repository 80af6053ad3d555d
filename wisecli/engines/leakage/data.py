"""Audit data (spec §4): inputs x, task labels y, a private attribute s, client ids.

Readers: the shared `runtime.io.labeled.read_labeled` reads `X`/`y` of an `.npz` (images become uint8 by its
rule, then [0, 1] here; features stay float32) and CSV tables (`path,label,...` images; other columns in its
`extra`); the attribute and client come from the npz keys / CSV columns named by `--attribute` (default `s`
for .npz, `attribute` for CSV) and `--client` (default `client`; optional). `--task-label` names another npz
key or CSV column for y. Built-ins: `digits`, `shapes32` (`synthetic.py`).

Choices [reconstructed]:
- Without client ids, samples are dealt to `clients` clients WITHIN each attribute class (about C·n_c/N
  clients per class, at least one): every client is then homogeneous in s and `--property-level client` keeps
  its meaning. With client ids and a per-sample attribute, a client's attribute is its majority s.
- The `test` part of the data (if any) is kept aside for the global accuracy; otherwise the accuracy is measured
  on the clients' samples and reported as such (`accuracy_on: "train"`).
- Attribute values are encoded in sorted order (numeric when all are integers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wisecli.cli.errors import InputError


@dataclass
class AuditData:
    X: np.ndarray  # float32 (N, C, H, W) in [0, 1] or (N, F)
    y: np.ndarray  # int64 task labels
    s: np.ndarray  # int64 attribute codes 0..K-1
    client: np.ndarray  # int64 client ids 0..C-1
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    n_classes: int
    attr_values: list[str]
    kind: str
    source: str
    dealt: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def n_clients(self) -> int:
        return int(self.client.max()) + 1

    def client_attribute(self) -> np.ndarray:
        """(C,) the majority attribute of each client."""
        return np.array([np.bincount(self.s[self.client == c], minlength=len(self.attr_values)).argmax()
                         for c in range(self.n_clients)])


def _encode(values, what: str, source: str) -> tuple[np.ndarray, list[str]]:
    vals = [str(v).strip() for v in np.asarray(values).reshape(-1).tolist()]
    if any(v == "" for v in vals):
        raise InputError(f"{source}: empty {what} value", hint=f"every sample needs a {what}")
    uniq = sorted(set(vals))
    try:
        uniq = sorted(uniq, key=float)
    except ValueError:
        pass
    index = {u: i for i, u in enumerate(uniq)}
    return np.array([index[v] for v in vals], dtype=np.int64), uniq


def _deal_within(s: np.ndarray, clients: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(len(s), dtype=np.int64)
    classes, counts = np.unique(s, return_counts=True)
    per = np.maximum(1, np.round(clients * counts / counts.sum()).astype(int))
    base = 0
    for c, k in zip(classes, per):
        idx = rng.permutation(np.flatnonzero(s == c))
        out[idx] = base + np.arange(len(idx)) % k
        base += k
    return out


def _numeric_array(a, name: str, source: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise InputError(f"{source}: '{name}' must be one value per sample, it has shape {a.shape}",
                         hint="store it as a 1-D array")
    return a


def _member(z, key: str, path: Path) -> np.ndarray:
    from wisecli.runtime.io.labeled import npz_array

    return npz_array(z, path, key)


def load(source: str | Path | None, *, dataset: str | None, attribute: str | None, task_label: str | None,
         client: str | None, image_size: int | None, planted: str, clients: int, seed: int) -> AuditData:
    """Read the audit data (see the module docstring); every problem is an InputError naming the file."""
    from . import synthetic

    if dataset is not None:
        if source is not None:
            raise InputError("give DATA or --dataset, not both", hint="e.g. --dataset digits")
        raw = synthetic.digits(clients, planted, seed) if dataset == "digits" else synthetic.shapes32(clients=clients, seed=seed)
        return AuditData(raw["X"], raw["y"], raw["s"], raw["client"], raw["X_test"], raw["y_test"],
                         len(raw["classes"]), ["0", "1"], "image", f"builtin:{dataset}")
    if source is None:
        raise InputError("no data given", hint="give an .npz (X, y, s[, client]), a CSV path,label,attribute[,client] "
                                               "or --dataset digits")
    from wisecli.runtime.io.labeled import read_labeled

    path = Path(source)
    if not path.exists():
        raise InputError(f"data not found: {path}", hint="give an .npz or a CSV with an image folder")
    lab = read_labeled(path, image_size=image_size, val_fraction=0.0)  # a corrupt .npz is its InputError
    n = len(lab.y)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        akey, ckey = attribute or "s", client or "client"
        from wisecli.runtime.io.labeled import open_npz

        with open_npz(path) as z:
            keys = set(z.files)
            if akey not in keys:
                raise InputError(f"{path} has no array '{akey}' (the private attribute; it has {', '.join(sorted(keys))})",
                                 hint="store it as s (np.savez(f, X=X, y=y, s=s)) or name it with --attribute")
            cols = {akey: _member(z, akey, path)}
            if ckey in keys:
                cols[ckey] = _member(z, ckey, path)
            elif client is not None:
                raise InputError(f"{path} has no array '{ckey}' (--client)", hint=f"its arrays: {', '.join(sorted(keys))}")
            if task_label not in (None, "y"):
                if task_label not in keys:
                    raise InputError(f"{path} has no array '{task_label}' (--task-label)",
                                     hint=f"its arrays: {', '.join(sorted(keys))}")
                cols["__y"] = _member(z, task_label, path)
    else:
        akey, ckey = attribute or "attribute", client or "client"
        cols = {}
        if akey not in lab.extra:
            raise InputError(f"{path} has no column '{akey}' (the private attribute)",
                             hint="add an attribute column or name it with --attribute; columns: "
                                  + ", ".join(["path", "label", *lab.extra]))
        cols[akey] = lab.extra[akey]
        if ckey in lab.extra:
            cols[ckey] = lab.extra[ckey]
        elif client is not None:
            raise InputError(f"{path} has no column '{ckey}' (--client)", hint="columns: " + ", ".join(["path", "label", *lab.extra]))
        if task_label not in (None, "label"):
            if task_label not in lab.extra:
                raise InputError(f"{path} has no column '{task_label}' (--task-label)",
                                 hint="columns: " + ", ".join(["path", "label", *lab.extra]))
            cols["__y"] = lab.extra[task_label]
    for k, v in cols.items():
        v = _numeric_array(v, k, str(path))
        if len(v) != n:
            raise InputError(f"{path}: '{k if k != '__y' else task_label}' has {len(v)} values but there are {n} samples",
                             hint="one value per sample")
        cols[k] = v
    s, values = _encode(cols[akey], "attribute", str(path))
    if len(values) < 2:
        raise InputError(f"{path}: the attribute '{akey}' has one class only ({values[0]!r})",
                         hint="the private attribute needs at least two values")
    y = lab.y if "__y" not in cols else _encode(cols["__y"], "task label", str(path))[0]
    n_classes = int(y.max()) + 1 if "__y" in cols else len(lab.classes)
    X = lab.X.astype(np.float32)
    if lab.kind == "image":
        X = X / 255.0
    dealt = ckey not in cols
    cl = _deal_within(s, clients, seed) if dealt else _encode(cols[ckey], "client", str(path))[0]
    test = lab.split.get("test")
    if test is not None and len(test) and len(test) < n:
        keep = np.setdiff1d(np.arange(n), test)
        cl_keep = np.unique(cl[keep], return_inverse=True)[1]
        return AuditData(X[keep], y[keep], s[keep], cl_keep, X[test], y[test], n_classes, values, lab.kind,
                         str(path), dealt)
    return AuditData(X, y, s, cl, None, None, n_classes, values, lab.kind, str(path), dealt)
