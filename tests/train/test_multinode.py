"""Multi-node launching (issue 22 item 3): 2 "nodes" x 1 process on 127.0.0.1 through torchrun's c10d
rendezvous, as ``xvlm pretrain --nnodes 2 --node-rank K --rdzv-endpoint HOST:PORT`` starts them, and the
rules of ``xvlm.pipeline.launch`` (which node is the head, no relaunch under an external launcher)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.train.shardgen import write_shards
from tests.train.test_train import _free_port, _losses, small_config
from xvlm.errors import BadInput
from xvlm.pipeline import launch as launch_mod
from xvlm.pipeline import stages
from xvlm.pipeline.launch import Launch, torchrun_argv
from xvlm.train.checkpoint import load_checkpoint

EXTERNAL = {"RANK": "1", "WORLD_SIZE": "16", "MASTER_ADDR": "head", "MASTER_PORT": "29500", "LOCAL_RANK": "1"}


def test_launch_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--standalone only on one node; c10d with node 0 as the store's host on several; an external launcher's
    ranks train in this process (rank 0 as the head, announcing its config), never through torchrun."""
    for k in EXTERNAL:
        monkeypatch.delenv(k, raising=False)
    one = torchrun_argv(Launch(devices=2), "c.json", "exp", None)
    assert one[1:3] == ["--standalone", "--nproc-per-node=2"] and "--nnodes=2" not in one
    two = torchrun_argv(Launch(8, 2, 1, "10.0.0.1:29400", "job7"), "c.json", "exp", "sqlite:///m.db")
    assert "--standalone" not in two
    assert {"--nnodes=2", "--node-rank=1", "--rdzv-backend=c10d", "--rdzv-endpoint=10.0.0.1:29400",
            "--rdzv-id=job7", "--rdzv-conf=is_host=0", "--nproc-per-node=8"} <= set(two)
    assert two[-2:] == ["--mlflow", "sqlite:///m.db"]
    with pytest.raises(BadInput, match="needs rdzv_endpoint"):
        Launch(nnodes=2)
    with pytest.raises(BadInput, match=r"node_rank 2 must be in \[0, nnodes=2\)"):
        Launch(nnodes=2, node_rank=2, rdzv_endpoint="h:1")
    assert not Launch().external and Launch(nnodes=2, node_rank=1, rdzv_endpoint="h:1").is_head is False

    monkeypatch.setattr(launch_mod, "run_json", lambda argv: pytest.fail(f"relaunched: {argv}"))
    calls: list[tuple[str, list]] = []

    def fake_train(cfg, callbacks=()):
        announced = sorted(p.name for p in Path(cfg.out_dir).glob("launch-*.json"))
        calls.append((cfg.out_dir, announced))
        return type("R", (), {"step": 3, "updates": 3, "last_checkpoint": None, "losses": [],
                              "samples_per_s": 1.0, "wall_s": 1.0})()

    monkeypatch.setattr("xvlm.train.train", fake_train)
    monkeypatch.setattr("xvlm.tracking.tracking_uri", lambda: None)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    cfg = small_config(tmp_path, ["a.tar"])
    for k, v in {**EXTERNAL, "RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    head = Launch()  # the CLI's defaults: the layout comes from the launcher's environment
    assert head.external and head.is_head and head.processes == 16 and head.job_id == "4242"
    assert stages.train_stage(cfg, head, "exp", tmp_path)["step"] == 3
    assert calls == [(cfg.out_dir, ["launch-4242.json"])]  # announced while training, removed after
    assert not list(Path(cfg.out_dir).glob("launch-*.json"))

    monkeypatch.setenv("RANK", "5")
    follower = Launch(wait_s=0.0)
    assert not follower.is_head
    with pytest.raises(Exception, match=r"launch-4242\.json: the head node .* did not start training"):
        stages.follow_stage(tmp_path, follower)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "launch-4242.json").write_text(json.dumps(
        {"config": cfg.to_dict(), "experiment": "exp", "tracking_uri": None}))
    assert stages.follow_stage(tmp_path, follower)["step"] == 3
    assert calls[-1][0] == cfg.out_dir  # the head's config, not one of its own


@pytest.mark.timeout(300)
def test_two_nodes_through_the_c10d_rendezvous(tmp_path: Path) -> None:
    """Node 0 (the head) announces its config and runs its torchrun; node 1 waits for that, then joins the
    same c10d rendezvous on 127.0.0.1: one 2-rank gloo job, 2 steps of the debug model."""
    shards = write_shards(tmp_path / "shards", 16, 2, size=(128, 96))
    cfg = small_config(tmp_path, shards, steps=2, ckpt_every=100)
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [Launch(1, 2, rank, endpoint, "test-2-nodes", wait_s=120.0) for rank in (0, 1)]
    results: dict[int, object] = {}

    def node(rank: int) -> None:
        try:
            results[rank] = (stages.torchrun(cfg, nodes[0], None, "pretrain") if rank == 0
                             else launch_mod.follow(cfg.out_dir, nodes[1]))
        except Exception as exc:  # noqa: BLE001 - reported below, with the other node's outcome
            results[rank] = exc

    threads = [threading.Thread(target=node, args=(r,)) for r in (1, 0)]  # the follower waits first
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=280)
    assert all(isinstance(r, dict) for r in results.values()) and len(results) == 2, results
    assert results[0]["step"] == results[1]["step"] == 2
    assert [r["step"] for r in _losses(Path(cfg.out_dir))] == [1, 2]
    assert results[1]["checkpoint"] == results[0]["checkpoint"]  # the shared file, wherever rank 0 ran
    state = load_checkpoint(results[0]["checkpoint"])
    assert state["dataloader"]["world_size"] == 2 and len(state["rng"]) == 2
    assert not list(Path(cfg.out_dir).glob("launch-*.json"))  # the head removed its announcement
