"""Prefect flow ``pretrain``: raw files -> lake -> shards -> pre-training, one DAG.

Stages, each skipped when its inputs did not change:

1. ``sample-corpus`` (demo recipe only, when no ``raw_root`` is given): kept when its manifest
   says it was made from the same seed.
2. ``ingest`` (subflow): a source whose files' fingerprint matches the lake's is not re-read.
3. ``shards`` (subflow): the build folder is named by the build id (recipe + lake content), and a
   shard whose stats file exists is not rewritten.
4. ``train``: resumes from ``work_dir/train/checkpoints/latest``; a run that already reached
   ``steps`` does no step. In-process on one device; ``torchrun`` for several (``devices``).

Presets live in ``configs/pretrain/{demo,4m,16m}.json`` (``PretrainConfig`` fields plus ``recipe``);
``overrides`` is merged into the preset (e.g. ``{"init_bert": "/models/bert-base-uncased"}``).
MLflow: the tracking URI comes from ``MLFLOW_TRACKING_URI`` (a local SQLite file in the demo, the
tracking server under ``xvlm serve``); experiment ``pretrain-<preset>``.
"""

from __future__ import annotations

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
    first, last = (result.losses[0], result.losses[-1]) if result.losses else ({}, {})
    return {"step": result.step, "checkpoint": str(result.last_checkpoint), "mlflow_run_id": run_id,
            "samples_per_s": result.samples_per_s, "wall_s": result.wall_s,
            "first_losses": first, "last_losses": last}


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
             seed: int = 0) -> dict[str, Any]:
    """ingest -> shards -> train for ``preset``; returns where every output is and the final losses.

    ``raw_root``: the raw files (real downloads, or any folder in the sample-corpus layout); None
    with the demo recipe writes the sample corpus (``seed``) into ``work_dir/raw``.
    ``devices``: processes for torchrun (GPUs, or CPU processes with gloo); 1 runs in-process.
    """
    work = Path(work_dir).resolve()
    cfg = load_preset(preset, {**(overrides or {}), **({"steps": steps} if steps else {})})
    recipe = cfg.pop("recipe")
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
    return {"work_dir": str(work), "raw_root": raw_root, "lake_root": lake["lake_root"],
            "lake_db": lake["lake_db"], "stats": lake["stats"], "shards": str(build),
            "samples_written": built["samples_written"], "train": trained, "experiment": experiment,
            "mlflow_runs": {"ingest": ingest_run, "shards": shards_run, "pretrain": trained.get("mlflow_run_id")}}
