"""How the training stage starts its processes: in-process, ``torchrun`` on one node, ``torchrun`` on N nodes
through a c10d rendezvous, or nothing at all under an external launcher (SLURM ``srun``, a Kubernetes
operator) that already started one process per rank.

Roles on N nodes. The *head* (node 0, or global rank 0 under an external launcher) runs the whole DAG: data
stages, training, evaluation, and so keeps the lineage (the MLflow run and its tags come from the config it
writes). Every other node (or rank) is a *follower*: it runs no data stage (N copies of the ingest writing one
shared lake would race) and waits for the head's launch file ``{out_dir}/launch-{rdzv_id}.json``, which
holds the exact ``PretrainConfig`` the head trains, then trains with it. So every rank reads one config,
``out_dir`` must be on a filesystem all nodes share (it holds the checkpoints every rank resumes from), and
the head deletes the launch file when its training ends (a later launch never finds a stale one).

Rendezvous: ``torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID``; node 0
hosts the c10d store (``is_host``), so the endpoint is node 0's address (Kubernetes: a headless service
that resolves to the head pod). c10d numbers the ranks itself; ``node_rank`` only picks the head and the
store's host. ``--standalone`` only when N == 1. docs/training.md, "Multi-node runs".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xvlm import fsio
from xvlm.errors import BadInput, MissingInput
from xvlm.pipeline.config import REPO
from xvlm.train import checkpoint as ckpt
from xvlm.train.config import PretrainConfig

# What an external launcher sets for every process it starts (torchrun sets the same for its workers).
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR")


@dataclass(frozen=True)
class Launch:
    """The process layout of a training run.

    ``devices``: processes per node (GPUs, or CPU processes with gloo); ``nnodes``: nodes; ``node_rank``:
    this node's index (0 is the head); ``rdzv_endpoint``: ``host:port`` of node 0's c10d store (needed when
    ``nnodes > 1``); ``rdzv_id``: the job's id, the same on every node and unique per job (None: the
    scheduler's job id, ``$SLURM_JOB_ID``, else ``xvlm``); ``wait_s``: how long a follower waits for the
    head's launch file (the head may first build the data)."""

    devices: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    wait_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.devices < 1 or self.nnodes < 1:
            raise BadInput(f"devices and nnodes must be >= 1, got {self.devices} and {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise BadInput(f"node_rank {self.node_rank} must be in [0, nnodes={self.nnodes})")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise BadInput(f"nnodes={self.nnodes} needs rdzv_endpoint HOST:PORT (node 0's address)")
        if self.rdzv_endpoint and ":" not in self.rdzv_endpoint:
            raise BadInput(f"rdzv_endpoint {self.rdzv_endpoint!r} must be HOST:PORT")

    @property
    def job_id(self) -> str:
        return self.rdzv_id or os.environ.get("SLURM_JOB_ID") or "xvlm"

    @property
    def external(self) -> bool:
        """Started by an external launcher: this process already is one rank of the job."""
        return all(k in os.environ for k in LAUNCHER_ENV) and int(os.environ["WORLD_SIZE"]) > 1

    @property
    def is_head(self) -> bool:
        """Runs the DAG (data stages, evaluation, lineage); a follower only trains."""
        return int(os.environ["RANK"]) == 0 if self.external else self.node_rank == 0

    @property
    def processes(self) -> int:
        return int(os.environ["WORLD_SIZE"]) if self.external else self.devices * self.nnodes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def torchrun_argv(launch: Launch, cfg_path: str | Path, experiment: str, tracking_uri: str | None,
                  ) -> list[str]:
    """The torchrun command line of this node's pre-training (``xvlm.train``)."""
    argv = [*torchrun_prefix(launch), "-m", "xvlm.train", "--config", str(cfg_path), "--experiment", experiment]
    if tracking_uri:
        argv += ["--mlflow", tracking_uri]
    return argv


def torchrun_prefix(launch: Launch) -> list[str]:
    """``torchrun`` and its layout options (``--standalone`` on one node, c10d on several); the module to run
    follows (``xvlm.train``, ``xvlm.pipeline.finetune_launch``)."""
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    argv = [exe, f"--nproc-per-node={launch.devices}"]
    if launch.nnodes == 1:
        argv.insert(1, "--standalone")
    else:
        argv += [f"--nnodes={launch.nnodes}", f"--node-rank={launch.node_rank}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={launch.rdzv_endpoint}", f"--rdzv-id={launch.job_id}",
                 f"--rdzv-conf=is_host={int(launch.node_rank == 0)}", "--max-restarts=0"]
    return argv


def launch_file(out_dir: str | Path, launch: Launch) -> Path:
    return Path(out_dir) / f"launch-{launch.job_id}.json"


@contextlib.contextmanager
def announced(cfg: PretrainConfig, launch: Launch, experiment: str, tracking_uri: str | None) -> Iterator[None]:
    """Head: while the block trains, the followers' launch file holds ``cfg`` (nothing on a single node)."""
    if launch.nnodes == 1 and not launch.external:  # one node: torchrun starts every worker itself
        yield
        return
    path = launch_file(cfg.out_dir, launch)
    fsio.write_text(path, json.dumps({"config": cfg.to_dict(), "experiment": experiment,
                                      "tracking_uri": tracking_uri}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def torchrun(cfg: PretrainConfig, launch: Launch, tracking_uri: str | None, experiment: str) -> dict[str, Any]:
    """Head: write ``cfg`` to ``out_dir/config.json`` (and, on several nodes, the launch file the followers
    wait for), run this node's torchrun, and return its result (the last stdout line of ``xvlm.train``) with
    the newest checkpoint (c10d may put rank 0, the writer, on another node) and the MLflow run id."""
    out = Path(cfg.out_dir)
    cfg_path = fsio.write_text(out / "config.json", cfg.to_json())
    with announced(cfg, launch, experiment, tracking_uri):
        result = run_json(torchrun_argv(launch, cfg_path, experiment, tracking_uri))
    latest = ckpt.latest_checkpoint(out / "checkpoints")
    result["checkpoint"] = str(latest) if latest else None
    run_id_file = out / "mlflow_run_id"
    result["mlflow_run_id"] = run_id_file.read_text().strip() if run_id_file.is_file() else None
    return result


def wait_for_head(out_dir: str | Path, launch: Launch, poll_s: float = 0.5) -> dict[str, Any]:
    """Follower: the head's launch file (config, experiment, tracking URI), once it appears."""
    path = launch_file(out_dir, launch)
    deadline = time.monotonic() + launch.wait_s
    while not path.is_file():
        if time.monotonic() > deadline:
            raise MissingInput(f"{path}: the head node (node_rank 0) did not start training within "
                               f"{launch.wait_s:g} s; is it running with the same work_dir and rdzv_id?")
        time.sleep(poll_s)
    return json.loads(path.read_text())


def follow(out_dir: str | Path, launch: Launch) -> dict[str, Any]:
    """Follower node (or rank): train with the head's config. Through this node's torchrun, or in this process
    under an external launcher. Returns this node's result (``step``, ``checkpoint``: None off rank 0)."""
    head = wait_for_head(out_dir, launch)
    cfg = PretrainConfig.from_dict(head["config"])
    if launch.external:
        from xvlm.train import train

        result = train(cfg)
        return {"step": result.step, "updates": result.updates, "checkpoint": None}
    cfg_path = fsio.write_text(Path(out_dir) / f"config-node{launch.node_rank}.json", cfg.to_json())
    result = run_json(torchrun_argv(launch, cfg_path, head["experiment"], head["tracking_uri"]))
    latest = ckpt.latest_checkpoint(Path(cfg.out_dir) / "checkpoints")  # rank 0 may sit on any node
    result["checkpoint"] = str(latest) if latest else None
    return result


def run_json(argv: list[str]) -> dict[str, Any]:
    """Run ``argv`` (a torchrun) from the repository root; its last stdout line is the JSON result."""
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
