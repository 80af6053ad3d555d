"""Re-ID ranking metrics on the device, vectorised over queries (no per-query loop).

Protocol (VeRi-776 = Market-1501): for query q, gallery items with id = id_q and camera = cam_q are junk, and so
are id -1 distractors; the rest is ranked by ascending distance, stably (ties by gallery index).  Junk entries are
set to +inf and zeroed in the match matrix, so they sort last and leave the ranks of the valid items unchanged.
Queries with no valid match are excluded from every mean and counted (`num_valid_queries`), never averaged as
zeros (the habit of `evaluate_gpu.py` in layumi/Person_reID_baseline_pytorch, which we do not copy).

From the sorted match matrix m (rows: queries, columns: ranks r = 1..G) and its cumulative sum c (evaluated at
the hits only):
- CMC@k = mean over valid queries of [c_k > 0];
- AP_standard = (1/n_q) sum_{r: m_r = 1} c_r / r (torchreid `eval_market1501`, fast-reid);
- AP_official = (1/n_q) sum_i (p_i^- + i / r_i) / 2 with p_i^- = (i-1)/(r_i-1), or 1 when r_i = 1: the trapezoid
  rule of the Market-1501/VeRi Matlab `compute_AP.m`;
- mINP = mean_q n_q / r_{n_q} (Ye et al., "Deep Learning for Person Re-identification", TPAMI 2021; fast-reid).
The distance is d = 1 - cos of L2-normalised embeddings (same order as squared Euclidean distance).
Queries are processed in blocks sized to the free memory of the device.

`evaluate_run` is the `evaluate` verb: features files or a data set embedded by a model, the metrics, and the
optional per-query records, channel-weight explanation and AI City submission.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from wisecli.cli.errors import InputError
from wisecli.runtime.device import as_device

from .distance import distance_blocks


def rank_block(dist: torch.Tensor, q_ids: torch.Tensor, g_ids: torch.Tensor, q_cams: torch.Tensor,
               g_cams: torch.Tensor, max_rank: int) -> dict[str, torch.Tensor]:
    """Per-query metrics for one block of queries: dist is B x G; returns tensors of length B.

    After the stable sort only the hits are touched: their (row, rank) pairs come from `nonzero` (row-major, so
    ranks ascend within a row) and the hit's index i within its row is c_r at that rank."""
    B, G = dist.shape
    junk = ((g_ids[None, :] == q_ids[:, None]) & (g_cams[None, :] == q_cams[:, None])) | (g_ids[None, :] == -1)
    d = dist.float().masked_fill(junk, math.inf)
    order = torch.sort(d, dim=1, stable=True).indices
    match = (g_ids[order] == q_ids[:, None]) & ~torch.gather(junk, 1, order)
    rows, cols = match.nonzero(as_tuple=True)
    r = (cols + 1).double()
    n = torch.bincount(rows, minlength=B)
    starts = torch.cumsum(n, 0) - n
    i = (torch.arange(len(rows), device=dist.device) - starts[rows] + 1).double()
    zeros = torch.zeros(B, dtype=torch.float64, device=dist.device)
    safe_n = n.clamp_min(1).double()
    ap_std = zeros.index_add(0, rows, i / r) / safe_n
    p_prev = torch.where(r > 1, (i - 1) / (r - 1).clamp_min(1), torch.ones_like(r))
    ap_off = zeros.index_add(0, rows, 0.5 * (p_prev + i / r)) / safe_n
    valid = n > 0
    first = torch.where(valid, r[starts.clamp_max(max(len(r) - 1, 0))] if len(r) else zeros, zeros).long()
    last = torch.where(valid, r[(starts + n - 1).clamp(0, max(len(r) - 1, 0))] if len(r) else zeros, zeros)
    inp = n.double() / last.clamp_min(1)
    hits = valid[:, None] & (first[:, None] <= torch.arange(1, max_rank + 1, device=dist.device)[None, :])
    return {"valid": valid, "ap_standard": ap_std, "ap_official": ap_off, "inp": inp, "hits": hits,
            "num_matches": n, "first_hit": first}


def evaluate_ranking(q_ids, g_ids, q_cams, g_cams, *, qf: torch.Tensor | None = None,
                     gf: torch.Tensor | None = None, distmat: torch.Tensor | None = None, max_rank: int = 50,
                     device: torch.device | str = "cpu", fast: bool = False, block: int | None = None,
                     on_query=None) -> dict:
    """CMC@1..max_rank, mAP (standard and official), mINP over valid queries.

    Give either features (`qf`, `gf`; cosine distance, computed block by block on `device`) or a Q x G distance
    matrix (`distmat`, e.g. after re-ranking).  `on_query(index, record)` receives each query's record as soon as
    its block is done (streams `--per-query`). The curve stops at the gallery size: every rank past it equals the
    last (a `--max-rank` of 2^31 must not allocate 2^31 counters).
    """
    device = as_device(device)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.long, device=device)  # noqa: E731
    q_ids, g_ids, q_cams, g_cams = as_t(q_ids), as_t(g_ids), as_t(q_cams), as_t(g_cams)
    Q = len(q_ids)
    max_rank = max(1, min(int(max_rank), len(g_ids)))
    hits_sum = torch.zeros(max_rank, dtype=torch.float64, device=device)
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # ap_std, ap_off, inp, valid
    for s, dist in distance_blocks(qf, gf, distmat=distmat, device=device, fast=fast, block=block):
        r = rank_block(dist, q_ids[s:s + len(dist)], g_ids, q_cams[s:s + len(dist)], g_cams, max_rank)
        v = r["valid"]
        hits_sum += (r["hits"] & v[:, None]).sum(0)
        sums += torch.stack([(r["ap_standard"] * v).sum(), (r["ap_official"] * v).sum(),
                             (r["inp"] * v).sum(), v.sum().double()])
        if on_query is not None:
            _emit(on_query, s, r)
    ap_s, ap_o, inp, nv = sums.tolist()
    nv = int(nv)
    denom = max(nv, 1)
    cmc = (hits_sum / denom).tolist()
    return {"mAP_standard": ap_s / denom, "mAP_official": ap_o / denom, "mINP": inp / denom,
            "cmc": cmc, "num_queries": Q, "num_valid_queries": nv}


def _emit(on_query, start: int, r: dict) -> None:
    """Per-query records of one block, in query order."""
    cols = {k: r[k].tolist() for k in ("valid", "ap_standard", "ap_official", "inp", "num_matches", "first_hit")}
    for i in range(len(cols["valid"])):
        valid = cols["valid"][i]
        on_query(start + i, {"valid": valid, "num_matches": cols["num_matches"][i],
                             "first_hit": cols["first_hit"][i] if valid else None,
                             "ap_standard": cols["ap_standard"][i] if valid else None,
                             "ap_official": cols["ap_official"][i] if valid else None,
                             "inp": cols["inp"][i] if valid else None})


def summarise(raw: dict, *, ap_mode: str = "standard", ranks=(1, 5, 10)) -> dict:
    """The `evaluate` document: headline mAP by `ap_mode`, both modes, R1/R5, CMC at `ranks`, counts."""
    cmc = raw["cmc"]
    out = {"mAP": raw[f"mAP_{ap_mode}"], "ap_mode": ap_mode, "mAP_standard": raw["mAP_standard"],
           "mAP_official": raw["mAP_official"], "R1": cmc[0], "R5": cmc[4] if len(cmc) > 4 else cmc[-1],
           "cmc": {str(k): cmc[k - 1] for k in ranks if k <= len(cmc)}, "mINP": raw["mINP"],
           "num_queries": raw["num_queries"], "num_valid_queries": raw["num_valid_queries"]}
    return out


def check_rerank(k1: int, k2: int, lam: float) -> None:
    if k1 < 1:
        raise InputError(f"--k1 must be >= 1, got {k1}", hint="the default is 20")
    if k2 < 1 or k2 > k1:
        raise InputError(f"--k2 must be in 1..k1 ({k1}), got {k2}", hint="the default is 6")
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"--lambda must be in [0, 1], got {lam}", hint="the default is 0.3")


def _valid_query_count(q_ids, q_cams, g_ids, g_cams) -> int:
    q_ids, q_cams = torch.as_tensor(q_ids), torch.as_tensor(q_cams)
    g_ids, g_cams = torch.as_tensor(g_ids), torch.as_tensor(g_cams)
    count = 0
    for s in range(0, len(q_ids), 1024):
        qi, qc = q_ids[s:s + 1024, None], q_cams[s:s + 1024, None]
        count += int(((g_ids[None] == qi) & (g_cams[None] != qc) & (qi >= 0)).any(1).sum())
    return count


def evaluate_run(*, query_files: list[Path] | None = None, gallery_files: list[Path] | None = None,
             weights: Path | None = None, data: Path | None = None, layout: str = "veri", ap_mode: str = "standard",
             rerank: bool = False, k1: int = 20, k2: int = 6, lam: float = 0.3, max_rank: int = 50,
             per_query: Path | None = None, explain: Path | None = None, check_lists: bool = False,
             allow_partial: bool = False, val_ids: float = 0.1, seed: int = 0, viewpoints: Path | None = None,
             viewpoint_format: str = "span", aic_submit: Path | None = None, overwrite: bool = False,
             device="auto", amp: bool = True, fast: bool = False, batch_size: int = 256, sink=None) -> dict:
    """Ranking metrics of query against gallery, from features files or by embedding a data set.

    With `aic_submit`, also the AI City 2020 Track 2 submission file (`submit.py`): from `--weights` and an AIC
    folder, image_query/ and image_test/ are embedded (model loaded once) and ranked; from features files, the
    query and gallery files are.  The metrics are still computed where there is ground truth (an AIC folder
    with train_label.xml: the held-out id split, as without `aic_submit`; features files: ids with a valid
    query); otherwise they are skipped, said on stderr, and the document holds `metrics_skipped`."""
    from wisecli.runtime.device import as_device, device_name, sync
    from wisecli.runtime.io.atomic import open_atomic

    from .rerank import re_ranking

    if ap_mode not in ("standard", "official"):
        raise InputError(f"unknown --ap-mode {ap_mode!r}", hint="standard or official")
    if rerank:
        check_rerank(k1, k2, lam)
    if max_rank < 1:
        raise InputError("--max-rank must be >= 1", hint="the default is 50")
    if aic_submit is not None:
        from .submit import check_output

        check_output(aic_submit, overwrite)
    spec, device = device, as_device(device)
    seconds = {}
    extra = {}
    has_gt = True
    sub = None  # (query features, gallery features, gallery image numbers, query row order or None)
    if weights is not None:
        if data is None:
            from wisecli.runtime.checkpoints import load_checkpoint

            load_checkpoint(weights, method="reid")  # a bad checkpoint is named first
            raise InputError("evaluate --weights needs DATA", hint="wise reid evaluate --weights best.pt VeRi --layout veri")
        from .data import good_junk_sets, load_layout, read_veri_lists
        from .predict import announce_device, embed_paths, load_model

        aic = None
        if aic_submit is not None:
            from .data import load_aic_test
            from .submit import check_gallery_size

            if layout != "aic":
                raise InputError("--aic-submit needs --layout aic",
                                 hint="or give --query/--gallery features of image_query/ and image_test/")
            aic = load_aic_test(data, allow_partial=allow_partial)
            check_gallery_size(len(aic["gallery"][0]))
            has_gt = (Path(data) / "train_label.xml").is_file()
            if not has_gt:
                for flag, given in (("--per-query", per_query), ("--explain", explain), ("--viewpoints", viewpoints)):
                    if given is not None:
                        raise InputError(f"{flag} needs the held-out split, but {data} has no train_label.xml",
                                         hint=f"drop {flag}, or add train_label.xml and image_train/")
                _say(sink, f"{data} has no train_label.xml: writing the submission without metrics")
        elif layout == "aic" and not (Path(data) / "train_label.xml").is_file():
            raise InputError("AIC query/test identities are unpublished: no ground truth to evaluate against",
                             hint="evaluate on a held-out split of the training ids with --val-ids 0.1")
        if has_gt:
            splits = load_layout(data, layout, allow_partial=allow_partial, val_ids=val_ids, seed=seed)
            q, g = splits["query"], splits["gallery"]
        if check_lists:
            if layout != "veri":
                raise InputError("--check-lists needs --layout veri", hint="gt_image.txt/jk_image.txt are VeRi files")
            gt, jk = read_veri_lists(data)
            good, junk = good_junk_sets(q, g)
            if len(gt) != len(q):
                raise InputError(f"gt_image.txt has {len(gt)} lines for {len(q)} queries", hint="check the VeRi lists")
            extra["check_lists"] = {"queries": len(q), "good_mismatches": sum(a != b for a, b in zip(good, gt)),
                                    "junk_mismatches": sum(a != b for a, b in zip(junk, jk))}
        model, mc, _ = load_model(weights, device)
        announce_device(sink, spec, device)
        vp_labels = None
        if viewpoints is not None:
            if not mc["use_vcam"]:
                raise InputError("--viewpoints needs a VCAM model", hint="a --no-vcam model has no viewpoint head")
            from .data import read_viewpoints

            vp_labels = read_viewpoints(viewpoints, viewpoint_format, mc["viewpoint_classes"])
        if aic is not None:
            t0 = time.perf_counter()
            tq, _, _, _, terr = embed_paths(model, aic["query"][0], mc["input_size"], device, batch=batch_size, amp=amp)
            tg, _, _, _, gerr = embed_paths(model, aic["gallery"][0], mc["input_size"], device, batch=batch_size, amp=amp)
            seconds["embed_submit"] = time.perf_counter() - t0
            if terr or gerr:
                first = (terr or gerr)[0][1]
                raise InputError(f"{len(terr) + len(gerr)} AIC query/test images are unreadable, e.g. {first}",
                                 hint="a submission needs every listed image; fix or re-extract them")
            sub = (tq, tg, aic["gallery"][1], None)
        if has_gt:
            t0 = time.perf_counter()
            qf, qp, qg, qok, qerr = embed_paths(model, q.paths, mc["input_size"], device, batch=batch_size, amp=amp,
                                                gates=explain is not None)
            gf, gp, _, gok, gerr = embed_paths(model, g.paths, mc["input_size"], device, batch=batch_size, amp=amp)
            seconds["embed"] = time.perf_counter() - t0
            if qerr or gerr:
                raise InputError(f"{len(qerr) + len(gerr)} query/gallery images are unreadable",
                                 hint="fix or remove them (predict records such items and goes on)")
            q_ids, q_cams, g_ids, g_cams = q.ids, q.cams, g.ids, g.cams
            if vp_labels is not None:
                extra["viewpoint"] = viewpoint_accuracy(list(q.paths) + list(g.paths), torch.cat([qp, gp]), vp_labels)
            if explain is not None:
                if qg is None or not qg:
                    raise InputError("--explain needs a VCAM model", hint="this checkpoint was trained with --no-vcam")
                from .plots import write_explain

                extra["explain"] = write_explain(explain, qg, qp)
    else:
        if not query_files or not gallery_files:
            raise InputError("give --query and --gallery features, or --weights with DATA",
                             hint="wise reid evaluate --query q.npz --gallery g.npz")
        if explain is not None:
            raise InputError("--explain needs --weights and DATA", hint="the channel weights come from the model")
        from .predict import announce_device, load_features

        qd, gd = load_features(query_files, "query"), load_features(gallery_files, "gallery")
        announce_device(sink, spec, device)
        if qd["features"].shape[1] != gd["features"].shape[1]:
            raise InputError(f"query features have {qd['features'].shape[1]} dimensions, gallery "
                             f"{gd['features'].shape[1]}", hint="embed both with the same model")
        if qd["normalised"] != gd["normalised"]:
            raise InputError("query and gallery features differ in normalisation",
                             hint="embed both with 'wise reid predict' of one model")
        qf, gf = torch.from_numpy(qd["features"]), torch.from_numpy(gd["features"])
        q_ids, q_cams, g_ids, g_cams = qd["ids"], qd["cameras"], gd["ids"], gd["cameras"]
        if aic_submit is not None:
            from .data import aic_image_ids
            from .submit import check_gallery_size

            q_numbers = aic_image_ids([Path(str(x)).name for x in qd["paths"]], "the query features' paths")
            g_numbers = aic_image_ids([Path(str(x)).name for x in gd["paths"]], "the gallery features' paths")
            check_gallery_size(len(g_numbers))
            sub = (qf, gf, g_numbers, torch.from_numpy(np.argsort(q_numbers, kind="stable")))
    if has_gt and _valid_query_count(q_ids, q_cams, g_ids, g_cams) == 0:
        if sub is None:
            raise InputError("no valid query: no query has a gallery match of its id on another camera",
                             hint="check ids and cameras (predict --parse-names veri), or the query/gallery pairing")
        if per_query is not None:
            raise InputError("--per-query needs ground truth, and no query has a match of its id on another camera",
                             hint="drop --per-query (the test ids of AIC are unpublished)")
        has_gt = False
        _say(sink, "no query has a match of its id on another camera: writing the submission without metrics")
    metric_dist = None
    if has_gt:
        with contextlib.ExitStack() as stack:  # per-query records streamed as computed (spec §8), renamed at the end
            fh = stack.enter_context(open_atomic(per_query)) if per_query else None

            def on_query(i, r):
                fh.write(json.dumps({"query": i, **r}) + "\n")
                fh.flush()

            t0 = time.perf_counter()
            if rerank:
                metric_dist = re_ranking(torch.nn.functional.normalize(qf.to(device).float(), dim=1),
                                         torch.nn.functional.normalize(gf.to(device).float(), dim=1), k1, k2, lam,
                                         fast=fast)
                raw = evaluate_ranking(q_ids, g_ids, q_cams, g_cams, distmat=metric_dist, max_rank=max_rank,
                                       device=device, on_query=on_query if fh else None)
            else:
                raw = evaluate_ranking(q_ids, g_ids, q_cams, g_cams, qf=qf, gf=gf, max_rank=max_rank, device=device,
                                       fast=fast, on_query=on_query if fh else None)
            sync(device)
            seconds["rank"] = time.perf_counter() - t0
        doc = summarise(raw, ap_mode=ap_mode)
    else:
        doc = {"metrics_skipped": "no ground truth (AIC query/test identities are unpublished)"}
    if sub is not None:
        from .submit import TOP, rank_top, write_submission

        sq, sg, numbers, order = sub
        t0 = time.perf_counter()
        if rerank:
            if metric_dist is not None and weights is None:  # features files: the metrics' queries are these
                dist = metric_dist
            else:
                dist = re_ranking(torch.nn.functional.normalize(sq.to(device).float(), dim=1),
                                  torch.nn.functional.normalize(sg.to(device).float(), dim=1), k1, k2, lam, fast=fast)
            top = rank_top(None, None, TOP, device, dist=dist if order is None else dist[order.to(dist.device)])
        else:
            top = rank_top(sq if order is None else sq[order], sg, TOP, device, fast=fast)
        sync(device)
        seconds["rank_submit"] = time.perf_counter() - t0
        doc["aic_submit"] = {**write_submission(aic_submit, top, numbers),
                             "query_order": "name_query.txt" if order is None else "ascending image number"}
    doc.update({"rerank": {"k1": k1, "k2": k2, "lambda": lam} if rerank else None, "distance": "cosine",
                "seconds": seconds, "device": device_name(device), **extra})
    return doc


def _say(sink, message: str) -> None:
    if sink is not None:
        sink.info(message)


def viewpoint_accuracy(paths: list[Path], probs: torch.Tensor, labels: dict[str, int]) -> dict:
    """The viewpoint head's accuracy on the images that have a label (spec §5 side metric)."""
    idx = [i for i, p in enumerate(paths) if p.name in labels]
    if not idx:
        raise InputError("no evaluated image has a viewpoint label", hint="check --viewpoints against the data")
    truth = torch.tensor([labels[paths[i].name] for i in idx])
    pred = probs[idx].argmax(1)
    return {"accuracy": float((pred == truth).float().mean()), "labelled_images": len(idx)}
