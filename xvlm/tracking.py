"""MLflow tracking for pre-training: the only module in ``xvlm`` that imports mlflow.

``MLflowCallback`` implements the loop's ``TrainCallback`` hooks (rank 0 only):
- start: one run per pre-training (a resumed run continues the same MLflow run: its id is stored in
  ``{out_dir}/mlflow_run_id``), the flattened config as params, tags (git commit, config hash and the
  flow's recipe / manifest hashes), system metrics (CPU, memory, GPU when pynvml is present);
- a PNG of the first batch's images with their boxes and texts (``preview/first_batch.png``);
- per-step metrics: every loss, total, lr, grad norm, samples/s, tokens/s, corrupt samples;
- every checkpoint as an artifact under ``checkpoints/step-XXXXXXXX`` (its step in the path and a tag).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from PIL import Image, ImageDraw

from xvlm.data.loader import LoaderBatch
from xvlm.train.loop import RunInfo, TrainCallback, TrainResult


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
    """Grid of the first images with each text's box (whole-image texts listed without a box)."""
    b = lb.batch
    n = min(max_images, b.images.shape[0])
    res = b.images.shape[-1]
    scale = max(1, 256 // res)
    tile_w, text_h = res * scale, 14 * 6
    canvas = Image.new("RGB", (tile_w * n, tile_w + text_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (0, 0, 0)]
    for i in range(n):
        img = Image.fromarray(b.images[i].permute(1, 2, 0).numpy()).resize((tile_w, tile_w))
        canvas.paste(img, (i * tile_w, 0))
        rows = [j for j in range(len(lb.texts)) if int(b.image_index[j]) == i]
        for r, j in enumerate(rows[:6]):
            colour = palette[r % len(palette)]
            if b.boxes is not None and b.is_region is not None and bool(b.is_region[j]):
                x, y, w, h = (float(v) * scale for v in b.boxes[j])
                draw.rectangle([i * tile_w + x, y, i * tile_w + x + w, y + h], outline=colour, width=2)
            draw.text((i * tile_w + 2, tile_w + 2 + 14 * r), lb.texts[j][:40], fill=colour)
    return canvas


class MLflowCallback(TrainCallback):
    """Logs one pre-training run to MLflow (see module docstring)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "pretrain",
                 artifact_location: str | None = None, run_name: str | None = None,
                 log_checkpoints: bool = True, system_metrics: bool = True) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.artifact_location, self.run_name = artifact_location, run_name
        self.log_checkpoints, self.system_metrics = log_checkpoints, system_metrics
        self.run_id: str | None = None

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
            mlflow.log_params(flatten(info.config.to_dict()))
            mlflow.log_dict(info.config.to_dict(), "config.json")
        mlflow.set_tags({**info.tags, "num_params": str(info.num_params), "world_size": str(info.world_size),
                         "resumed_from_step": str(info.start_step)})

    def on_batch_preview(self, batch: LoaderBatch) -> None:
        buf = io.BytesIO()
        preview_image(batch).save(buf, format="PNG")
        mlflow.log_image(Image.open(buf), "preview/first_batch.png")

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics, step=step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        if self.log_checkpoints:
            mlflow.log_artifact(str(path), artifact_path=f"checkpoints/step-{step:08d}")
            mlflow.set_tag("last_checkpoint_step", str(step))

    def on_train_end(self, result: TrainResult) -> None:
        mlflow.log_metrics({"final_step": float(result.step), "train_samples_per_s": result.samples_per_s,
                            "wall_s": result.wall_s}, step=result.step)
        mlflow.end_run()
