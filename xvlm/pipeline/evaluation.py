"""The evaluation stage's skip rule: a checkpoint is evaluated once per settings, and reruns reuse the result.

``plan_evaluation`` computes the stage's key (the checkpoint's bytes, every ``DownstreamConfig`` setting,
the model name and the downstream data root's path) and its folder ``work_dir/eval/<key[:16]>``. When
``result.json`` is there and every MLflow run it names still exists (FINISHED, not deleted), the plan
carries that result and the stage is skipped; a wiped tracking store evaluates again. After the
downstream runs, ``finish_evaluation`` writes ``result.json`` last and atomically, so a killed stage leaves
no marker. ``flows/evaluate.py`` (flow ``evaluation``) runs the tasks in between.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xvlm import fsio
from xvlm.pipeline.config import RG_TASKS, VL_TASKS, DownstreamConfig

log = logging.getLogger(__name__)


@dataclass
class EvaluationPlan:
    key: str
    out: Path
    result: dict[str, Any]  # what finish_evaluation completes (or, when reused, the earlier result)
    reused: bool = False

    @property
    def rg_tasks(self) -> tuple[str, ...]:
        return tuple(t for t in RG_TASKS if t in self.result["evaluations"])

    @property
    def vl_tasks(self) -> list[str]:
        return [t for t in VL_TASKS if t in self.result["evaluations"]]


def evaluation_key(checkpoint: str, raw_root: str, model: str, settings: DownstreamConfig) -> str:
    """What decides an evaluation's outcome: the checkpoint's bytes, every setting, and the data root
    (its path: the downstream files are not hashed, they are large for real data)."""
    blob = json.dumps({"checkpoint": fsio.sha256_file(checkpoint), "raw_root": str(Path(raw_root).resolve()),
                       "model": model, "settings": dataclasses.asdict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_ids(result: Any) -> list[str]:
    """Every ``run_id`` value in a (nested) evaluation result."""
    if isinstance(result, dict):
        return [v for k, v in result.items() if k == "run_id" and isinstance(v, str)] + [
            r for v in result.values() for r in run_ids(v)]
    return []


def plan_evaluation(checkpoint: str, raw_root: str, work_dir: str | Path, pretrain_run_id: str | None,
                    model: str, settings: DownstreamConfig) -> EvaluationPlan:
    """The stage's key and folder, and the earlier result when it can be reused (module docstring)."""
    from xvlm import tracking

    key = evaluation_key(checkpoint, raw_root, model, settings)
    out = Path(work_dir) / "eval" / key[:16]
    marker = out / "result.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if tracking.runs_exist(run_ids(done)):
            log.info("checkpoint %s already evaluated with these settings (%s): skipped", checkpoint, marker)
            return EvaluationPlan(key, out, {**done, "skipped": True}, reused=True)
        log.info("%s names MLflow runs that no longer exist: evaluating again", marker)
    return EvaluationPlan(key, out, {"key": key, "out": str(out), "checkpoint": checkpoint,
                                     "pretrain_run_id": pretrain_run_id, "evaluations": list(settings.evaluations)})


def finish_evaluation(plan: EvaluationPlan, results: dict[str, Any]) -> dict[str, Any]:
    """Write the marker (last, atomically) and return the stage's result with ``skipped`` False."""
    done = {**plan.result, **results}
    fsio.write_text(plan.out / "result.json", json.dumps(done, indent=1, default=str))
    return {**done, "skipped": False}
