"""One audit of a model's per-layer leakage (spec §2.1–2.3): observations, sketches, V-information per family
with the permutation control, Jacobian sensitivity, records.

Observation design [reconstructed where the spec is silent]: `n_obs` observations balanced over clients (the
first n_obs mod C clients get one more); each is a batch of B of its client's samples drawn without
replacement inside the batch (samples recur across observations), from a generator seeded by (seed, round).
`--observe update` draws E such batches per observation and takes θ_after − θ_before of E plain SGD steps at
`lr`. Labels: `client` level = the client's (majority) attribute; `sample` level = 1 when the batch holds a
sample with s = 1 (the second attribute value).
Control: the client→attribute map permuted across clients (client level), or the observation labels permuted
across observations grouped by client (sample level), with a generator seeded by (seed, round, 2): of up to 200
draws, the first whose labels share no information with the true ones (plug-in mutual information 0), else the
least informative (a permutation that only relabels the classes, e.g. swaps 0 and 1 over 4 clients, is no
control: its V-information equals the true one).
Sensitivity: `n_sens` client samples drawn with the same generator; u_s from the attribute-conditional means of
all client samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import algorithm as alg
from . import metrics as mt
from . import sensitivity as sens


def design(data, cfg: dict, rnd: int) -> dict:
    """The observation plan: batch indices (n, [E,] B), labels (n,), groups (n,), control labels (n,)."""
    rng = np.random.default_rng([int(cfg["seed"]), int(rnd), 1])
    C = data.n_clients
    n_obs, B = int(cfg["n_obs"]), int(cfg["batch_size"])
    E = int(cfg["local_steps"]) if cfg["observe"] == "update" else 1
    cattr = data.client_attribute()
    idx, groups = [], []
    for c in range(C):
        own = np.flatnonzero(data.client == c)
        k = n_obs // C + (1 if c < n_obs % C else 0)
        for _ in range(k):
            idx.append(np.stack([rng.choice(own, size=B, replace=False) for _ in range(E)]))
            groups.append(c)
    idx = np.stack(idx)
    groups = np.asarray(groups)
    if cfg["property_level"] == "client":
        labels = cattr[groups]
    else:
        labels = (data.s[idx.reshape(len(idx), -1)] == 1).any(axis=1).astype(np.int64)
    crng = np.random.default_rng([int(cfg["seed"]), int(rnd), 2])
    best, best_mi = labels, np.inf
    for _ in range(200):
        if cfg["property_level"] == "client":
            control = cattr[crng.permutation(C)][groups]
        else:
            blocks = [np.flatnonzero(groups == c) for c in crng.permutation(C)]
            control = labels[np.concatenate(blocks)]
        mi = _mutual_info(labels, control)
        if mi < best_mi:
            best, best_mi = control, mi
        if mi < 1e-12:
            break
    return {"idx": idx if E > 1 else idx[:, 0], "labels": labels, "groups": groups, "control": best}


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two label vectors."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb) / len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())
    return {"idx": idx if E > 1 else idx[:, 0], "labels": labels, "groups": groups, "control": control}


def _features(model, params, X, y, plan, cfg, layers, sketches, device):
    """{family: [per-layer (n, d_l) tensors]} of the sketched observations, computed chunk by chunk."""
    fams = [f for f in ("linear", "quadratic") if f in cfg["_fams"]] or ["linear"]
    if ("forest" in cfg["_fams"] or "mlp" in cfg["_fams"]) and "linear" not in fams:
        fams.append("linear")
    out = {f: {l: [] for l in layers} for f in set(fams) | {"linear"}}
    idx = torch.as_tensor(plan["idx"], device=device)
    chunk = int(cfg["chunk"])
    for i in range(0, len(idx), chunk):
        bi = idx[i:i + chunk]
        if cfg["observe"] == "grad":
            g = alg.per_batch_grads(model, params, X[bi], y[bi], chunk=chunk)
        else:
            g = alg.local_updates(model, params, X[bi], y[bi], float(cfg["lr"]), chunk=chunk)
        for l, members in layers.items():
            flat = alg.flat_layer(g, members)
            z = sketches[l](flat)
            out["linear"][l].append(z)
            if "quadratic" in out:
                out["quadratic"][l].append(torch.cat([z, sketches[l + "/sq"](flat * flat)], dim=1))
        del g
    return {f: {l: torch.cat(v) for l, v in d.items()} for f, d in out.items()}


def audit_round(model: nn.Module, params: dict, X: torch.Tensor, y: torch.Tensor, data, cfg: dict, rnd: int,
                device: torch.device) -> dict:
    """The audit of one round (see the module docstring): {records, pointwise, features, seconds}."""
    import time

    t0 = time.perf_counter()
    layers = alg.layer_groups(model, cfg["layers"])
    plan = design(data, cfg, rnd)
    mt.check_folds(plan["labels"], plan["groups"], int(cfg["folds"]))
    D = int(cfg["sketch"])
    sizes = {l: sum(params[m].numel() for m in mem) for l, mem in layers.items()}
    sketches = {}
    for l, n in sizes.items():
        sketches[l] = alg.Sketch(n, D, seed=int(cfg["seed"]), name=l, device=device)
        sketches[l + "/sq"] = alg.Sketch(n, D, seed=int(cfg["seed"]), name=l + "/sq", device=device)
    feats = _features(model, params, X, y, plan, cfg, layers, sketches, device)
    K = int(max(plan["labels"].max(), plan["control"].max())) + 1
    groups = plan["groups"]
    fold = mt.outer_folds(plan["labels"], groups, int(cfg["folds"]), int(cfg["seed"]) + rnd)
    fold_kind = "group-by-client"
    control = bool(cfg["control"])
    est: dict[tuple[str, str], dict] = {}
    pointwise: dict[str, np.ndarray] = {}
    for fam in cfg["_fams"]:
        if fam == "mlp":
            est.update({(l, fam): v for l, v in _mlp_family(feats["linear"], layers, plan, fold, groups, K, control,
                                                               int(cfg["seed"])).items()})
            for l in layers:
                pointwise[f"{l}|{fam}"] = est[(l, fam)]["main"].pointwise
            continue
        if fam != "forest":
            res = _logistic_family(feats[fam], layers, plan, fold, groups, K, control, int(cfg["seed"]))
            est.update({(l, fam): v for l, v in res.items()})
            for l in layers:
                pointwise[f"{l}|{fam}"] = est[(l, fam)]["main"].pointwise
            continue
        for l in layers:
            if fam == "forest":
                Z = feats["linear"][l].double().cpu().numpy()
                Z = (Z - Z.mean(0)) / np.where(Z.std(0) > 1e-12, Z.std(0), 1.0)
                res = [mt.vinfo_forest(Z, lab, fold, seed=int(cfg["seed"])) for lab in
                       ([plan["labels"], plan["control"]] if control else [plan["labels"]])]
            else:
                Z = feats[fam][l]
                stack = torch.stack([Z, Z]) if control else Z[None]
                labs = np.stack([plan["labels"], plan["control"]]) if control else plan["labels"][None]
                res = mt.vinfo_logistic(stack, labs, fold, groups, K=K, seed=int(cfg["seed"]))
            est[(l, fam)] = {"main": res[0], "control": res[1] if control else None}
            pointwise[f"{l}|{fam}"] = res[0].pointwise
    sens_res = sensitivity_round(model, params, X, y, data, cfg, rnd, device, layers, sizes)
    records = []
    for l in layers:
        fams = list(cfg["_fams"])
        best = max(fams, key=lambda f: est[(l, f)]["main"].bits)
        for fam in fams + (["best"] if cfg["_best"] else []):
            e = est[(l, best if fam == "best" else fam)]
            rec = {"round": int(rnd), "layer": l, "n_params": int(sizes[l]), "family": fam,
                   **e["main"].record(),
                   "control_bits": e["control"].bits if e["control"] is not None else None,
                   "control_ci95": list(e["control"].ci95) if e["control"] is not None else None,
                   "observe": cfg["observe"], "batch_size": int(cfg["batch_size"]), "n_obs": int(len(plan["labels"])),
                   "folds": fold_kind, "property_level": cfg["property_level"], "sketch": D}
            if fam == "best":
                rec["best_of"] = best
            rec.update(sens_res.get(l, {}))
            records.append(rec)
    return {"records": records, "pointwise": pointwise, "labels": plan["labels"], "groups": groups,
            "control": plan["control"], "features": {l: feats["linear"][l].cpu().numpy() for l in layers},
            "seconds": time.perf_counter() - t0}


def _logistic_family(feats: dict, layers: dict, plan: dict, fold, groups, K: int, control: bool, seed: int,
                     budget: int = 1 << 24) -> dict:
    """V-information of every layer with one logistic family; layers are solved together (features zero-padded
    to a common width: zero columns get zero weight and change nothing) while the Newton Hessians of a group
    stay within `budget` entries."""
    fam_of = {}
    names = list(layers)
    labs = np.stack([plan["labels"], plan["control"]]) if control else plan["labels"][None]
    per = labs.shape[0]
    Q = 6 * (int(fold.max()) + 1)  # an upper bound of problems per dataset (inner folds + refit per outer fold)
    i = 0
    while i < len(names):
        group = [names[i]]
        d = feats[names[i]].shape[1]
        while i + len(group) < len(names):
            nd = max(d, feats[names[i + len(group)]].shape[1])
            if (len(group) + 1) * per * Q * (nd + 1) ** 2 > budget:
                break
            group.append(names[i + len(group)])
            d = nd
        stack = []
        for l in group:
            Z = feats[l]
            Z = torch.nn.functional.pad(Z, (0, d - Z.shape[1]))
            stack.extend([Z] * per)
        res = mt.vinfo_logistic(torch.stack(stack), np.concatenate([labs] * len(group)), fold, groups, K=K, seed=seed)
        for k, l in enumerate(group):
            fam_of[l] = {"main": res[k * per], "control": res[k * per + 1] if control else None}
        i += len(group)
    return fam_of


def _mlp_family(feats: dict, layers: dict, plan: dict, fold, groups, K: int, control: bool, seed: int) -> dict:
    """V-information of every layer with the `mlp` family on the (linear) sketch: all layers and the control in
    one batched training (features zero-padded to a common width; a zero column stays zero after
    standardisation and changes nothing)."""
    names = list(layers)
    labs = np.stack([plan["labels"], plan["control"]]) if control else plan["labels"][None]
    per = labs.shape[0]
    d = max(feats[l].shape[1] for l in names)
    stack = [torch.nn.functional.pad(feats[l], (0, d - feats[l].shape[1])) for l in names for _ in range(per)]
    res = mt.vinfo_mlp(torch.stack(stack), np.concatenate([labs] * len(names)), fold, groups, K=K, seed=seed)
    return {l: {"main": res[k * per], "control": res[k * per + 1] if control else None} for k, l in enumerate(names)}


def sensitivity_round(model, params, X, y, data, cfg, rnd, device, layers, sizes) -> dict[str, dict]:
    """Per-layer sensitivity fields of the records (empty with sensitivity "none")."""
    kind = cfg["sensitivity"]
    if kind == "none":
        return {}
    rng = np.random.default_rng([int(cfg["seed"]), int(rnd), 3])
    n = min(int(cfg["n_sens"]), len(y))
    pick = torch.as_tensor(np.sort(rng.choice(len(y), size=n, replace=False)), device=device)
    xs, ys = X[pick], y[pick]
    s_all = torch.as_tensor(data.s, device=device)
    gen = torch.Generator().manual_seed(int(cfg["seed"]) * 7919 + int(rnd))
    out: dict[str, dict] = {}

    def fill(prefix: str, latent: str | None):
        u = sens.attribute_directions(X if latent is None else sens.latent_inputs(model, latent, X), s_all)
        if kind == "hutchinson":
            h = sens.hutchinson(model, params, xs, ys, int(cfg["probes"]), generator=gen, u=u, latent=latent)
            fro, att, label = h["fro2"], h["attr2"], f"hutchinson-{int(cfg['probes'])}"
        elif kind == "exact":
            fro = sens.exact_norms(model, params, xs, ys, latent=latent)
            h = sens.hutchinson(model, params, xs, ys, 1, generator=gen, u=u, latent=latent)
            att, label = h["attr2"], "exact"
        else:
            fro, att, label = sens.ones_vjp(model, params, xs, ys, latent=latent), None, "ones-vjp (different quantity)"
        for l, members in layers.items():
            have = [m for m in members if m in fro]
            if not have:
                continue
            if kind == "ones-vjp":
                v = torch.stack([fro[m] for m in have]).pow(2).sum(0)  # combine per-tensor norms in quadrature
            else:
                v = sum(fro[m] for m in have)
            npar = sum(params[m].numel() for m in have)
            sm = sens.summarize({l: v}, {l: npar})[l]
            rec = out.setdefault(l, {})
            rec[f"{prefix}fro"] = sm["value"]
            rec[f"{prefix}fro_se"] = sm["se"]
            rec[f"{prefix}fro_per_param"] = sm["per_param"]
            if att is not None:
                a = sum(att[m] for m in have)
                rec[f"{prefix}attr_per_param"] = math.sqrt(max(float(a.double().mean()), 0.0)) / math.sqrt(npar)
            rec["sens_estimator"] = label
            rec["n_sens"] = n

    fill("sens_", None)
    if cfg.get("latent_layer"):
        fill("sens_latent_", cfg["latent_layer"])
    return out
