"""`wise reid`: vehicle re-identification with viewpoint-aware channel-wise attention (VCAM).

Thin Typer layer: parses and checks options, then makes one call into `wisecli.engines.reid.api`
(imported inside each command, so `wise --help` stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wisecli.cli import options as o
from wisecli.cli.errors import InputError, PartialFailure
from wisecli.cli.output import Sink

app = typer.Typer(name="reid", help="Vehicle re-ID with viewpoint-aware channel-wise attention (VCAM).",
                  no_args_is_help=True, rich_markup_mode="rich")

_REQ = "Re-ranking (k-reciprocal, Zhong et al. 2017)"
K1 = Annotated[int, typer.Option("--k1", help="k1 of k-reciprocal re-ranking.", rich_help_panel=_REQ)]
K2 = Annotated[int, typer.Option("--k2", help="k2 (local query expansion), 1..k1.", rich_help_panel=_REQ)]
Lam = Annotated[float, typer.Option("--lambda", help="Weight of the original distance, in [0, 1].", rich_help_panel=_REQ)]
Rerank = Annotated[bool, typer.Option("--rerank", help="Apply k-reciprocal re-ranking.", rich_help_panel=_REQ)]
Weights = Annotated[Optional[Path], typer.Option("--weights", help="Checkpoint (or run folder) written by 'train'.")]
Batch = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]


def _out_dir_of(path: Path) -> None:
    if not path.parent.exists():
        raise InputError(f"output folder does not exist: {path.parent}", hint="create it first")


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Data set folder (VeRi/AIC) or manifest CSV.")],
    out_dir: o.OutDir = None,
    layout: Annotated[Optional[str], typer.Option("--layout", help="veri | aic | manifest.")] = None,
    viewpoints: Annotated[Optional[str], typer.Option("--viewpoints", help="Viewpoint label file.")] = None,
    viewpoint_format: Annotated[Optional[str], typer.Option("--viewpoint-format", help="span | keypoint | csv.")] = None,
    viewpoint_classes: Annotated[Optional[int], typer.Option("--viewpoint-classes", help="5 (SPAN) or 8 (keypoints).")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="ImageNet ResNet state dict (torchvision names).")] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="resnet50 | resnet34 | resnet18.")] = None,
    width: Annotated[Optional[float], typer.Option("--width", help="Channel width factor (1.0: the ImageNet layout).")] = None,
    vcam_stages: Annotated[Optional[str], typer.Option("--vcam-stages", help="Stages with a VCAM unit, e.g. 1,2,3,4.")] = None,
    no_vcam: Annotated[Optional[bool], typer.Option("--no-vcam", help="The BoT baseline (no viewpoint head, no gates).")] = None,
    vcam_gate: Annotated[Optional[str], typer.Option("--vcam-gate", help="scaled (2 sigmoid, starts at 1) | sigmoid.")] = None,
    vcam_hidden: Annotated[Optional[int], typer.Option("--vcam-hidden", help="Hidden width of a VCAM MLP (0: linear).")] = None,
    vp_weight: Annotated[Optional[float], typer.Option("--vp-weight", help="Weight of the viewpoint loss.")] = None,
    detach_viewpoint: Annotated[Optional[bool], typer.Option(
        "--detach-viewpoint/--no-detach-viewpoint", help="Stop the re-ID gradient into the viewpoint head.")] = None,
    input_size: Annotated[Optional[int], typer.Option("--input-size", help="Square input size.")] = None,
    p: Annotated[Optional[int], typer.Option("--p", help="Identities per batch.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Images per identity.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Training epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate.")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Evaluate every N epochs.")] = None,
    embed: Annotated[Optional[str], typer.Option("--embed", help="post-bn | pre-bn test embedding.")] = None,
    allow_partial: Annotated[Optional[bool], typer.Option("--allow-partial", help="Accept list/folder count mismatches.")] = None,
    val_ids: Annotated[Optional[float], typer.Option("--val-ids", help="AIC: fraction of ids held out for evaluation.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from checkpoints/last.pt.")] = False,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0, config: o.Config = None, set_: o.Set = None,
    json: o.Json = False, quiet: o.Quiet = False, verbose: o.Verbose = False, no_progress: o.NoProgress = False,
    debug: o.Debug = False,
) -> None:
    """Train VCAM (or the --no-vcam baseline) into a run folder (-o RUN)."""
    from wisecli.cli.config import resolve
    from wisecli.engines.reid import api

    sink = Sink(json=json, quiet=quiet, verbose=verbose)
    if out_dir is None:
        raise InputError("train needs a run folder", hint="wise reid train DATA -o RUN")
    if not data.exists():
        raise InputError(f"no such data: {data}", hint="give the VeRi-776/AIC folder or a manifest CSV")
    flags = {"layout": layout, "viewpoints": viewpoints, "viewpoint_format": viewpoint_format,
             "viewpoint_classes": viewpoint_classes, "pretrained": pretrained, "arch": arch, "width": width,
             "vcam_stages": vcam_stages, "no_vcam": no_vcam, "detach_viewpoint": detach_viewpoint, "vcam_gate": vcam_gate, "vcam_hidden": vcam_hidden, "vp_weight": vp_weight,
             "input_size": input_size, "p": p, "k": k, "epochs": epochs, "lr": lr, "eval_every": eval_every,
             "embed": embed, "allow_partial": allow_partial, "val_ids": val_ids}
    res = resolve(api.TRAIN_DEFAULTS, flags=flags, config_file=config, sets=set_)
    if (out_dir / "checkpoints" / "last.pt").exists() and not resume:
        raise InputError(f"{out_dir} already holds a run", hint="pass --resume to continue it, or choose another -o")
    summary = api.train(data, out_dir, cfg=dict(res.values), config_record=res.as_record(), device_spec=device,
                        amp=amp, seed=seed, resume=resume, progress=not no_progress, sink=sink)
    sink.result(summary, rows=[{k: v for k, v in summary.items() if k != "last"}], title="wise reid train")


@app.command()
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Images, folders, quoted globs, @list.txt or @-.")],
    weights: Weights = None,
    output: o.OutFile = None,
    half: Annotated[bool, typer.Option("--half", help="Store features as float16.")] = False,
    parse_names: Annotated[Optional[str], typer.Option("--parse-names", help="veri: ids and cameras from VeRi names.")] = None,
    batch_size: Batch = 256,
    pattern: o.Pattern = None, shard: o.Shard = None, overwrite: o.Overwrite = False,
    device: o.Device = "auto", amp: o.Amp = True, json: o.Json = False, quiet: o.Quiet = False,
    verbose: o.Verbose = False, debug: o.Debug = False,
) -> None:
    """Embed images into a features file (-o feats.npz), model loaded once."""
    import sys

    from wisecli.cli.inputs import apply_shard, expand_inputs, parse_shard
    from wisecli.runtime.io.atomic import refuse_existing

    sink = Sink(json=json, quiet=quiet, verbose=verbose)
    if weights is None:
        raise InputError("predict needs --weights", hint="a checkpoint written by 'wise reid train'")
    if output is None or not output.name.endswith(".npz"):
        raise InputError("predict needs -o FILE.npz", hint="e.g. -o gallery.npz")
    if parse_names not in (None, "veri"):
        raise InputError(f"unknown --parse-names {parse_names!r}", hint="only 'veri' is known")
    sh = parse_shard(shard)
    if sh is not None:
        output = output.with_name(f"{output.name[:-4]}.part-{sh[0]}-of-{sh[1]}.npz")
    _out_dir_of(output)
    refuse_existing(output, overwrite)
    paths = apply_shard(expand_inputs(inputs, pattern=pattern, extensions=(".jpg", ".jpeg", ".png", ".bmp")), sh)
    if not paths:
        raise InputError("this shard has no images", hint="use fewer shards")
    from wisecli.engines.reid import api

    summary = api.predict(paths, weights, output, half=half, parse_names=parse_names, device_spec=device, amp=amp,
                          batch=batch_size, sink=sink, argv=sys.argv)
    sink.result(summary, title="wise reid predict")
    if summary["errors"]:
        raise PartialFailure(f"{summary['errors']} image(s) could not be read; the features file holds the rest",
                             hint=f"see {summary['errors_file']}")


@app.command()
def evaluate(
    data: Annotated[Optional[Path], typer.Argument(help="Data set to embed (with --weights).")] = None,
    weights: Weights = None,
    query: Annotated[Optional[list[Path]], typer.Option("--query", help="Query features .npz (repeat for parts).")] = None,
    gallery: Annotated[Optional[list[Path]], typer.Option("--gallery", help="Gallery features .npz (repeat for parts).")] = None,
    layout: Annotated[str, typer.Option("--layout", help="veri | aic | manifest.")] = "veri",
    ap_mode: Annotated[str, typer.Option("--ap-mode", help="Headline AP: standard | official (both are reported).")] = "standard",
    rerank: Rerank = False, k1: K1 = 20, k2: K2 = 6, lam: Lam = 0.3,
    max_rank: Annotated[int, typer.Option("--max-rank", help="CMC up to this rank.")] = 50,
    per_query: Annotated[Optional[Path], typer.Option("--per-query", help="Per-query records (JSONL), streamed.")] = None,
    explain: Annotated[Optional[Path], typer.Option("--explain", help="Folder for VCAM channel weights per viewpoint (CSV + PNG).")] = None,
    viewpoints: Annotated[Optional[Path], typer.Option("--viewpoints", help="Viewpoint labels: report the head's accuracy.")] = None,
    viewpoint_format: Annotated[str, typer.Option("--viewpoint-format", help="span | keypoint | csv.")] = "span",
    check_lists: Annotated[bool, typer.Option("--check-lists", help="Compare our good/junk sets with gt_image.txt/jk_image.txt.")] = False,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Accept list/folder count mismatches.")] = False,
    val_ids: Annotated[float, typer.Option("--val-ids", help="AIC: fraction of ids held out.")] = 0.1,
    aic_submit: Annotated[Optional[Path], typer.Option(
        "--aic-submit", help="AIC 2020 Track 2: write the 100 best test image numbers per query (track2.txt).")] = None,
    overwrite: o.Overwrite = False,
    fast: Annotated[bool, typer.Option("--fast", help="TF32 GEMM on CUDA.")] = False,
    batch_size: Batch = 256,
    device: o.Device = "auto", amp: o.Amp = True, seed: o.Seed = 0, json: o.Json = False, quiet: o.Quiet = False,
    verbose: o.Verbose = False, debug: o.Debug = False,
) -> None:
    """mAP (standard and official AP), CMC and mINP of query against gallery; --aic-submit also writes an AI City
    Track 2 submission (DATA --layout aic embeds image_query/ and image_test/; or from --query/--gallery features)."""
    from wisecli.engines.reid import api

    sink = Sink(json=json, quiet=quiet, verbose=verbose)
    if weights is None and data is not None:
        raise InputError("DATA needs --weights", hint="or give --query q.npz --gallery g.npz")
    doc = api.evaluate(query_files=query, gallery_files=gallery, weights=weights, data=data, layout=layout,
                       ap_mode=ap_mode, rerank=rerank, k1=k1, k2=k2, lam=lam, max_rank=max_rank, per_query=per_query,
                       explain=explain, check_lists=check_lists, allow_partial=allow_partial, val_ids=val_ids,
                       seed=seed, viewpoints=viewpoints, viewpoint_format=viewpoint_format, aic_submit=aic_submit,
                       overwrite=overwrite, device_spec=device, amp=amp, fast=fast, batch=batch_size, sink=sink)
    if "mAP" in doc:
        row = {k: doc[k] for k in ("mAP", "ap_mode", "mAP_standard", "mAP_official", "R1", "R5", "mINP",
                                    "num_queries", "num_valid_queries")}
    else:
        row = {"metrics": "skipped (no ground truth)"}
    if "aic_submit" in doc:
        row.update({"submission": doc["aic_submit"]["file"], "lines": doc["aic_submit"]["queries"]})
    sink.result(doc, rows=[row], title="wise reid evaluate")


@app.command("query")
def query_cmd(
    queries: Annotated[list[str], typer.Argument(help="Query images (files, folders, globs, @list.txt).")],
    gallery: Annotated[Optional[list[Path]], typer.Option(
        "--gallery", help="Gallery features .npz (repeat for parts) or one image folder.")] = None,
    weights: Weights = None,
    top: Annotated[int, typer.Option("--top", help="Matches per query.")] = 10,
    rerank: Rerank = False, k1: K1 = 20, k2: K2 = 6, lam: Lam = 0.3,
    exclude_same_camera: Annotated[bool, typer.Option("--exclude-same-camera", help="Drop gallery items of the query's camera.")] = False,
    camera: Annotated[Optional[int], typer.Option("--camera", help="Camera of the queries (else from VeRi names).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a rank-list montage PNG.")] = None,
    gallery_cache: Annotated[Optional[Path], typer.Option("--gallery-cache", help="Cache for an embedded gallery folder (.npz).")] = None,
    batch_size: Batch = 256,
    device: o.Device = "auto", amp: o.Amp = True, json: o.Json = False, quiet: o.Quiet = False,
    verbose: o.Verbose = False, debug: o.Debug = False,
) -> None:
    """Top gallery matches of query images (JSON: query, results[rank, path, distance, id, camera])."""
    from wisecli.cli.inputs import expand_inputs

    sink = Sink(json=json, quiet=quiet, verbose=verbose)
    if weights is None or gallery is None:
        raise InputError("query needs --weights and --gallery", hint="wise reid query car.jpg --gallery g.npz --weights best.pt")
    for g in gallery:
        if not g.exists():
            raise InputError(f"no such gallery: {g}", hint="features .npz parts or one image folder")
    if len(gallery) > 1 and any(g.is_dir() for g in gallery):
        raise InputError("a gallery folder cannot be mixed with other --gallery items", hint="give one folder")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError("--plot must name a .png file", hint="e.g. --plot ranks.png")
    if gallery_cache is not None and gallery_cache.suffix != ".npz":
        raise InputError("--gallery-cache must name a .npz file", hint="e.g. --gallery-cache gallery.npz")
    paths = expand_inputs(queries, extensions=(".jpg", ".jpeg", ".png", ".bmp"))
    from wisecli.engines.reid import api

    out = api.query(paths, gallery=gallery, weights=weights, top=top, rerank=rerank, k1=k1, k2=k2, lam=lam,
                    exclude_same_camera=exclude_same_camera, camera=camera, plot=plot, gallery_cache=gallery_cache,
                    device_spec=device, amp=amp, batch=batch_size, sink=sink)
    rows = [{"query": Path(r["query"]).name, "rank": m["rank"], "match": Path(m["path"]).name,
             "distance": round(m["distance"], 4), "id": m["id"], "camera": m["camera"]} for r in out for m in r["results"]]
    sink.result(out, rows=rows, title="wise reid query")


@app.command()
def demo(
    quick: o.Quick = False, device: o.Device = "auto", json: o.Json = False, quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Synthetic vehicles: train VCAM and its --no-vcam baseline, compare them (SYNTHETIC, NOT A BENCHMARK)."""
    from wisecli.engines.reid import api

    sink = Sink(json=json, quiet=quiet)
    doc = api.demo(quick=quick, device=device, sink=sink)
    sink.result(doc, rows=doc["rows"], title=doc["title"])
    if not doc["ok"]:
        from wisecli.cli.errors import WorkFailed

        raise WorkFailed("the demo's gate failed: " + str(doc["gate"]), hint="see the table; run on a GPU for the full gate")


@app.command()
def info(json: o.Json = False) -> None:
    """Layouts, viewpoint formats, defaults, device, optional benchmark extras."""
    from wisecli.engines.reid import api

    doc = api.info()
    rows = [{"item": k, "value": v} for k, v in doc.items() if not isinstance(v, dict)]
    rows += [{"item": f"layout {k}", "value": v} for k, v in doc["layouts"].items()]
    rows += [{"item": f"default {k}", "value": v} for k, v in doc["defaults"].items()]
    Sink(json=json).result(doc, rows=rows, title="wise reid info")


@app.command()
def benchmark(
    quick: o.Quick = False, device: o.Device = "auto", json: o.Json = False, quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Race our GPU evaluation, re-ranking and embedding against the numpy peers (one process, one device)."""
    from wisecli.engines.reid import api

    recs = api.benchmark(device=device, quick=quick)
    doc = {"device": recs[0]["device"], **{r["case"].split()[0]: r for r in recs},
           "ratios": {r["case"].split()[0]: r["speedup"] for r in recs}}
    rows = [{"case": r["case"], "ours_s": round(r["ours_s"], 4), "peer": r["peer"], "peer_s": round(r["peer_s"], 4),
             "speedup": round(r["speedup"], 2), "agree": r["agree"], "device": r["device"]} for r in recs]
    Sink(json=json, quiet=quiet).result(doc, rows=rows, title="wise reid benchmark")
