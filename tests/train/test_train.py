"""Training loop: checkpoint contract, optimizer groups / schedule, SIGKILL + resume bitwise (dropout, 2 loader
workers), 2-rank DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.train.shardgen import write_shards
from xvlm.data.loader import DataConfig, PretrainStream
from xvlm.errors import BadInput
from xvlm.models.objective import pretrain_losses
from xvlm.train import PretrainConfig
from xvlm.train.checkpoint import CHECKPOINT_KEYS, REQUIRED_KEYS, load_checkpoint
from xvlm.train.config import OptimConfig
from xvlm.train.loop import build_train_model, to_device
from xvlm.train.optim import build_optimizer, build_scheduler, is_new_param, warmup_linear

REPO = Path(__file__).resolve().parents[2]


def small_config(tmp: Path, shards: list[str], **kw) -> PretrainConfig:
    cfg = PretrainConfig(
        out_dir=str(tmp / "run"), model="xvlm-debug",
        model_overrides={"vision": {"img_size": 64, "window_size": 2},
                         "text": {"hidden_dropout": 0.0, "attn_dropout": 0.0}},
        data=DataConfig(shards=shards, image_res=64, batch_texts=8, shuffle_buffer=16, num_workers=0,
                        max_tokens=24, max_masks=6),
        steps=8, precision="fp32", device="cpu", ckpt_every=2, deterministic=True, log_every=1)
    cfg.optim.warmup_steps = 2
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return write_shards(tmp_path_factory.mktemp("shards"), 32, 2, size=(128, 96))


def test_config_json_round_trip_and_strict(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, ["a.tar"])
    again = PretrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    with pytest.raises(ValueError, match=r"^pretrain: unknown keys \['stepz'\]"):
        PretrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match=r"^pretrain\.data: unknown keys \['batch'\]"):
        PretrainConfig.from_dict({"data": {"batch": 3}})


def test_param_groups_and_schedule(tmp_path: Path) -> None:
    model = build_train_model(small_config(tmp_path, ["a.tar"]))
    opt = build_optimizer(model, PretrainConfig().optim)
    by_name = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        names = [by_name[id(p)] for p in g["params"]]
        new = g["name"].startswith("new")
        assert all(is_new_param(n) == new for n in names)
        assert g["lr"] == pytest.approx(1e-4 * (2.0 if new else 1.0))
        assert (g["weight_decay"] == 0.0) == g["name"].endswith("nodecay")
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert [g["name"] for g in opt.param_groups] == ["pre-decay", "new-decay", "pre-nodecay", "new-nodecay"]
    # a from-scratch vision tower's own groups at lr x vision_lr_mult (only when != 1: old checkpoints resume)
    opt = build_optimizer(model, OptimConfig(vision_lr_mult=0.1))
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"new-decay": 2e-4, "new-nodecay": 2e-4, "pre-decay": 1e-4, "pre-nodecay": 1e-4,
                                 "vision-pre-decay": 1e-5, "vision-pre-nodecay": 1e-5})
    for g in opt.param_groups:
        names = [by_name[id(p)] for p in g["params"]]
        assert all(n.startswith("vision_encoder.") == g["name"].startswith("vision-") for n in names), g["name"]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    sched = build_scheduler(opt, OptimConfig(vision_lr_mult=0.1, warmup_steps=4), 10)
    opt.step()
    sched.step()  # step 1 of warmup 4: every group at half its lr, the 10x ratio kept
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["vision-pre-decay"] == pytest.approx(0.5e-5) and lrs["pre-decay"] == pytest.approx(0.5e-4)
    assert is_new_param("cross_encoder.layer.0.crossattention.self.key.weight")
    assert is_new_param("temp") and is_new_param("bbox_head.0.weight")
    assert not is_new_param("cross_encoder.layer.0.attention.self.key.weight")
    f = warmup_linear(4, 10)
    assert [round(f(s), 4) for s in range(11)] == [0.25, 0.5, 0.75, 1.0, 1.0, 0.8333, 0.6667, 0.5, 0.3333,
                                                     0.1667, 0.0]


def _run_child(cfg_path: Path, kill_at: int | None) -> subprocess.CompletedProcess:
    code = (
        "import os, signal, sys\n"
        "from xvlm.train import PretrainConfig, TrainCallback, train\n"
        "class Kill(TrainCallback):\n"
        "    def on_step_end(self, step, metrics):\n"
        f"        if step == {kill_at}: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"train(PretrainConfig.from_json({str(cfg_path)!r}), [Kill()])\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def _losses(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "losses.jsonl").read_text().splitlines()]


# The presets' dropout (0.1 in the text / cross encoders) plus drop path in Swin: random on every step.
DROPOUT = {"vision": {"img_size": 64, "window_size": 2, "drop_path_rate": 0.1},
           "text": {"hidden_dropout": 0.1, "attn_dropout": 0.1}}


def test_sigkill_then_resume_reproduces_the_loss_sequence(tmp_path: Path, shards: list[str], one_thread) -> None:
    """Dropout 0.1, 2 loader workers and a checkpoint at step 3 (not a multiple of the workers): a run
    SIGKILLed after step 5 and resumed logs bitwise the uninterrupted run's losses. Only the killed run is a
    child process; the reference and the resume run in this one (an interpreter start costs ~10 s here)."""
    from xvlm.train import train

    def config(name: str, **kw) -> PretrainConfig:
        cfg = small_config(tmp_path / name, shards, steps=7, ckpt_every=3, model_overrides=DROPOUT, **kw)
        cfg.data.num_workers = 2
        return cfg

    reference = [dict(r) for r in train(config("ref")).losses]
    assert [r["step"] for r in reference] == list(range(1, 8))

    cfg = config("kill")
    cfg_path = tmp_path / "kill.json"
    cfg_path.write_text(cfg.to_json())
    killed = _run_child(cfg_path, kill_at=5)  # checkpoint at step 3, killed after step 5
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _losses(Path(cfg.out_dir)) == reference[:5]
    other = config("kill")
    other.data.num_workers = 1
    with pytest.raises(BadInput, match=r"world_size=1 x num_workers=2, .* x num_workers=1: .*repeat and skip"):
        train(other)
    train(cfg)
    assert _losses(Path(cfg.out_dir)) == reference  # bitwise: floats round-trip exactly through JSON

    state = load_checkpoint(Path(cfg.out_dir) / "checkpoints" / "step-00000007.pt")
    assert tuple(state) == CHECKPOINT_KEYS  # pinned key names and order
    assert (*REQUIRED_KEYS, "model_info") == CHECKPOINT_KEYS  # model_info: added, optional on load
    assert REQUIRED_KEYS == ("model", "optimizer", "lr_scheduler", "dataloader", "train_state", "rng", "config")
    assert set(state["model_info"]) == {"model_config", "image_res", "vocab_sha256", "init", "from_scratch"}
    assert state["model_info"]["model_config"]["text"]["hidden_dropout"] == 0.1
    assert set(state["train_state"]) == {"step", "updates", "samples_seen", "tokens_seen"}
    assert set(state["dataloader"]) == {"batches", "num_workers", "world_size", "seed"}
    assert [set(r) for r in state["rng"]] == [{"torch", "cuda", "python", "numpy", "itm"}]  # one per rank
    assert state["train_state"]["step"] == 7 and state["dataloader"]["batches"] == 7
    assert not list((Path(cfg.out_dir) / "checkpoints").glob(".*tmp*"))  # no torn temp files left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, cfg_json: str, port: int) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"})
    from xvlm.train import train

    train(PretrainConfig.from_dict(json.loads(cfg_json)))


@pytest.mark.timeout(300)
def test_two_rank_gloo_ddp_matches_single_process_itc(tmp_path: Path, shards: list[str]) -> None:
    cfg = small_config(tmp_path, shards, steps=3, ckpt_every=100)
    mp.spawn(_ddp_worker, args=(cfg.to_json(), _free_port()), nprocs=2, join=True)
    logged = _losses(Path(cfg.out_dir))
    assert [r["step"] for r in logged] == [1, 2, 3]
    state = load_checkpoint(Path(cfg.out_dir) / "checkpoints" / "step-00000003.pt")
    assert state["dataloader"]["world_size"] == 2 and len(state["rng"]) == 2

    # Step 1's ITC is a global-batch loss: it must equal single-process ITC over both ranks' batches.
    torch.manual_seed(cfg.seed)
    model = build_train_model(cfg)
    b0, b1 = (next(iter(PretrainStream(cfg.data, rank=r, world_size=2))).batch for r in (0, 1))
    n0 = b0.images.shape[0]
    width = max(b0.text_ids.shape[1], b1.text_ids.shape[1])

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]))

    def reg(b):
        return b.boxes if b.boxes is not None else torch.tensor([[0.0, 0, 64, 64]]).expand(len(b.text_ids), 4)

    joint = type(b0)(
        images=torch.cat([b0.images, b1.images]), image_index=torch.cat([b0.image_index, b1.image_index + n0]),
        text_ids=torch.cat([pad(b0.text_ids), pad(b1.text_ids)]),
        text_atts=torch.cat([pad(b0.text_atts), pad(b1.text_atts)]),
        mlm_ids=torch.cat([pad(b0.mlm_ids), pad(b1.mlm_ids)]), mlm_pos=torch.cat([b0.mlm_pos, b1.mlm_pos]),
        mlm_labels=torch.cat([b0.mlm_labels, b1.mlm_labels]), boxes=torch.cat([reg(b0), reg(b1)]))
    model.train()
    itc = pretrain_losses(model, to_device(joint, torch.device("cpu"), model.cfg.image_mean,
                                           model.cfg.image_std))["itc"]
    assert logged[0]["itc"] == pytest.approx(float(itc), rel=1e-4)


def _spawn(cfg: PretrainConfig) -> list[dict]:
    mp.spawn(_ddp_worker, args=(cfg.to_json(), _free_port()), nprocs=2, join=True)
    return _losses(Path(cfg.out_dir))


@pytest.mark.timeout(600)
def test_two_rank_fsdp_resumes_exactly(tmp_path: Path, shards: list[str]) -> None:
    """FSDP2 (gloo, CPU): a run stopped at step 2 then resumed equals the uninterrupted one: the checkpoint
    holds the gathered full optimizer state, re-sharded on load. (FSDP computing DDP's losses is checked in
    tests/train/test_uneven_ranks.py, on ranks with and without boxes.)"""
    full = _spawn(small_config(tmp_path / "fsdp", shards, steps=4, ckpt_every=100, parallel="fsdp"))
    assert [r["step"] for r in full] == [1, 2, 3, 4]

    cut = small_config(tmp_path / "cut", shards, steps=4, ckpt_every=100, parallel="fsdp", stop_after=2)
    assert [r["step"] for r in _spawn(cut)] == [1, 2]
    state = load_checkpoint(Path(cut.out_dir) / "checkpoints" / "step-00000002.pt")
    assert tuple(state) == CHECKPOINT_KEYS
    adam = {k.removeprefix("model."): v for k, v in state["optimizer"]["state"].items()}
    assert adam and set(adam) <= set(state["model"])  # name-keyed, every parameter's state is full size:
    assert all(v["exp_avg"].shape == state["model"][k].shape for k, v in adam.items())
    cut.stop_after = None
    assert _spawn(cut) == full  # bitwise: same sharding, same reduction order


def test_fine_tuning_groups_come_from_the_same_builder() -> None:
    """``prefix_param_groups`` (fine-tuning) and ``param_groups`` (pre-training) are both ``grouped_params``: the
    same no-decay rule, every trainable parameter exactly once, lr = base x the first matching prefix's
    multiplier, groups in first-seen order. (Checked against the two builders it replaced: identical groups,
    order, lr and weight decay on the debug model.)"""
    from xvlm.models.xvlm import build_model
    from xvlm.train.optim import no_decay, prefix_param_groups

    model = build_model("xvlm-debug")
    mults = {"vision_encoder.": 0.1, "itm_head.": 2.0, "itm_head.bias": 5.0}   # first match wins: bias x2
    groups = prefix_param_groups(model, 1e-3, 0.01, mults)
    seen = {id(p): g for g in groups for p in g["params"]}
    assert len(seen) == sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        g = seen[id(p)]
        mult = 0.1 if name.startswith("vision_encoder.") else 2.0 if name.startswith("itm_head.") else 1.0
        assert g["lr"] == pytest.approx(1e-3 * mult) and g["lr_mult"] == mult
        assert g["weight_decay"] == (0.0 if no_decay(name, p) else 0.01)
    first = next(iter(model.named_parameters()))[0]
    assert groups[0]["params"][0] is dict(model.named_parameters())[first]
