"""MLflow tracking: the only module in the repository that imports mlflow (a test scans every file).

Every stage logs through it:
- ``experiment_id``: experiments created once per name; with a local ``sqlite:///`` tracking URI the
  artifacts are pinned under the run's work folder (MLflow's default ``./mlruns`` depends on the current
  directory); a tracking server stores artifacts itself.
- ``log_prepare_run`` / ``log_ingest_run`` / ``log_shards_run``: one run per data stage (prepare: files
  per outcome and img2dataset's success / failure counts; ingest: rows in / loaded / quarantined;
  shards: the data report PNG and its numbers).
- ``MLflowCallback`` (pre-training, the loop's ``TrainCallback``, rank 0 only): one run per pre-training (a
  resumed run continues the same MLflow run: its id is stored in ``{out_dir}/mlflow_run_id``), the
  flattened config as params, what it started from (each starting file's LoadReport counts and sha256 as
  ``init_bert.*`` / ``init_swin.*`` params, the reports as ``init/load_reports.json``), tags (git commit,
  config hash, ``from_scratch`` and the flow's recipe / manifest hashes),
  system metrics (CPU, memory, GPU when pynvml is present), a PNG of the first batch's images with their
  boxes and texts (``preview/first_batch.png``), per-step metrics (every loss, total, lr, grad norm,
  samples/s, tokens/s, corrupt samples), checkpoints under ``checkpoints/step-XXXXXXXX``, pruned by the
  local rule (``keep_last`` newest plus ``keep_every`` milestones, ``checkpoint.to_prune``): older copies are
  deleted from the artifact store too. A run that
  stops early ends FAILED (an error) or KILLED (SIGTERM, SIGINT / KeyboardInterrupt), never RUNNING: SIGTERM
  becomes ``SystemExit(143)`` in the training process (deferred to the end of a tracking call in progress:
  interrupting MLflow's SQLite write leaves the store locked), which the loop's error path hands to
  ``on_train_error``; an atexit hook ends a run still open at interpreter exit as FAILED.
- ``start_run`` / ``log_metrics`` / ``log_figures`` / ``log_artifact`` / ``log_dict``: the evaluation
  runs (one per downstream task, tagged with the pre-training run: ``xvlm.pipeline``), and
  ``FinetuneMlflowCallback`` for their per-step losses and per-epoch validation metrics.
- ``runs_exist`` (is an evaluation marker still backed by its runs) and ``download_artifact``
  (a checkpoint given as ``runs:/...``, ``models:/...`` or ``mlflow-artifacts:/...``).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from PIL import Image, ImageDraw

from xvlm.data.loader import LoaderBatch
from xvlm.train.checkpoint import to_prune
from xvlm.train.loop import RunInfo, TrainCallback, TrainResult


def tracking_uri() -> str | None:
    """The tracking URI the stages log to (``MLFLOW_TRACKING_URI``; None: tracking off)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def experiment_id(name: str, work_dir: Path) -> str:
    """The id of experiment ``name``, creating it (artifacts under ``work_dir/mlartifacts``) if needed."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if mlflow.get_tracking_uri().startswith(("http://", "https://")):
        return mlflow.create_experiment(name)
    return mlflow.create_experiment(name, artifact_location=(Path(work_dir) / "mlartifacts").resolve().as_uri())


def log_ingest_run(exp_id: str, result: dict[str, Any]) -> str:
    """One run for the ingest stage: per-source rows in / loaded / quarantined, and the stats file."""
    with mlflow.start_run(experiment_id=exp_id, run_name="ingest") as run:
        mlflow.set_tags({"stage": "ingest", "lake_root": result["lake_root"]})
        metrics: dict[str, float] = {}
        for source, s in result["stats"].items():
            for entity, e in s.get("entities", {}).items():
                metrics[f"{source}.{entity}.rows_in"] = e["rows_in"]
                metrics[f"{source}.{entity}.loaded"] = e["loaded"]
                metrics[f"{source}.{entity}.quarantined"] = sum(e["quarantined"].values())
        mlflow.log_metrics(metrics)
        mlflow.log_dict(result["stats"], "ingest_stats.json")
        return run.info.run_id


def log_prepare_run(exp_id: str, report: dict[str, Any]) -> str:
    """One run for ``xvlm prepare``: files per outcome, and per web source img2dataset's counts (its
    failures are also the lake's ``failed_to_download`` / ``failed_to_resize`` quarantine rows)."""
    with mlflow.start_run(experiment_id=exp_id, run_name="prepare") as run:
        mlflow.set_tags({"stage": "prepare", "recipe": report["recipe"], "raw_root": report["root"],
                         "ok": str(report["ok"])})
        metrics = {f"files.{k}": float(n) for k, n in report["counts"].items()}
        for source, s in report["web"].items():
            for k in ("count", "successes", "failed_to_download", "failed_to_resize", "shards"):
                metrics[f"{source}.images.{k}"] = float(s[k])
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "prepare_report.json")
        return run.info.run_id


def log_shards_run(exp_id: str, build_dir: Path, lake_root: Path, totals: dict[str, Any]) -> str:
    """One run for the shards stage: the data report (PNG + its numbers: samples per source, removed
    and leaked, quarantined by reason) and the build's totals."""
    from xvlm.viz import data_report

    report = data_report(build_dir, lake_root=lake_root)
    with mlflow.start_run(experiment_id=exp_id, run_name="shards") as run:
        mlflow.set_tags({"stage": "shards", "build_dir": str(build_dir), "recipe": totals.get("recipe", ""),
                         "recipe_hash": totals.get("recipe_hash", ""), "build_id": totals.get("build_id", "")})
        mlflow.log_metrics({**report.metrics(), "shards": float(totals.get("n_shards", 0)),
                            "samples_written": float(totals.get("samples_written", 0))})
        mlflow.log_artifact(str(report.png), "report")
        mlflow.log_dict(report.to_dict(), "report/data_report.json")
        return run.info.run_id


# ------------------------------------------------------------------------------------- evaluation runs
def is_writer() -> bool:
    """Only global rank 0 writes to MLflow. A fine-tune under torchrun (``xvlm.pipeline.finetune_launch``)
    runs the same task function on every rank; on the others the calls below do nothing."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def start_run(experiment: str, work_dir: Path, name: str, tags: dict[str, str],
              params: dict[str, Any]) -> Iterator[str | None]:
    """One evaluation run (yields its id; None off rank 0): ``tags`` plus ``stage`` = ``name`` unless given,
    ``params`` as strings. ``experiment_id`` on the run, not ``mlflow.set_experiment``: that is
    process-global, and a pre-training run resumed later in the same process must not find another active
    experiment."""
    if not is_writer():
        yield None
        return
    with mlflow.start_run(experiment_id=experiment_id(experiment, work_dir), run_name=name) as run:
        mlflow.set_tags({"stage": name, **tags})
        mlflow.log_params({k: str(v) for k, v in params.items()})
        yield run.info.run_id


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    if is_writer():
        mlflow.log_metrics(metrics, step=step)


def log_dict(d: dict[str, Any], artifact_file: str) -> None:
    if is_writer():
        mlflow.log_dict(d, artifact_file)


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    if is_writer():
        mlflow.log_artifact(str(path), artifact_path)


def log_figures(figs: dict[str, Any], folder: str = "figures") -> None:
    """Matplotlib figures as PNG artifacts ``folder/<name>``; each figure is closed after logging."""
    import matplotlib.pyplot as plt

    for name, fig in figs.items():
        if is_writer():
            mlflow.log_figure(fig, f"{folder}/{name}")
        plt.close(fig)


def runs_exist(run_ids: list[str]) -> bool:
    """True while every run is FINISHED and not deleted (a wiped tracking store makes a marker stale)."""
    try:
        runs = [mlflow.get_run(r).info for r in run_ids]
    except mlflow.exceptions.MlflowException:
        return False
    return all(r.status == "FINISHED" and r.lifecycle_stage == "active" for r in runs)


def download_artifact(uri: str) -> Path:
    """A local copy of the artifact at ``uri`` (a file, or a folder for a folder artifact)."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(prefix="ckpt-")))


class FinetuneMlflowCallback:
    """``xvlm.eval.finetune`` callback: per-step losses (every ``every`` steps) and per-epoch validation
    metrics, logged to the active MLflow run."""

    def __init__(self, every: int = 10) -> None:
        self.every = every

    def on_step(self, step: int, losses: dict[str, float], lr: float) -> None:
        if step % self.every == 0 or step == 1:
            mlflow.log_metrics({**{f"train/{k}": v for k, v in losses.items()}, "train/lr": lr}, step=step)

    def on_eval(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics({f"val/{k}": v for k, v in metrics.items()}, step=step)


# ------------------------------------------------------------------------------------- pre-training
def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"data.batch_texts": "128", ...} (MLflow params are flat strings, <= 6000 chars)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:6000]
    return out


def preview_image(lb: LoaderBatch, mean: tuple[float, ...] | None = None, max_images: int = 4) -> Image.Image:
    """Grid of the first images with each region text's box (``xvlm.viz.draw_boxes``, the one box
    painter) and the image's texts listed below it."""
    from xvlm.viz import draw_boxes

    b = lb.batch
    n = min(max_images, b.images.shape[0])
    res = b.images.shape[-1]
    scale = max(1, 256 // res)
    tile_w, text_h = res * scale, 14 * 6
    canvas = Image.new("RGB", (tile_w * n, tile_w + text_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (0, 0, 0)]
    for i in range(n):
        rows = [j for j in range(len(lb.texts)) if int(b.image_index[j]) == i][:6]
        colours = [palette[r % len(palette)] for r in range(len(rows))]
        regions = [(tuple(float(v) for v in b.boxes[j]), colours[r]) for r, j in enumerate(rows)
                   if b.boxes is not None and b.is_region is not None and bool(b.is_region[j])]
        img = Image.fromarray(b.images[i].permute(1, 2, 0).numpy()).resize((tile_w, tile_w))
        canvas.paste(draw_boxes(img, [box for box, _ in regions], colours=[c for _, c in regions], scale=scale),
                     (i * tile_w, 0))
        for r, j in enumerate(rows):
            draw.text((i * tile_w + 2, tile_w + 2 + 14 * r), lb.texts[j][:40], fill=colours[r])
    return canvas


def load_report_params(info: RunInfo) -> dict[str, str]:
    """What the run started from, as params: per starting file (``init_bert`` / ``init_swin``) its
    loaded / new / dropped / unmapped counts, the file's key count and sha256 (the full reports are the
    artifact ``init/load_reports.json``)."""
    out: dict[str, str] = {}
    for r in info.load_reports:
        role = "init_bert" if r.source == str(info.config.init_bert) else "init_swin"
        out.update({f"{role}.{k}": str(v) for k, v in r.counts().items()})
        out[f"{role}.sha256"] = r.sha256
    return out


class MLflowCallback(TrainCallback):
    """Logs one pre-training run to MLflow (see module docstring)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "pretrain",
                 artifact_location: str | None = None, run_name: str | None = None,
                 log_checkpoints: bool = True, system_metrics: bool = True) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.artifact_location, self.run_name = artifact_location, run_name
        self.log_checkpoints, self.system_metrics = log_checkpoints, system_metrics
        self.run_id: str | None = None
        self._prev_sigterm: Any = None  # the handler ours replaced (restored when the run ends)
        self._keep = (0, 0)  # (keep_last, keep_every) of the run
        self._logged: list[int] = []  # checkpoint steps in the run's artifacts

    def on_train_start(self, info: RunInfo) -> None:
        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        client = MlflowClient()
        exp = client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(
            self.experiment, artifact_location=self.artifact_location)
        id_file = info.out_dir / "mlflow_run_id"
        resume_id = id_file.read_text().strip() if info.start_step > 0 and id_file.is_file() else None
        run = mlflow.start_run(run_id=resume_id, experiment_id=None if resume_id else exp_id,
                               run_name=self.run_name or Path(info.config.out_dir).name,
                               log_system_metrics=self.system_metrics)
        self.run_id = run.info.run_id
        id_file.write_text(self.run_id)
        if resume_id is None:
            mlflow.log_params({**flatten(info.config.to_dict()), **load_report_params(info)})
            mlflow.log_dict(info.config.to_dict(), "config.json")
            mlflow.log_dict({"from_scratch": info.config.from_scratch,
                             "reports": [r.to_dict() for r in info.load_reports]}, "init/load_reports.json")
        mlflow.set_tags({**info.tags, "num_params": str(info.num_params), "world_size": str(info.world_size),
                         "resumed_from_step": str(info.start_step)})
        self._keep = (info.config.keep_last, info.config.keep_every)
        self._logged = [int(a.path.rsplit("step-", 1)[1]) for a in client.list_artifacts(self.run_id, "checkpoints")
                        if "step-" in a.path] if resume_id else []
        self._arm()

    # -- ending a run that stops early -------------------------------------------------------------------
    def _arm(self) -> None:
        """SIGTERM (torchrun stopping the group, a scheduler's cancel, ``kill``) kills the process without
        unwinding by default, leaving the run RUNNING forever: turn it into ``SystemExit(128 + 15)`` so the
        loop's error path ends the run KILLED. Only the main thread may set handlers (the flow may call
        ``train`` elsewhere; then only atexit and the error path apply). SIGINT already raises
        KeyboardInterrupt."""
        atexit.register(self._end_at_exit)
        if threading.current_thread() is threading.main_thread():
            self._prev_sigterm = signal.signal(signal.SIGTERM, _raise_system_exit)

    def _disarm(self) -> None:
        atexit.unregister(self._end_at_exit)
        if self._prev_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._prev_sigterm)
            self._prev_sigterm = None

    def _end_at_exit(self) -> None:
        if mlflow.active_run() is not None and mlflow.active_run().info.run_id == self.run_id:
            mlflow.end_run(status="FAILED")

    def on_train_error(self, exc: BaseException) -> None:
        """KILLED for a signal / interrupt (SystemExit, KeyboardInterrupt), FAILED for anything else; the error
        goes into the ``error`` tag (first line)."""
        self._disarm()
        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:  # ended already (a SIGTERM during on_train_end)
            return
        killed = isinstance(exc, SystemExit | KeyboardInterrupt)
        lines = str(exc).strip().splitlines()
        with contextlib.suppress(Exception):  # the tracking store may be what failed
            mlflow.set_tag("error", f"{type(exc).__name__}: {lines[0] if lines else ''}"[:5000])
        mlflow.end_run(status="KILLED" if killed else "FAILED")

    def on_batch_preview(self, batch: LoaderBatch) -> None:
        buf = io.BytesIO()
        preview_image(batch).save(buf, format="PNG")
        with _tracking_call():
            mlflow.log_image(Image.open(buf), "preview/first_batch.png")

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        with _tracking_call():
            mlflow.log_metrics(metrics, step=step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Copy the checkpoint to the run, then delete the copies the local rule pruned (``to_prune``): without
        this every checkpoint stayed, about 107 GB for a 16M run."""
        if not self.log_checkpoints:
            return
        with _tracking_call():
            mlflow.log_artifact(str(path), artifact_path=f"checkpoints/step-{step:08d}")
            mlflow.set_tag("last_checkpoint_step", str(step))
            self._logged = sorted({*self._logged, step})
            for old in to_prune(self._logged, *self._keep):
                delete_run_artifacts(self.run_id, f"checkpoints/step-{old:08d}")
                self._logged.remove(old)

    def on_train_end(self, result: TrainResult) -> None:
        with _tracking_call():
            mlflow.log_metrics({"final_step": float(result.step), "train_samples_per_s": result.samples_per_s,
                                "wall_s": result.wall_s}, step=result.step)
            self._disarm()
            mlflow.end_run()


def delete_run_artifacts(run_id: str | None, artifact_path: str) -> None:
    """Delete one folder of a run's artifacts from the artifact store (local folder, S3 / GCS / Azure, or a
    tracking server's proxied ``mlflow-artifacts:``; MLflow's client has no call for it, its artifact
    repository does)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    run = MlflowClient().get_run(run_id)
    get_artifact_repository(run.info.artifact_uri).delete_artifacts(artifact_path)


# SIGTERM while MLflow writes: raising inside a SQLAlchemy transaction leaves the SQLite store locked (or its
# session half-flushed), so the ``end_run(KILLED)`` that follows fails and the run stays RUNNING (seen in 5 of
# 30 trials on the 2-core box). The handler therefore raises at once only outside the callback's tracking
# calls; inside one it records the signal and ``_tracking_call`` raises when the call is done.
_in_tracking_call = 0
_pending_signal: int | None = None


def _raise_system_exit(signum: int, frame: Any) -> None:
    global _pending_signal
    if _in_tracking_call:
        _pending_signal = signum
        return
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _tracking_call() -> Iterator[None]:
    """A section a SIGTERM does not interrupt (see ``_raise_system_exit``); the signal takes effect at its end."""
    global _in_tracking_call, _pending_signal
    _in_tracking_call += 1
    try:
        yield
    finally:
        _in_tracking_call -= 1
    if not _in_tracking_call and _pending_signal is not None:
        signum, _pending_signal = _pending_signal, None
        raise SystemExit(128 + signum)
