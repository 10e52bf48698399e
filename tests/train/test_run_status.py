"""A pre-training run that stops early ends FAILED or KILLED in MLflow, never RUNNING (issue 22, item 5).

One child process runs both cases in turn (importing torch + xvlm + mlflow and creating MLflow's SQLite
tables cost ~25 s on the 2-core box, paid once): a run whose callback raises at step 2 (FAILED), then a run
the parent sends SIGTERM to (KILLED, exit 143).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train.shardgen import write_shards
from tests.train.test_train import REPO, small_config

CHILD = """
import sys
from xvlm.train import PretrainConfig, TrainCallback, train
from xvlm.tracking import MLflowCallback

uri, art, failing, killed = sys.argv[1:5]

class Boom(TrainCallback):
    def on_step_end(self, step, metrics):
        if step == 2:
            raise RuntimeError("boom at step 2")

def callback():
    return MLflowCallback(uri, "status", artifact_location=art, system_metrics=False, log_checkpoints=False)

cb = callback()
try:
    train(PretrainConfig.from_json(failing), [cb, Boom()])
except RuntimeError as e:
    print("failed run", cb.run_id, e, flush=True)
import mlflow
assert mlflow.active_run() is None  # the process can start the next run
train(PretrainConfig.from_json(killed), [callback()])  # the parent sends SIGTERM during this one
"""


@pytest.mark.timeout(300)
def test_an_error_ends_the_run_failed_and_sigterm_killed(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    shards = write_shards(tmp_path / "shards", 16, 2, size=(128, 96))
    paths = []
    for name, steps in (("failing", 5), ("killed", 500)):
        cfg = small_config(tmp_path / name, shards, steps=steps, ckpt_every=1000)
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(cfg.to_json())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, uri, str(tmp_path / "art"), *map(str, paths)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "killed" / "run"
    losses = run_dir / "losses.jsonl"
    deadline = time.monotonic() + 240
    while not (losses.is_file() and len(losses.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # what torchrun sends the other ranks when one fails, or a cancel
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]

    client = MlflowClient(uri)
    failed = client.get_run(out.split()[2])
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "RuntimeError: boom at step 2"
    killed = client.get_run((run_dir / "mlflow_run_id").read_text().strip())
    assert killed.info.status == "KILLED" and killed.data.tags["error"].startswith("SystemExit: 143")


def test_a_sigterm_during_a_tracking_call_takes_effect_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupting MLflow's SQLite write left the store locked, so ``end_run(KILLED)`` failed and the run
    stayed RUNNING (the CI failure of the test above): the signal must wait for the write to finish."""
    import threading

    import mlflow
    from mlflow.tracking import MlflowClient

    from xvlm import tracking

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set from the main thread")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    cb = tracking.MLflowCallback(uri, "sigterm", system_metrics=False)
    cb.run_id = mlflow.start_run().info.run_id
    cb._arm()
    try:
        assert signal.getsignal(signal.SIGTERM) is tracking._raise_system_exit
        real = mlflow.log_metrics

        def log_metrics_and_get_killed(metrics: dict[str, float], step: int) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the write is in progress
            real(metrics, step=step)

        monkeypatch.setattr(mlflow, "log_metrics", log_metrics_and_get_killed)
        with pytest.raises(SystemExit) as exit_info:
            cb.on_step_end(7, {"loss": 1.5})
        assert exit_info.value.code == 128 + signal.SIGTERM
        cb.on_train_error(exit_info.value)
    finally:
        cb._disarm()
        if mlflow.active_run() is not None:
            mlflow.end_run()
    run = MlflowClient(uri).get_run(cb.run_id)
    assert run.info.status == "KILLED" and run.data.metrics == {"loss": 1.5}  # the write finished first
    assert signal.getsignal(signal.SIGTERM) is not tracking._raise_system_exit
