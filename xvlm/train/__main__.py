"""``python -m xvlm.train --config run.json [--steps N] [--mlflow URI]``; launch with ``torchrun`` for DDP.

torchrun --nproc-per-node 8 -m xvlm.train --config run.json --mlflow sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import json
import logging

from xvlm.train.config import PretrainConfig
from xvlm.train.loop import TrainCallback, train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xvlm.train", description=__doc__)
    ap.add_argument("--config", required=True, help="PretrainConfig JSON")
    ap.add_argument("--steps", type=int, help="override config.steps")
    ap.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this step")
    ap.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    ap.add_argument("--mlflow", help="MLflow tracking URI; enables the MLflow callback")
    ap.add_argument("--experiment", default="pretrain")
    ap.add_argument("--artifact-location", help="artifact root for a new MLflow experiment")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = PretrainConfig.from_json(args.config)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.stop_after is not None:
        cfg.stop_after = args.stop_after
    if args.no_resume:
        cfg.resume = False
    callbacks: list[TrainCallback] = []
    if args.mlflow:
        from xvlm.tracking import MLflowCallback

        callbacks.append(MLflowCallback(args.mlflow, args.experiment, args.artifact_location))
    result = train(cfg, callbacks)
    print(json.dumps({"step": result.step, "updates": result.updates,
                      "checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
                      "samples_per_s": result.samples_per_s}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
