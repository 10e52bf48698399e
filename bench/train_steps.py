"""Debug-model training steps/s on CPU (regression tracking), on synthetic shape-scene shards.

    .venv/bin/python bench/train_steps.py --steps 20 --res 64 --batch 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.train.shardgen import write_shards  # noqa: E402
from xvlm.data.loader import DataConfig  # noqa: E402
from xvlm.train import PretrainConfig, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        shards = write_shards(Path(d) / "shards", 48, 2, size=(128, 96))
        cfg = PretrainConfig(out_dir=f"{d}/run", model="xvlm-debug",
                             model_overrides={"vision": {"img_size": args.res, "window_size": 2}},
                             data=DataConfig(shards=shards, image_res=args.res, batch_texts=args.batch,
                                             shuffle_buffer=16, num_workers=0),
                             steps=args.steps, precision="fp32", device="cpu", ckpt_every=10**9)
        t0 = time.perf_counter()
        res = train(cfg)
        wall = time.perf_counter() - t0
    print(json.dumps({"steps": res.step, "loop_steps_per_s": round(res.step / res.wall_s, 2),
                      "samples_per_s": round(res.samples_per_s, 1), "wall_incl_setup_s": round(wall, 1)}))


if __name__ == "__main__":
    main()
