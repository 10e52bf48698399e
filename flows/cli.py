"""The ``xvlm`` command line: one subcommand per DAG stage, plus the whole demo.

It lives in ``flows/`` (the orchestration layer) because the stages it runs are Prefect flows and
``xvlm/`` must never import Prefect. Imports are lazy so ``xvlm --help`` stays fast.

Bad input (``xvlm.errors.BadInput``, raised by the library or the CLI's own checks) is one line naming
the file and the fix, exit code 2; ``--verbose`` shows its traceback. So is a read-only, not-permitted or
full output folder (``xvlm.errors.OutputFault``, or the same ``OSError`` raised elsewhere: the line names
the path). Inside a flow, Prefect's failure log lines for such errors keep their message but lose the
traceback (without ``--verbose``). Any other exception is a bug: it keeps its traceback and exits 1,
``--verbose`` or not.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from xvlm.envdefaults import apply_offline_defaults
from xvlm.errors import BadInput

apply_offline_defaults()  # offline, telemetry off (DEVELOPERS.md): must precede any prefect / mlflow import

app = typer.Typer(
    name="xvlm",
    help="X-VLM pipeline: sample corpus -> lake -> shards -> pre-training -> evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
lake_app = typer.Typer(help="Query the Parquet lake.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")
checkpoint_app = typer.Typer(help="Inspect checkpoints.", no_args_is_help=True)
app.add_typer(checkpoint_app, name="checkpoint")

_state: dict[str, bool] = {"verbose": False}




def _is_user_error(exc: BaseException | None) -> bool:
    """Bad input, or a read-only / full / not-permitted folder: the user's to fix, shown as one line."""
    from xvlm.fsio import output_fault

    return exc is not None and (isinstance(exc, BadInput) or output_fault(exc) is not None)


def _drop_user_error_tracebacks() -> None:
    """Without ``--verbose``, a log record carrying a user error (Prefect logs a failed task or flow run
    with ``logger.exception``) keeps its one-line message but not the traceback, so a bad input or an
    unwritable folder inside a flow reads as it does outside one: the state line, then ``error: ...``."""
    if _state.get("quiet_logs"):
        return
    _state["quiet_logs"] = True
    make = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if record.exc_info and _is_user_error(record.exc_info[1]) and not _state["verbose"]:
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress",
        help="Progress bars (count, rate, ETA) on stderr for long steps; default: on when stderr is a terminal.",
    )] = None,
) -> None:
    _state["verbose"] = verbose
    if not verbose:
        _drop_user_error_tracebacks()
    if progress if progress is not None else sys.stderr.isatty():
        from xvlm import progress as xprogress

        # Installed for the whole command (closed with the click context); Prefect flows add their log.
        ctx.with_resource(xprogress.use(xprogress.RichReporter()))


@app.command("sample-corpus")
def sample_corpus(
    out: Annotated[Path, typer.Argument(help="Directory to write the corpus into (must be empty or absent).")],
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives byte-identical files.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing corpus at OUT.")] = False,
) -> None:
    """Write the embedded sample corpus in the real datasets' on-disk formats, with planted quirks."""
    from xvlm.data.sample_corpus import write_sample_corpus

    root = write_sample_corpus(out, seed=seed, overwrite=overwrite)
    typer.echo(f"sample corpus written to {root} (planted quirks listed in {root / 'QUIRKS.json'})")


def _file_overrides(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        key, sep, path = v.partition("=")
        if not sep or not key or not path:
            raise BadInput(f"--file {v!r}: expected SOURCE.FIELD[.SPLIT]=PATH, e.g. "
                           "openimages.class_descriptions=openimages/class-descriptions-boxable.csv")
        out[key] = path
    return out


@app.command()
def ingest(
    raw_root: Annotated[Path, typer.Argument(help="Root of the raw files (the sample corpus layout or real downloads).")],
    out: Annotated[Path, typer.Argument(help="Lake directory: Parquet tables by source + lake.duckdb.")],
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only these sources (repeatable).")] = None,
    force: Annotated[bool, typer.Option(help="Re-ingest even if the inputs are unchanged.")] = False,
    file: Annotated[list[str] | None, typer.Option(
        "--file", "-f", help="Input file name, SOURCE.FIELD[.SPLIT]=PATH (relative to RAW_ROOT or absolute; "
        "repeatable), e.g. openimages.class_descriptions=openimages/class-descriptions-boxable.csv, "
        "vg.objects=vg/objects_v1_2.json. Defaults accept the names of each released version.")] = None,
    config: Annotated[Path | None, typer.Option(
        help="Ingest config (JSON, IngestConfig.to_dict() form): file names per source, knobs.")] = None,
) -> None:
    """Ingest raw annotation files into the Parquet lake (unchanged sources are skipped).

    A file that cannot be used as a whole is reported and the rest still ingests; the command then
    prints the stats of what it wrote, every error, and exits 2."""
    import json

    from xvlm.data.lake import IngestConfig, format_stats, ingest_errors
    from xvlm.data.lake import ingest as ingest_raw

    cfg = None
    if config is not None:
        try:
            doc = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{config}: not a readable JSON ingest config ({exc})") from exc
        cfg = IngestConfig.from_dict({**doc, "raw_root": str(raw_root), "out": str(out)})
    stats = ingest_raw(raw_root, out, sources=source or None, force=force, files=_file_overrides(file), config=cfg)
    typer.echo(format_stats(stats))
    typer.echo(f"lake written to {out.resolve()} (query it: duckdb {out.resolve() / 'lake.duckdb'})")
    errors = ingest_errors(stats)
    if errors:
        for e in errors:  # one line each; the stats above show what was written
            typer.echo(f"error: {e}", err=True)
        if len(errors) > 1:
            typer.echo(f"error: {len(errors)} input files could not be used (listed above); everything else "
                       "was ingested", err=True)
        raise typer.Exit(2)


@app.command()
def prepare(
    recipe: Annotated[str, typer.Argument(help="4m, 16m or downstream (xvlm/data/prepare/catalogue.json).")],
    root: Annotated[Path, typer.Option(help="The raw root to lay the files out in (what `xvlm ingest` and "
                                       "the pretrain-4m / -16m deployments read as raw_root).")],
    mirror: Annotated[str | None, typer.Option(help="Fetch <MIRROR>/<source>/<file> instead of the official "
                                               "URLs: an http(s) base or a local folder.")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only these sources (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be fetched and the disk it "
                                          "needs; fetch nothing.")] = False,
    workers: Annotated[int, typer.Option(help="Files fetched in parallel.")] = 3,
    web: Annotated[bool, typer.Option(help="Download the web images (CC3M / CC12M / SBU) with img2dataset.")] = True,
    processes: Annotated[int | None, typer.Option(help="img2dataset processes (default: this machine's cores).")] = None,
    threads: Annotated[int, typer.Option(help="img2dataset threads per process.")] = 64,
    keep_archives: Annotated[bool, typer.Option(help="Keep the downloaded archives after unpacking.")] = False,
) -> None:
    """Download, check and lay out every file of a recipe under --root, then its web images (reruns skip
    what is complete and resume the rest). Exit 2 when any file failed or needs manual access."""
    from xvlm.data.prepare import image_settings
    from xvlm.data.prepare import prepare as run_prepare

    report = run_prepare(recipe, root, mirror=mirror, sources=source or None, dry_run=dry_run, workers=workers,
                         web=web, settings=image_settings(recipe, processes, threads))
    typer.echo("\n".join(report.lines()))
    if not dry_run and os.environ.get("MLFLOW_TRACKING_URI"):
        from xvlm import tracking

        tracking.log_prepare_run(tracking.experiment_id(f"prepare-{recipe}", root / ".prepare"), report.to_dict())
    if not report.ok and not dry_run:
        raise BadInput(f"prepare {recipe} is incomplete under {root}: {report.counts()}; fix the lines above "
                       "and rerun (complete files are skipped)")


def _require_lake(lake: Path) -> None:
    if not (lake / "_manifest").is_dir():
        raise BadInput(f"{lake}: not a lake (no _manifest/); run `xvlm ingest RAW_ROOT {lake}` first")


@lake_app.command("stats")
def lake_stats(
    lake: Annotated[Path, typer.Argument(help="Lake directory written by `xvlm ingest`.")],
) -> None:
    """Per source: rows read, loaded, and quarantined by reason."""
    from xvlm.data.lake import format_stats
    from xvlm.data.lake import lake_stats as read_stats

    _require_lake(lake)
    typer.echo(format_stats(read_stats(lake)))


@lake_app.command("sql")
def lake_sql(
    lake: Annotated[Path, typer.Argument(help="Lake directory written by `xvlm ingest`.")],
    query: Annotated[str, typer.Argument(help='e.g. "select source, count(*) from regions group by all"')],
) -> None:
    """Run a read-only SQL query over the lake's views and print the rows."""
    from rich.console import Console
    from rich.table import Table

    from xvlm.data.lake import lake_sql as run_sql

    _require_lake(lake)
    try:
        columns, rows = run_sql(lake, query)
    except Exception as exc:  # duckdb's errors do not share a base class with ours
        if type(exc).__module__.split(".")[0].lstrip("_") != "duckdb":
            raise
        raise BadInput(f"{lake / 'lake.duckdb'}: query failed: {str(exc).splitlines()[0]}") from exc
    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    Console().print(table)


@app.command()
def shards(
    lake: Annotated[Path, typer.Argument(help="Lake directory written by `xvlm ingest`.")],
    raw_root: Annotated[Path, typer.Argument(help="Root of the raw files the lake was ingested from.")],
    out: Annotated[Path, typer.Argument(help="Where the build folder <recipe>-<build id> goes.")],
    recipe: Annotated[str, typer.Option(help="Recipe name (recipes/*.json) or path.")] = "demo",
    dask: Annotated[bool, typer.Option(help="Write shards on a local Dask cluster (2 workers).")] = False,
    dask_address: Annotated[str | None, typer.Option(
        help="Write shards on an existing Dask cluster (scheduler address, tcp://host:8786); its workers need "
             "this repo installed and LAKE, RAW_ROOT and OUT mounted at the same paths.")] = None,
    allow_missing: Annotated[list[str] | None, typer.Option(
        "--allow-missing", metavar="SOURCE",
        help="Build without this recipe source if the lake lacks it (repeatable; recorded in stats.json and "
             "the manifest's lineage). Without it, a recipe source missing from the lake is an error.")] = None,
    memory_limit: Annotated[str, typer.Option(
        help="DuckDB memory_limit of the samples step and the audits (e.g. 2GB, 16GB); beyond it DuckDB "
             "spills into the build folder. More makes the 16M samples step faster (docs/scale.md).")] = "2GB",
) -> None:
    """Build samples and webdataset shards from the lake (finished shards are not rewritten)."""
    from flows.shards import run_shards
    from xvlm.data.lake.sqlrun import limit_bytes
    from xvlm.data.shards import load_recipe
    from xvlm.data.shards.samples import missing_sources

    if not (lake / "lake.duckdb").is_file():
        raise BadInput(f"{lake}: no lake.duckdb; run `xvlm ingest {raw_root} {lake}` first")
    missing_sources(lake, load_recipe(recipe), allow_missing or ())  # the error before Prefect starts
    try:
        limit_bytes(memory_limit)
    except ValueError as exc:
        raise BadInput(f"--memory-limit {memory_limit}: {exc}") from exc
    totals = run_shards(lake, raw_root, out, recipe=recipe, lake_db=lake / "lake.duckdb", dask=dask,
                        dask_address=dask_address, allow_missing=allow_missing, memory_limit=memory_limit)
    if totals.get("missing_sources"):
        typer.echo(f"built without recipe sources {', '.join(totals['missing_sources'])} (not in the lake; "
                   "--allow-missing)")
    typer.echo(f"{totals['samples_written']} samples in {totals['n_shards']} shards at {totals['out']}")


def _json_option(name: str, value: str | None) -> dict | None:
    """A JSON-object option (``--overrides``), or ``BadInput`` naming the option."""
    if value is None:
        return None
    import json

    try:
        obj = json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise BadInput(f"{name}: expected a JSON object, got {type(obj).__name__}")
    return obj


@app.command()
def pretrain(
    preset: Annotated[str, typer.Option(help="configs/pretrain/<preset>.json (demo, 4m, 16m) or a JSON path.")] = "demo",
    work_dir: Annotated[Path, typer.Option(help="Lake, shards, checkpoints and MLflow artifacts go here.")] = Path(
        "runs/pretrain-demo"),
    raw_root: Annotated[Path | None, typer.Option(help="Raw annotation files (not needed for the demo).")] = None,
    steps: Annotated[int | None, typer.Option(help="Override the preset's number of steps.")] = None,
    devices: Annotated[int, typer.Option(help="Processes for torchrun per node (1: in-process).")] = 1,
    nnodes: Annotated[int, typer.Option(help="Nodes, through a c10d rendezvous (docs/training.md).")] = 1,
    node_rank: Annotated[int, typer.Option(
        help="This node's index; node 0 runs the whole DAG, the others only train with its config.")] = 0,
    rdzv_endpoint: Annotated[str | None, typer.Option(
        help="HOST:PORT of node 0 (the c10d store); needed with --nnodes > 1.")] = None,
    rdzv_id: Annotated[str | None, typer.Option(
        help="Job id, the same on every node, unique per job (default: $SLURM_JOB_ID, else 'xvlm').")] = None,
    evaluation: Annotated[list[str] | None, typer.Option(
        help="Evaluation after training (repeatable): retrieval, grounding, vqa, nlvr2, caption, or none. "
             "Default: the preset's downstream.evaluations.")] = None,
    downstream_root: Annotated[Path | None, typer.Option(help="Downstream files for the evaluation (default: "
                                                         "the preset's, else --raw-root).")] = None,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved run configuration (preset + options) as JSON and exit.")] = False,
    weights_root: Annotated[Path | None, typer.Option(
        help="Folder of the starting weights (bert-base-uncased/, swin_base_patch4_window7_224_22k.pth) that "
             "relative init_bert / init_swin paths are under; default: $XVLM_WEIGHTS.")] = None,
    overrides: Annotated[str | None, typer.Option(
        help='JSON merged into the preset one level deep, e.g. \'{"init_bert": "/models/bert"}\'.')] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Only check the start: the whole resolved configuration, the starting weights "
                        "(exist, load, only the documented new keys) and a resume checkpoint; then exit.")] = False,
) -> None:
    """Run the DAG ingest -> shards -> pre-training -> evaluation (unchanged stages are skipped; training
    resumes; a checkpoint already evaluated with the same settings is not evaluated again). The start check
    (--check) runs first, before any stage."""
    evaluations = None if evaluation is None else [e for e in evaluation if e != "none"]
    extra = _json_option("--overrides", overrides)
    from xvlm.pipeline.launch import Launch

    launch = Launch(devices, nnodes, node_rank, rdzv_endpoint, rdzv_id)
    if not (launch.is_head or print_config or check):  # a follower node / rank: no flow run, only training
        from xvlm.pipeline.stages import follow_stage

        result = follow_stage(work_dir.resolve(), launch)
        typer.echo(f"follower done (step {result['step']})")
        return
    if print_config or check:
        from xvlm.pipeline.config import resolve_run, to_json

        run = resolve_run(preset, extra, steps=steps, evaluations=evaluations, weights_root=weights_root)
        if print_config:
            typer.echo(to_json(run))
            return
        from xvlm.pipeline.preflight import check_run

        typer.echo("\n".join(check_run(run, work_dir.resolve()).lines()))
        typer.echo(f"start check passed: preset {preset} can start")
        return
    from flows.demo import evaluation_lines
    from flows.pretrain import pretrain as pretrain_flow
    from xvlm.pipeline.config import resolve_run
    from xvlm.pipeline.preflight import check_run

    # the flow checks again (deployments start there); here a bad start is one line, not a failed flow run
    check_run(resolve_run(preset, extra, steps=steps, evaluations=evaluations, weights_root=weights_root),
              work_dir.resolve())
    # every stage's run in one store: the work dir's, unless the user points at a server (the training run
    # was not tracked at all without it, while the data stages fell back to MLflow's ./mlflow.db)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work_dir.resolve() / 'mlflow.db'}")

    result = pretrain_flow(preset=preset, work_dir=str(work_dir), raw_root=str(raw_root) if raw_root else None,
                           steps=steps, devices=devices, evaluations=evaluations, overrides=extra,
                           nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id,
                           downstream_root=str(downstream_root) if downstream_root else None,
                           weights_root=str(weights_root) if weights_root else None)
    typer.echo(f"checkpoint {result['train']['checkpoint']} (step {result['train']['step']})")
    typer.echo(f"MLflow: {os.environ['MLFLOW_TRACKING_URI']} (runs: "
               + ", ".join(f"{k} {v}" for k, v in result["mlflow_runs"].items() if isinstance(v, str)) + ")")
    if lines := evaluation_lines(result):
        typer.echo("\n".join(lines))


DEFAULT_K = 128  # = xvlm.pipeline.config.DEFAULT_K (a test keeps them equal; imported lazily for a fast --help)
EVAL_TASKS = ("zero-shot-retrieval", "zero-shot-grounding", "retrieval", "grounding", "vqa", "nlvr2", "caption")


@app.command()
def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint file, training out_dir, MLflow artifact URI "
                                              "(runs:/<run>/<path>), or a released checkpoint (with --model).")],
    raw_root: Annotated[Path, typer.Argument(help="Root of the downstream files (karpathy/, refcoco+/, vqa/, "
                                             "nlvr2/, caption/ + images; the sample corpus has them all).")],
    out: Annotated[Path, typer.Option(help="Fine-tuned checkpoints and result files; MLflow's SQLite file "
                                      "when MLFLOW_TRACKING_URI is unset.")] = Path("eval-out"),
    task: Annotated[list[str] | None, typer.Option(
        "--task", "-t",
        help=f"Repeatable; one of {', '.join(EVAL_TASKS)}. Default: both zero-shot ones.")] = None,
    model: Annotated[str | None, typer.Option(help="Model config (needed for a released reference checkpoint; "
                                              "read from ours).")] = None,
    dataset: Annotated[str, typer.Option(help="Retrieval dataset: coco or flickr30k.")] = "coco",
    k: Annotated[int, typer.Option(help="Retrieval: ITC candidates re-ranked by ITM.")] = DEFAULT_K,
    image_size: Annotated[int | None, typer.Option(help="Resolution (the paper fine-tunes at 384); default: "
                                                   "the checkpoint's.")] = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 10,
    steps: Annotated[int | None, typer.Option(help="Stop fine-tuning after this many steps (debug runs).")] = None,
    lr: Annotated[float | None, typer.Option(help="Fine-tuning learning rate (default: the task's, "
                                             "METHOD.md section 7).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Fine-tuning batch size (default: the task's).")] = None,
    vision_lr_mult: Annotated[float, typer.Option(help="Vision tower lr multiplier (0.1 for barely "
                                                  "pre-trained towers).")] = 1.0,
    pretrain_run_id: Annotated[str | None, typer.Option(help="MLflow pre-training run to tag the runs with "
                                                        "(default: from the checkpoint or runs:/ URI).")] = None,
) -> None:
    """Evaluate a checkpoint on downstream tasks (zero-shot, or fine-tune then test); one MLflow run per task."""
    bad = sorted(set(task or []) - set(EVAL_TASKS))
    if bad:
        raise BadInput(f"unknown --task {bad}; choose from {', '.join(EVAL_TASKS)}")
    tasks = list(dict.fromkeys(task or ["zero-shot-retrieval", "zero-shot-grounding"]))
    if ":/" not in checkpoint or Path(checkpoint).exists():
        from xvlm.eval.checkpoint import read_checkpoint
        from xvlm.inference import resolve_checkpoint

        try:
            checkpoint = str(resolve_checkpoint(checkpoint).resolve())
        except FileNotFoundError as exc:
            raise BadInput(f"{checkpoint}: no such checkpoint file (pass a file, a training out_dir with "
                            "checkpoints/latest, or an MLflow URI runs:/<run>/<path>)") from exc
        read_checkpoint(checkpoint, mmap=True)  # a bad file is one line here, not a traceback in a flow
    if not raw_root.is_dir():
        raise BadInput(f"{raw_root}: no such directory (the downstream files' root; `xvlm sample-corpus DIR` "
                        "writes a small one)")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")
    from flows.evaluate import evaluate as evaluate_flow
    from flows.evaluate import finetune_grounding, finetune_retrieval
    from xvlm.pipeline.config import FinetuneOptions
    from xvlm.pipeline.retrieval_grounding import format_downstream

    common = {"model": model, "pretrain_run_id": pretrain_run_id}
    opts = FinetuneOptions(epochs=epochs, max_steps=steps, image_size=image_size, vision_lr_mult=vision_lr_mult,
                           **({"lr": lr} if lr is not None else {}),
                           **({"batch_size": batch_size} if batch_size is not None else {}))
    result: dict = {}
    if zero := tuple(t.removeprefix("zero-shot-") for t in tasks if t.startswith("zero-shot-")):
        result["zero_shot"] = evaluate_flow(checkpoint, str(raw_root), str(out), tasks=zero, dataset=dataset,
                                            image_size=image_size, k=k, **common)
    if "retrieval" in tasks:
        result["retrieval"] = finetune_retrieval(checkpoint, str(raw_root), str(out), dataset=dataset, options=opts,
                                                 k=k, **common)
    if "grounding" in tasks:
        result["grounding"] = finetune_grounding(checkpoint, str(raw_root), str(out), options=opts, **common)
    lines = format_downstream(result).splitlines()
    if vl := [t for t in ("vqa", "nlvr2", "caption") if t in tasks]:
        from flows.evaluate import resolve_checkpoint as fetch
        from flows.finetune_vl import run_downstream
        from xvlm.eval.checkpoint import load_checkpoint
        from xvlm.pipeline.vl_tasks import format_vl

        local = fetch.fn(checkpoint)  # the VL flows read a local file; an MLflow URI is downloaded once here
        cfg = {"epochs": epochs, "max_steps": steps, **({"lr": lr} if lr is not None else {}),
               **({"batch_size": batch_size} if batch_size is not None else {})}
        lines += format_vl(run_downstream(vl, str(raw_root), str(out), local, pretrain_run_id,
                                          model=model or load_checkpoint(local).model.cfg.name,
                                          configs=dict.fromkeys(vl, cfg), image_size=image_size))
    typer.echo("\n".join(lines))
    typer.echo(f"MLflow: {os.environ['MLFLOW_TRACKING_URI']} (experiments xvlm-eval, xvlm-finetune)")


@app.command()
def show(
    key: Annotated[str, typer.Argument(help="Sample key, e.g. coco_391895 (see the manifest).")],
    build: Annotated[Path, typer.Option(help="Shard build folder (<out>/<recipe>-<id>), as `xvlm shards` prints.")],
    out: Annotated[Path | None, typer.Option(help="PNG to write (default: KEY.png).")] = None,
) -> None:
    """Render one sample of the shards (image, boxes, texts) to a PNG."""
    from xvlm.viz import show_sample

    if not (build / "manifest.parquet").is_file():
        raise BadInput(f"{build}: no manifest.parquet; pass the build folder that `xvlm shards` printed")
    try:
        path = show_sample(build, key, out or Path(f"{key}.png"))
    except KeyError as exc:
        raise BadInput(f"{build / 'manifest.parquet'}: no sample with key {key!r}") from exc
    typer.echo(f"wrote {path}")


ALLOW_HELP = ("Load into --model even where it differs from the checkpoint's own model config (the "
              "differences are logged); without it such a load is an error naming the fields.")


def _model_option(model: str | None, variant: str | None) -> str | None:
    """``--variant`` was this option's name until 0.1 (one name per knob now: ``--model``, as in ``evaluate``)."""
    if variant is not None:
        typer.echo("warning: --variant is deprecated, use --model", err=True)
        if model is not None and model != variant:
            raise BadInput(f"--model {model!r} and --variant {variant!r} disagree; pass --model only")
    return model or variant


@app.command()
def ground(
    image: Annotated[Path, typer.Argument(help="An image file.")],
    text: Annotated[str, typer.Argument(help='A referring expression, e.g. "the red circle".')],
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint file or training out_dir.")],
    out: Annotated[Path | None, typer.Option(help="PNG with the predicted box drawn.")] = None,
    model: Annotated[str | None, typer.Option(help="Model config for a released reference checkpoint.")] = None,
    variant: Annotated[str | None, typer.Option(hidden=True, help="Deprecated name of --model.")] = None,
    allow_config_change: Annotated[bool, typer.Option(help=ALLOW_HELP)] = False,
) -> None:
    """Predict the box of TEXT in IMAGE (x, y, w, h in the image's pixels)."""
    from xvlm.inference import load

    if not image.is_file():
        raise BadInput(f"{image}: no such image file")
    predictor = load(checkpoint, variant=_model_option(model, variant), allow_config_change=allow_config_change)
    (x, y, w, h), _ = predictor.ground_picture(image, text, out_png=out)
    typer.echo(f"box x={x:.1f} y={y:.1f} w={w:.1f} h={h:.1f}" + (f" (picture: {out})" if out else ""))


@app.command()
def score(
    image: Annotated[Path, typer.Argument(help="An image file.")],
    texts: Annotated[list[str], typer.Argument(help="Candidate captions.")],
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint file or training out_dir.")],
    model: Annotated[str | None, typer.Option(help="Model config for a released reference checkpoint.")] = None,
    variant: Annotated[str | None, typer.Option(hidden=True, help="Deprecated name of --model.")] = None,
    allow_config_change: Annotated[bool, typer.Option(help=ALLOW_HELP)] = False,
) -> None:
    """ITC and ITM scores of each caption against IMAGE, best first."""
    from xvlm.inference import load

    if not image.is_file():
        raise BadInput(f"{image}: no such image file")
    s = load(checkpoint, variant=_model_option(model, variant),
             allow_config_change=allow_config_change).score(image, texts)
    for itm, itc, t in sorted(zip(s["itm"], s["itc"], texts, strict=True), reverse=True):
        typer.echo(f"itm {itm:.3f}  itc {itc:7.3f}  {t}")


@checkpoint_app.command("info")
def checkpoint_info(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file, run folder or exported folder.")],
) -> None:
    """What a checkpoint says about itself: model config, resolution, vocabulary hash, its start."""
    from xvlm.exchange import checkpoint_info as info

    typer.echo("\n".join(info(checkpoint)))


@app.command("export")
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file or run folder (ours).")],
    out: Annotated[Path, typer.Argument(help="Folder to write: model.safetensors, config.json, vocab.txt, README.md.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export in OUT.")] = False,
) -> None:
    """Export a checkpoint as a self-contained folder that inference and evaluation accept."""
    from xvlm.exchange import export_checkpoint

    typer.echo(f"exported to {export_checkpoint(checkpoint, out, overwrite=overwrite)}")


@app.command("import-reference")
def import_reference(
    file: Annotated[Path, typer.Argument(help="A released X-VLM checkpoint ({'model': ...}, reference key layout).")],
    out: Annotated[Path, typer.Argument(help="Folder to write (the layout of `xvlm export`).")],
    model: Annotated[str, typer.Option(help="Its model config: xvlm-base (4M / 16M), xvlm-base-384 (fine-tuned).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export in OUT.")] = False,
) -> None:
    """Convert a released X-VLM checkpoint (strictly: every tensor mapped) into an exported folder."""
    from xvlm.exchange import import_reference as convert

    folder, report = convert(file, out, model, overwrite=overwrite)
    typer.echo(f"converted: {report.summary()}")
    typer.echo(f"exported to {folder}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where every output of the demo goes.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Seed of the sample corpus.")] = 0,
    smoke: Annotated[bool, typer.Option("--smoke", help="Every stage, a fifteenth of the training (40 steps, "
                                        "20-step fine-tunes): a check that the DAG runs, not that it learns.")] = False,
) -> None:
    """Run the whole DAG on the embedded sample corpus (Prefect local mode, MLflow on SQLite)."""
    from flows.demo import run_demo

    run_demo(out.resolve(), seed=seed, smoke=smoke)


@app.command()
def serve(
    home: Annotated[Path, typer.Option(help="State of the services: databases, artifacts, logs, runs.")] = Path(
        "serve-home"),
    prefect_port: Annotated[int, typer.Option(help="Prefect API and UI port on 127.0.0.1.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI and tracking port on 127.0.0.1.")] = 5000,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the services a previous serve left running.")] = False,
) -> None:
    """Start Prefect server, MLflow server and the deployments on 127.0.0.1; Ctrl-C stops all."""
    from flows.services import Services, serve_forever, stop_pids

    home = home.resolve()
    if stop:
        pids = stop_pids(home)
        typer.echo(f"stopped {len(pids)} process group(s)" if pids else f"nothing running under {home}")
        return
    serve_forever(Services(home, prefect_port=prefect_port, mlflow_port=mlflow_port))


def main() -> None:
    """Console-script entry point: bad input becomes one clear line and exit code 2; bugs keep their
    traceback (exit 1)."""
    from xvlm.fsio import output_fault

    try:
        app()
    except BadInput as exc:
        if _state["verbose"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        # A read-only, not-permitted or full folder raised outside an atomic write (a mkdir, DuckDB's
        # spill folder): the user's to fix, so one line naming the path, as for bad input.
        fault = output_fault(exc)
        if fault is None or _state["verbose"]:
            raise
        typer.echo(f"error: {fault}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
