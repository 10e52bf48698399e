"""The project's Prefect deployments, served by one process (``python -m flows.deployments``).

``xvlm serve`` starts this beside the Prefect and MLflow servers; a user then runs, e.g.::

    prefect deployment run 'pretrain/pretrain-demo' --watch
    prefect deployment run 'prepare/prepare-4m' -p root=/data/raw --watch   # then pretrain-4m, raw_root=/data/raw

Outputs of served runs go under ``$XVLM_SERVE_HOME/runs/<deployment>``. The 4m / 16m deployments
read the raw annotation files from ``$XVLM_RAW_ROOT`` (or a ``raw_root`` parameter given at run time),
the starting weights (BERT-base, Swin-B) from ``$XVLM_WEIGHTS`` (or ``weights_root``), and use
``$XVLM_GPUS`` processes per node (default 8). Every run checks its start before any stage (the flow's first
step, the same ``check_run`` as ``xvlm pretrain --check``); ``-p check=true`` runs only that check.

On several nodes the deployment run is the head (node 0): ``$XVLM_NNODES``, ``$XVLM_RDZV_ENDPOINT`` (node 0's
``HOST:PORT``) and ``$XVLM_RDZV_ID`` (or ``-p nnodes=4 -p rdzv_endpoint=...`` at run time) go to the flow, and
every other node runs ``xvlm pretrain --preset P --work-dir SHARED --nnodes N --node-rank K
--rdzv-endpoint HOST:PORT --rdzv-id ID`` (docs/training.md, "Multi-node runs").
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment


def deployments(home: Path) -> list[RunnerDeployment]:
    """Every deployment the local services offer, with parameters that run on this machine."""
    from flows.prepare import prepare
    from flows.pretrain import pretrain

    runs = home / "runs"
    raw = os.environ.get("XVLM_RAW_ROOT")  # where the downloaded annotation files are (4m / 16m)
    gpus = int(os.environ.get("XVLM_GPUS", "8"))
    weights = os.environ.get("XVLM_WEIGHTS")  # bert-base-uncased/ + swin_base_patch4_window7_224_22k.pth
    cluster = {"nnodes": int(os.environ.get("XVLM_NNODES", "1")), "node_rank": 0,
               "rdzv_endpoint": os.environ.get("XVLM_RDZV_ENDPOINT"), "rdzv_id": os.environ.get("XVLM_RDZV_ID")}
    return [
        pretrain.to_deployment(
            "pretrain-demo", parameters={"preset": "demo", "work_dir": str(runs / "pretrain-demo")},
            description="The whole DAG on the embedded sample corpus with the debug model (CPU, minutes).",
            tags=["demo"]),
        pretrain.to_deployment(
            "pretrain-4m", parameters={"preset": "4m", "work_dir": str(runs / "pretrain-4m"),
                                       "raw_root": raw, "devices": gpus,
                                       "weights_root": weights, **cluster},
            description="COCO + VG + SBU + CC3M, base model, the paper's recipe, all GPUs via torchrun.",
            tags=["4m"]),
        pretrain.to_deployment(
            "pretrain-16m", parameters={"preset": "16m", "work_dir": str(runs / "pretrain-16m"),
                                        "raw_root": raw, "devices": gpus,
                                        "weights_root": weights, **cluster},
            description="4M + CC12M + Objects365 + OpenImages, base model, all GPUs via torchrun.",
            tags=["16m"]),
        *(prepare.to_deployment(
            f"prepare-{recipe}", parameters={"recipe": recipe, "root": raw or str(home / "raw")},
            description=f"Download, check and lay out the {recipe} raw files under raw_root ($XVLM_RAW_ROOT), "
                        "web images through img2dataset; reruns resume.",
            tags=[recipe, "data"]) for recipe in ("4m", "16m")),
    ]


def main() -> None:
    """Serve every deployment, or those named in ``$XVLM_DEPLOYMENTS`` (comma-separated): a GPU worker
    serves the large ones and a CPU worker the demo (docker/compose.yaml)."""
    home = Path(os.environ.get("XVLM_SERVE_HOME", "serve-home")).resolve()
    chosen = [d for d in deployments(home)
              if not os.environ.get("XVLM_DEPLOYMENTS") or d.name in os.environ["XVLM_DEPLOYMENTS"].split(",")]
    if not chosen:
        raise SystemExit(f"XVLM_DEPLOYMENTS={os.environ['XVLM_DEPLOYMENTS']!r} names no deployment")
    serve(*chosen, pause_on_shutdown=False, print_starting_message=True)


if __name__ == "__main__":
    main()
