"""`wise reid`: vehicle re-identification with viewpoint-aware channel-wise attention (VCAM).

Thin Typer layer: each verb parses, makes one call into `wisecli.engines.reid.api` (imported inside the verb,
so `wise --help` stays fast) and hands the result to the sink. Defaults live in `api.DEFAULTS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.common import MethodApp
from wisecli.cli.output import Sink, info_rows

app = MethodApp("reid", help="Vehicle re-ID with viewpoint-aware channel-wise attention (VCAM).",
                rich_markup_mode="rich")

_REQ = "Re-ranking (k-reciprocal, Zhong et al. 2017)"
K1 = Annotated[Optional[int], typer.Option("--k1", callback=o.at_least_one, help="k1 of k-reciprocal re-ranking.",
                                           rich_help_panel=_REQ)]
K2 = Annotated[Optional[int], typer.Option("--k2", callback=o.at_least_one, help="k2 (local query expansion), 1..k1.",
                                           rich_help_panel=_REQ)]
Lam = Annotated[Optional[float], typer.Option("--lambda", callback=o.not_negative,
                                              help="Weight of the original distance, in [0, 1].", rich_help_panel=_REQ)]
Rerank = Annotated[Optional[bool], typer.Option("--rerank", help="Apply k-reciprocal re-ranking.", rich_help_panel=_REQ)]
Layout = Annotated[Optional[Literal["veri", "aic", "manifest"]], typer.Option("--layout", help="Data set layout.")]
VpFormat = Annotated[Optional[Literal["span", "keypoint", "csv"]],
                     typer.Option("--viewpoint-format", help="Viewpoint label format.")]
AllowPartial = Annotated[Optional[bool], typer.Option("--allow-partial", help="Accept list/folder count mismatches.")]
ValIds = Annotated[Optional[float], typer.Option("--val-ids", callback=o.positive,
                                                 help="AIC: fraction of ids held out for evaluation, in (0, 1).")]
Images = Annotated[list[Path], typer.Argument(help="Images, folders, quoted globs, @list.txt or @- (list on stdin).")]


def _opt(name: str, help: str, callback=None, **kw):
    return typer.Option(name, help=help, callback=callback, **kw)


# train's options (aliases keep the verb short)
Data = Annotated[Path, typer.Argument(help="Data set folder (VeRi/AIC) or manifest CSV.")]
Viewpoints = Annotated[Optional[Path], _opt("--viewpoints", "Viewpoint label file.")]
VpClasses = Annotated[Optional[int], _opt("--viewpoint-classes", "5 (SPAN) or 8 (keypoints).", o.at_least_one)]
Pretrained = Annotated[Optional[Path], _opt(
    "--pretrained", "ImageNet ResNet state dict (torchvision names) or a reid checkpoint.")]
Arch = Annotated[Optional[Literal["resnet50", "resnet34", "resnet18"]], _opt("--arch", "Backbone.")]
Width = Annotated[Optional[float], _opt("--width", "Channel width factor (1.0: the ImageNet layout), up to 4.",
                                        o.positive)]
VcamStages = Annotated[Optional[str], _opt("--vcam-stages", "Stages with a VCAM unit, e.g. 1,2,3,4.")]
NoVcam = Annotated[Optional[bool], _opt("--no-vcam", "The BoT baseline (no viewpoint head, no gates).")]
VcamGate = Annotated[Optional[Literal["scaled", "sigmoid"]], _opt("--vcam-gate", "scaled (2 sigmoid, starts at 1) or sigmoid.")]
VcamHidden = Annotated[Optional[int], _opt("--vcam-hidden", "Hidden width of a VCAM MLP (0: linear).", o.not_negative)]
VpWeight = Annotated[Optional[float], _opt("--vp-weight", "Weight of the viewpoint loss.", o.not_negative)]
Detach = Annotated[Optional[bool], _opt("--detach-viewpoint/--no-detach-viewpoint",
                                        "Stop the re-ID gradient into the viewpoint head.")]
InputSize = Annotated[Optional[int], _opt("--input-size", "Square input size.", o.at_least_one)]
P = Annotated[Optional[int], _opt("--p", "Identities per batch (>= 2).", o.at_least_one)]
K = Annotated[Optional[int], _opt("--k", "Images per identity (>= 2).", o.at_least_one)]
EvalEvery = Annotated[Optional[int], _opt("--eval-every", "Evaluate every N epochs (0: first and last only).",
                                          o.not_negative)]
Embed = Annotated[Optional[Literal["post-bn", "pre-bn"]], _opt("--embed", "Test embedding.")]


@app.command()
def train(
    data: Data, out_dir: o.OutDir = None, layout: Layout = None, viewpoints: Viewpoints = None,
    viewpoint_format: VpFormat = None, viewpoint_classes: VpClasses = None, pretrained: Pretrained = None,
    arch: Arch = None, width: Width = None, vcam_stages: VcamStages = None, no_vcam: NoVcam = None,
    vcam_gate: VcamGate = None, vcam_hidden: VcamHidden = None, vp_weight: VpWeight = None,
    detach_viewpoint: Detach = None, input_size: InputSize = None, p: P = None, k: K = None, epochs: o.Epochs = None,
    lr: o.Lr = None, eval_every: EvalEvery = None, embed: Embed = None, allow_partial: AllowPartial = None,
    val_ids: ValIds = None, resume: o.Resume = False, overwrite: o.Overwrite = False, device: o.Device = None,
    amp: o.Amp = None, seed: o.Seed = None, json: o.Json = False, no_progress: o.NoProgress = False,
) -> None:
    """Train VCAM (or the --no-vcam baseline) into a run folder (-o RUN)."""
    from wisecli.engines.reid import api

    sink = Sink(json=json)
    summary = api.train(
        data, out_dir, resume=resume, overwrite=overwrite, progress=not no_progress, sink=sink,
        layout=layout, viewpoints=viewpoints, viewpoint_format=viewpoint_format, viewpoint_classes=viewpoint_classes,
        pretrained=pretrained, arch=arch, width=width, vcam_stages=vcam_stages, no_vcam=no_vcam,
        detach_viewpoint=detach_viewpoint, vcam_gate=vcam_gate, vcam_hidden=vcam_hidden, vp_weight=vp_weight,
        input_size=input_size, p=p, k=k, epochs=epochs, lr=lr, eval_every=eval_every, embed=embed,
        allow_partial=allow_partial, val_ids=val_ids, device=device, amp=amp, seed=seed)
    sink.result(summary, rows=[{k: v for k, v in summary.items() if k != "last"}], title="wise reid train")


@app.command()
def predict(
    inputs: Images,
    weights: o.Weights = None,
    output: o.OutFile = None,
    half: Annotated[Optional[bool], _opt("--half", "Store features as float16.")] = None,
    parse_names: Annotated[Optional[Literal["veri"]], _opt(
        "--parse-names", "veri: ids and cameras from VeRi names.")] = None,
    batch_size: o.BatchSize = None,
    pattern: o.Pattern = None, shard: o.Shard = None, overwrite: o.Overwrite = False,
    skip_existing: o.SkipExisting = False,
    device: o.Device = None, amp: o.Amp = None, json: o.Json = False,
) -> None:
    """Embed images into one features file (-o feats.npz), model loaded once; exit 3 if some images failed."""
    import sys

    from wisecli.engines.reid import api

    sink = Sink(json=json)
    doc = api.predict(inputs, weights, output, half=half, parse_names=parse_names, pattern=pattern, shard=shard,
                      overwrite=overwrite, skip_existing=skip_existing, batch_size=batch_size, device=device, amp=amp,
                      sink=sink, argv=sys.argv)
    sink.result(doc, rows=[{k: v for k, v in doc.items() if k != "records"}], title="wise reid predict")
    sink.finish(doc["records"], what="images")


# evaluate's options
DataOpt = Annotated[Optional[Path], typer.Argument(help="Data set to embed (with --weights).")]
QueryFeats = Annotated[Optional[list[Path]], _opt("--query", "Query features .npz (repeat for parts).")]
GalleryFeats = Annotated[Optional[list[Path]], _opt("--gallery", "Gallery features .npz (repeat for parts).")]
ApMode = Annotated[Optional[Literal["standard", "official"]], _opt("--ap-mode", "Headline AP (both are reported).")]
MaxRank = Annotated[Optional[int], _opt("--max-rank", "CMC up to this rank.", o.at_least_one)]
PerQuery = Annotated[Optional[Path], _opt("--per-query", "Per-query records (JSONL), streamed.")]
Explain = Annotated[Optional[Path], _opt("--explain", "Folder for VCAM channel weights per viewpoint (CSV + PNG).")]
VpLabels = Annotated[Optional[Path], _opt("--viewpoints", "Viewpoint labels: report the head's accuracy.")]
CheckLists = Annotated[Optional[bool], _opt("--check-lists",
                                            "Compare our good/junk sets with gt_image.txt/jk_image.txt.")]
AicSubmit = Annotated[Optional[Path], _opt(
    "--aic-submit", "AIC 2020 Track 2: write the 100 best test image numbers per query (track2.txt).")]
Fast = Annotated[Optional[bool], _opt("--fast", "TF32 GEMM on CUDA.")]


@app.command()
def evaluate(
    data: DataOpt = None, weights: o.Weights = None, query: QueryFeats = None, gallery: GalleryFeats = None,
    layout: Layout = None, ap_mode: ApMode = None, rerank: Rerank = None, k1: K1 = None, k2: K2 = None,
    lam: Lam = None, max_rank: MaxRank = None, per_query: PerQuery = None, explain: Explain = None,
    viewpoints: VpLabels = None, viewpoint_format: VpFormat = None, check_lists: CheckLists = None,
    allow_partial: AllowPartial = None, val_ids: ValIds = None, aic_submit: AicSubmit = None,
    overwrite: o.Overwrite = False, fast: Fast = None, batch_size: o.BatchSize = None, device: o.Device = None,
    amp: o.Amp = None, seed: o.Seed = None, json: o.Json = False,
) -> None:
    """mAP (standard and official AP), CMC and mINP of query against gallery; --aic-submit also writes an AI City
    Track 2 submission (DATA --layout aic embeds image_query/ and image_test/; or from --query/--gallery features)."""
    from wisecli.engines.reid import api

    sink = Sink(json=json)
    doc = api.evaluate(data, weights=weights, query=query, gallery=gallery, layout=layout, ap_mode=ap_mode,
                       rerank=rerank, k1=k1, k2=k2, lam=lam, max_rank=max_rank, per_query=per_query, explain=explain,
                       viewpoints=viewpoints, viewpoint_format=viewpoint_format, check_lists=check_lists,
                       allow_partial=allow_partial, val_ids=val_ids, aic_submit=aic_submit, overwrite=overwrite,
                       fast=fast, batch_size=batch_size, device=device, amp=amp, seed=seed, sink=sink)
    keys = ("mAP", "ap_mode", "mAP_standard", "mAP_official", "R1", "R5", "mINP", "num_queries", "num_valid_queries")
    row = {k: doc[k] for k in keys} if "mAP" in doc else {"metrics": "skipped (no ground truth)"}
    if "aic_submit" in doc:
        row.update({"submission": doc["aic_submit"]["file"], "lines": doc["aic_submit"]["queries"]})
    sink.result(doc, rows=[row], title="wise reid evaluate")


@app.command("query")
def query_cmd(
    queries: Annotated[list[Path], typer.Argument(help="Query images (files, folders, globs, @list.txt).")],
    gallery: Annotated[Optional[list[Path]], _opt(
        "--gallery", "Gallery features .npz (repeat for parts) or one image folder.")] = None,
    weights: o.Weights = None,
    top: Annotated[Optional[int], _opt("--top", "Matches per query.", o.at_least_one)] = None,
    rerank: Rerank = None, k1: K1 = None, k2: K2 = None, lam: Lam = None,
    exclude_same_camera: Annotated[Optional[bool], _opt(
        "--exclude-same-camera", "Drop gallery items of the query's camera.")] = None,
    camera: Annotated[Optional[int], _opt("--camera", "Camera of the queries (else from VeRi names).",
                                          o.not_negative)] = None,
    plot: Annotated[Optional[Path], _opt("--plot", "Write a rank-list montage PNG.")] = None,
    gallery_cache: Annotated[Optional[Path], _opt(
        "--gallery-cache", "Cache for an embedded gallery folder (.npz).")] = None,
    batch_size: o.BatchSize = None,
    device: o.Device = None, amp: o.Amp = None, json: o.Json = False,
) -> None:
    """Top gallery matches of query images (JSON: query, results[rank, path, distance, id, camera])."""
    from wisecli.engines.reid import api

    sink = Sink(json=json)
    out = api.query(queries, gallery=gallery, weights=weights, top=top, rerank=rerank, k1=k1, k2=k2, lam=lam,
                    exclude_same_camera=exclude_same_camera, camera=camera, plot=plot, gallery_cache=gallery_cache,
                    batch_size=batch_size, device=device, amp=amp, sink=sink)
    rows = [{"query": Path(r["query"]).name, "rank": m["rank"], "match": Path(m["path"]).name,
             "distance": round(m["distance"], 4), "id": m["id"], "camera": m["camera"]}
            for r in out for m in r["results"]]
    sink.result(out, rows=rows, title="wise reid query")


@app.command()
def demo(quick: o.Quick = False, device: o.Device = None, json: o.Json = False) -> None:
    """Synthetic vehicles: train VCAM and its --no-vcam baseline, compare them (SYNTHETIC, NOT A BENCHMARK); --quick evaluates the shipped pair."""
    from wisecli.engines.reid import api

    sink = Sink(json=json)
    result = api.demo(quick=quick, device=device, sink=sink)
    sink.demo(result, title=result.details["title"])


@app.command()
def info(json: o.Json = False) -> None:
    """Layouts, viewpoint formats, defaults, device, optional benchmark extras."""
    from wisecli.engines.reid import api

    doc = api.info()
    rows = info_rows(doc, {"layouts": "layout", "defaults": "default"})
    w = doc.get("demo_weights")
    rows.append({"item": "demo weights", "value": f"{w['file']} ({w['bytes'] / 2**20:.1f} MB): {w['trained_on']}"
                 if w else "missing (the quick demo trains them from the recipe)"})
    Sink(json=json).result(doc, rows=rows, title="wise reid info")


@app.command()
def benchmark(quick: o.Quick = False, device: o.Device = None, json: o.Json = False) -> None:
    """Race our evaluation, re-ranking and (CUDA) embedding against the peers (one process, one device)."""
    from wisecli.engines.reid import api

    Sink(json=json).benchmark(api.benchmark(device=device, quick=quick), title="wise reid benchmark")
