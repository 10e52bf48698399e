"""Prefect flow ``pretrain``: raw files -> lake -> shards -> pre-training, one DAG.

Stages, each skipped when its inputs did not change:

1. ``sample-corpus`` (demo recipe only, when no ``raw_root`` is given): kept when its manifest
   says it was made from the same seed.
2. ``ingest`` (subflow): a source whose files' fingerprint matches the lake's is not re-read.
3. ``shards`` (subflow): the build folder is named by the build id (recipe + lake content), and a
   shard whose stats file exists is not rewritten.
4. ``train``: resumes from ``work_dir/train/checkpoints/latest``; a run that already reached
   ``steps`` does no step. In-process on one device; ``torchrun`` for several (``devices``).
5. ``evaluation`` (subflow): the final checkpoint through the downstream flows named by ``evaluations``
   (``retrieval`` / ``grounding``: ``flows.evaluate.downstream_stage``, zero-shot + fine-tune;
   ``vqa`` / ``nlvr2`` / ``caption``: ``flows.finetune_vl.run_downstream``), every MLflow run tagged
   ``pretrain_run_id``. Skipped when ``work_dir/eval/<key>/result.json`` exists for the same key
   (checkpoint bytes + settings + data root) and its MLflow runs still exist.

Presets live in ``configs/pretrain/{demo,4m,16m}.json`` (``PretrainConfig`` fields plus ``recipe``, and
``downstream``: the evaluation stage's settings, see ``DownstreamSettings``);
``overrides`` is merged into the preset (e.g. ``{"init_bert": "/models/bert-base-uncased"}``).
MLflow: the tracking URI comes from ``MLFLOW_TRACKING_URI`` (a local SQLite file in the demo, the
tracking server under ``xvlm serve``); experiment ``pretrain-<preset>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.ingest import ingest
from flows.shards import shards
from flows.tracking import experiment_id, log_ingest_run, log_shards_run
from xvlm.data.sample_corpus import MANIFEST, write_sample_corpus

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "configs" / "pretrain"
EVALUATIONS = ("retrieval", "grounding", "vqa", "nlvr2", "caption")


@dataclasses.dataclass(frozen=True)
class DownstreamSettings:
    """A preset's ``downstream`` section: what the evaluation stage runs and how (METHOD.md §7).

    ``finetune``: ``flows.evaluate.FinetuneOptions`` fields for retrieval / grounding (its ``image_size``
    is also the VQA / NLVR2 / caption resolution); ``tasks``: ``TaskConfig`` overrides per VL task;
    ``raw_root``: where the downstream files are (None: the pre-training ``raw_root``, which for the demo
    is the sample corpus, holding every downstream split).
    """

    evaluations: tuple[str, ...] = ("retrieval", "grounding")
    raw_root: str | None = None
    dataset: str = "coco"
    k: int = 128
    finetune: dict[str, Any] = dataclasses.field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], evaluations: list[str] | None = None) -> DownstreamSettings:
        """Validate before anything runs: a typo in a task or option name must not cost a training run."""
        from flows.evaluate import FinetuneOptions

        fields = {f.name for f in dataclasses.fields(cls)}
        if set(d) - fields:
            raise ValueError(f"preset 'downstream' section: unknown keys {sorted(set(d) - fields)}; "
                             f"known: {sorted(fields)}")
        s = cls(**{**d, "evaluations": tuple(d.get("evaluations", cls.evaluations) if evaluations is None
                                               else evaluations)})
        if bad := sorted(set(s.evaluations) - set(EVALUATIONS)):
            raise ValueError(f"unknown evaluations {bad}; allowed: {list(EVALUATIONS)}")
        opts = {f.name for f in dataclasses.fields(FinetuneOptions)}
        if bad := sorted(set(s.finetune) - opts):
            raise ValueError(f"preset 'downstream.finetune': unknown keys {bad}; known: {sorted(opts)}")
        if bad := sorted(set(s.tasks) - set(EVALUATIONS[2:])):
            raise ValueError(f"preset 'downstream.tasks': unknown tasks {bad}; known: {list(EVALUATIONS[2:])}")
        from xvlm.eval.vl_common import TaskConfig

        known = {f.name for f in dataclasses.fields(TaskConfig)}
        for task_name, overrides in s.tasks.items():
            if bad := sorted(set(overrides) - known):
                raise ValueError(f"preset 'downstream.tasks.{task_name}': unknown keys {bad}; "
                                 f"known: {sorted(known)}")
        return s


def load_preset(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset name (``configs/pretrain/<name>.json``) or a JSON path, with ``overrides`` merged in
    one level deep (``{"data": {"batch_texts": 8}}`` changes only that key of ``data``)."""
    path = Path(preset) if preset.endswith(".json") else PRESETS / f"{preset}.json"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.json"))
        raise FileNotFoundError(f"{path}: no such pre-training preset (known: {known})")
    cfg = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


@task(name="sample-corpus")
def sample_corpus(raw_root: str, seed: int) -> str:
    """Write the sample corpus, or keep the one already there if it was made from the same seed.

    Not a Prefect cache: the check reads the corpus' own manifest, so a corpus deleted or edited by
    hand is rewritten.
    """
    root = Path(raw_root)
    manifest = root / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text())["seed"] == seed:
        get_run_logger().info("sample corpus at %s is current (seed %d)", root, seed)
        return str(root)
    write_sample_corpus(root, seed=seed, overwrite=True)
    get_run_logger().info("sample corpus written to %s (seed %d)", root, seed)
    return str(root)


@task(name="log-ingest-to-mlflow", retries=2, retry_delay_seconds=1)
def log_ingest(work_dir: str, experiment: str, result: dict[str, Any]) -> str:
    return log_ingest_run(experiment_id(experiment, Path(work_dir)), result)


@task(name="data-report-to-mlflow", retries=2, retry_delay_seconds=1)
def log_shards(work_dir: str, experiment: str, build_dir: str, lake_root: str, totals: dict[str, Any]) -> str:
    return log_shards_run(experiment_id(experiment, Path(work_dir)), Path(build_dir), Path(lake_root), totals)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@task(name="train")
def train_stage(config: dict[str, Any], devices: int, experiment: str, work_dir: str) -> dict[str, Any]:
    """Run (or resume) the training; in-process for one device, ``torchrun`` for several."""
    from xvlm.train import PretrainConfig

    log = get_run_logger()
    cfg = PretrainConfig.from_dict(config)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    exp_id = experiment_id(experiment, Path(work_dir)) if tracking_uri else None  # pins the artifact folder
    log.info("training %s for %d steps (%s) into %s; MLflow experiment %s", cfg.model, cfg.steps,
             f"{devices} processes" if devices > 1 else cfg.device, cfg.out_dir, exp_id)
    if devices > 1:
        return _torchrun(cfg, devices, tracking_uri, experiment)
    from xvlm import progress
    from xvlm.tracking import MLflowCallback
    from xvlm.train import train

    callbacks = [MLflowCallback(tracking_uri, experiment)] if tracking_uri else []
    with progress.use(progress.with_log(log.info)):  # steps, loss, samples/s in the run's log (+ CLI bar)
        result = train(cfg, callbacks)
    run_id = callbacks[0].run_id if callbacks else None
    first, last = loss_windows(result.losses)
    return {"step": result.step, "checkpoint": str(result.last_checkpoint), "mlflow_run_id": run_id,
            "samples_per_s": result.samples_per_s, "wall_s": result.wall_s,
            "first_losses": first, "last_losses": last}


def loss_windows(losses: list[dict[str, Any]], n: int = 20) -> tuple[dict[str, float], dict[str, float]]:
    """Each loss's mean over its first and its last ``n`` updates, counting only updates that computed it.

    One update is noisy, and in alternating mode an image-text update has no bbox loss (logged as 0) and a
    region update comes between image-text ones, so "first" and "last" are per loss, not per update.
    """
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    keys = [k for k in (losses[0] if losses else {}) if k not in ("step", "update", "loss")]
    for k in keys:
        vals = [float(r[k]) for r in losses if r.get(k)]
        if vals:
            first[k], last[k] = sum(vals[:n]) / len(vals[:n]), sum(vals[-n:]) / len(vals[-n:])
    return first, last


def evaluation_key(checkpoint: str, raw_root: str, model: str, settings: DownstreamSettings) -> str:
    """What decides an evaluation's outcome: the checkpoint's bytes, every setting, and the data root
    (its path: the downstream files are not hashed, they are large for real data)."""
    blob = json.dumps({"checkpoint": _file_sha256(Path(checkpoint)), "raw_root": str(Path(raw_root).resolve()),
                       "model": model, "settings": dataclasses.asdict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _run_ids(result: Any) -> list[str]:
    if isinstance(result, dict):
        return [v for k, v in result.items() if k == "run_id" and isinstance(v, str)] + [
            r for v in result.values() for r in _run_ids(v)]
    return []


def _runs_exist(run_ids: list[str]) -> bool:
    """A marker is only trusted while the MLflow runs it names exist (a wiped tracking store reruns)."""
    import mlflow

    try:
        runs = [mlflow.get_run(r).info for r in run_ids]
    except mlflow.exceptions.MlflowException:
        return False
    return all(r.status == "FINISHED" and r.lifecycle_stage == "active" for r in runs)


@flow(name="evaluation")
def evaluation_stage(checkpoint: str, raw_root: str, work_dir: str, pretrain_run_id: str | None, model: str,
                     settings: DownstreamSettings) -> dict[str, Any]:
    """The DAG's last stage (module docstring, step 5). Returns the flows' results plus ``key``, ``out``
    and ``skipped`` (True when an earlier run with the same key was reused)."""
    from flows.evaluate import FinetuneOptions, downstream_stage
    from flows.finetune_vl import run_downstream

    log = get_run_logger()
    key = evaluation_key(checkpoint, raw_root, model, settings)
    out = Path(work_dir) / "eval" / key[:16]
    marker = out / "result.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if _runs_exist(_run_ids(done)):
            log.info("checkpoint %s already evaluated with these settings (%s): skipped", checkpoint, marker)
            return {**done, "skipped": True}
        log.info("%s names MLflow runs that no longer exist: evaluating again", marker)
    result: dict[str, Any] = {"key": key, "out": str(out), "checkpoint": checkpoint,
                              "pretrain_run_id": pretrain_run_id, "evaluations": list(settings.evaluations)}
    opts = FinetuneOptions(**settings.finetune)
    if rg := tuple(t for t in ("retrieval", "grounding") if t in settings.evaluations):
        result.update(downstream_stage(checkpoint, raw_root, str(out), pretrain_run_id=pretrain_run_id,
                                       model=model, options=opts, k=settings.k, tasks=rg,
                                       dataset=settings.dataset))
    if vl := [t for t in EVALUATIONS[2:] if t in settings.evaluations]:
        result["vl"] = run_downstream(vl, raw_root, str(out), checkpoint, pretrain_run_id, model=model,
                                      configs=settings.tasks, image_size=opts.image_size)
    out.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".json.tmp")  # written last and renamed: a killed stage leaves no marker
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(marker)
    return {**result, "skipped": False}


def _torchrun(cfg: Any, devices: int, tracking_uri: str | None, experiment: str) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    cfg_path.write_text(cfg.to_json())
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    argv = [torchrun, "--standalone", f"--nproc-per-node={devices}", "-m", "xvlm.train", "--config",
            str(cfg_path), "--experiment", experiment]
    if tracking_uri:
        argv += ["--mlflow", tracking_uri]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    run_id_file = out / "mlflow_run_id"
    result["mlflow_run_id"] = run_id_file.read_text().strip() if run_id_file.is_file() else None
    return result


@flow(name="pretrain")
def pretrain(preset: str = "demo", work_dir: str = "runs/pretrain-demo", raw_root: str | None = None,
             steps: int | None = None, devices: int = 1, overrides: dict[str, Any] | None = None,
             seed: int = 0, evaluations: list[str] | None = None,
             downstream_root: str | None = None) -> dict[str, Any]:
    """ingest -> shards -> train -> evaluation for ``preset``; returns where every output is, the final
    losses and the evaluation results (``evaluation``; None when no evaluation was asked for).

    ``raw_root``: the raw files (real downloads, or any folder in the sample-corpus layout); None
    with the demo recipe writes the sample corpus (``seed``) into ``work_dir/raw``.
    ``devices``: processes for torchrun (GPUs, or CPU processes with gloo); 1 runs in-process.
    ``evaluations``: any of ``EVALUATIONS`` (None: the preset's ``downstream.evaluations``; [] skips
    the stage). ``downstream_root``: the downstream splits (None: the preset's, else ``raw_root``).
    """
    work = Path(work_dir).resolve()
    cfg = load_preset(preset, {**(overrides or {}), **({"steps": steps} if steps else {})})
    recipe = cfg.pop("recipe")
    ds = DownstreamSettings.from_dict(cfg.pop("downstream", {}), evaluations)
    experiment = f"pretrain-{Path(preset).stem}"
    if raw_root is None:
        if recipe != "demo":
            raise ValueError(f"recipe {recipe!r} needs raw_root: the folder holding the downloaded annotations")
        raw_root = sample_corpus(str(work / "raw"), seed)
    lake = ingest(raw_root=raw_root, out=str(work / "lake"))
    ingest_run = log_ingest(str(work), experiment, lake)
    built = shards(lake["lake_root"], raw_root, str(work / "shards"), recipe=recipe, lake_db=lake["lake_db"])
    build = Path(built["out"])
    shards_run = log_shards(str(work), experiment, str(build), lake["lake_root"], built)
    manifest = build / "manifest.parquet"
    cfg["out_dir"] = str(work / "train")
    cfg.setdefault("data", {})["shards"] = [str(build / "shards" / "*.tar")]
    cfg["tags"] = {**cfg.get("tags", {}), "recipe": recipe, "recipe_hash": built["recipe_hash"],
                   "build_id": built["build_id"], "manifest_hash": _file_sha256(manifest),
                   "ingest_run_id": ingest_run, "shards_run_id": shards_run}
    trained = train_stage(cfg, devices, experiment, str(work))
    evaluated = None
    if ds.evaluations:
        evaluated = evaluation_stage(trained["checkpoint"], downstream_root or ds.raw_root or raw_root, str(work),
                                     trained.get("mlflow_run_id"), cfg["model"], ds)
    return {"work_dir": str(work), "raw_root": raw_root, "lake_root": lake["lake_root"],
            "lake_db": lake["lake_db"], "stats": lake["stats"], "shards": str(build),
            "samples_written": built["samples_written"], "train": trained, "experiment": experiment,
            "evaluation": evaluated,
            "mlflow_runs": {"ingest": ingest_run, "shards": shards_run, "pretrain": trained.get("mlflow_run_id"),
                            "evaluation": _run_ids(evaluated or {})}}
