"""Caption ranking after training the ``pretrain-demo`` preset, or a variant of it (not a test).

Builds the demo shards once under ``--work`` (sample corpus -> lake -> shards, the library path that
``make demo`` runs through Prefect), trains ``configs/pretrain/demo.json`` with the overrides given, then
reports what tests/inference checks: over the first 64 demo images with distinct first captions, in groups
of 8, for how many the matching caption scores highest by ITC and by ITM (chance: 8 of 64). Also the mean
pairwise cosine of 8 captions' text features (near 1: the text tower gives every caption the same feature)
and each loss's mean over its first / last 20 updates (``xvlm.pipeline.stages.loss_windows``). docs/training.md ("Caption ranking after the demo") lists the runs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_ranking.py --threads 1              # the preset as is
    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_ranking.py --threads 1 --mixing mixed --batch 16 --steps 150
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "demo_ranking")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--batch", type=int, help="data.batch_texts")
    ap.add_argument("--mixing", choices=["mixed", "alternating"])
    ap.add_argument("--region-prob", type=float)
    ap.add_argument("--scale-min", type=float)
    ap.add_argument("--randaugment", type=int, choices=[0, 1])
    ap.add_argument("--lr", type=float)
    ap.add_argument("--vision-lr-mult", type=float)
    ap.add_argument("--negatives", choices=["hard", "uniform"], help="model itm_negatives")
    ap.add_argument("--workers", type=int, help="data.num_workers")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    from tests.inference.test_inference import caption_ranking, ranking_set
    from tests.viz.demo_build import build_demo_shards
    from xvlm.inference import load
    from xvlm.pipeline.stages import loss_windows
    from xvlm.train import PretrainConfig, train

    done = a.work / "build.txt"
    if not done.exists():
        shutil.rmtree(a.work / "data", ignore_errors=True)
        _, _, build = build_demo_shards(a.work / "data")
        done.write_text(str(build))
    build = Path(done.read_text())

    preset = json.loads((REPO / "configs" / "pretrain" / "demo.json").read_text())
    for k in ("_comment", "recipe", "downstream"):
        preset.pop(k, None)
    data, optim = preset["data"], preset["optim"]
    for value, where, key in [(a.steps, preset, "steps"), (a.seed, preset, "seed"), (a.batch, data, "batch_texts"),
                              (a.mixing, data, "mixing"), (a.workers, data, "num_workers"), (a.region_prob, data, "region_prob"),
                              (a.scale_min, data, "scale_min"), (a.lr, optim, "lr"),
                              (a.vision_lr_mult, optim, "vision_lr_mult"),
                              (a.negatives, preset["model_overrides"], "itm_negatives")]:
        if value is not None:
            where[key] = value
    if a.randaugment is not None:
        data["randaugment"] = bool(a.randaugment)
    run = a.work / "run"
    shutil.rmtree(run, ignore_errors=True)
    preset.update(out_dir=str(run), ckpt_every=10**9)
    data["shards"] = [str(build / "shards" / "*.tar")]

    t0 = time.perf_counter()
    res = train(PretrainConfig.from_dict(preset))
    secs = time.perf_counter() - t0

    p = load(run)
    images, captions = ranking_set(build, 64)
    top_itc, top_itm = caption_ranking(p, images, captions)
    with torch.no_grad():
        ids, atts = p.tokenize(captions[:8])
        tf = p.model.text_feat(p.model.encode_text(ids, atts))
        cos = tf @ tf.T
        off_diag = float((cos.sum() - cos.diag().sum()) / (8 * 7))

    first, last = loss_windows(res.losses)  # each loss over the updates that computed it

    print(json.dumps({"steps": res.step, "updates": res.updates, "train_s": round(secs), "threads": a.threads,
                      "top_itc_of_64": top_itc, "top_itm_of_64": top_itm, "caption_cosine": round(off_diag, 3),
                      **{k: [round(first[k], 3), round(last[k], 3)] for k in first}}))


if __name__ == "__main__":
    main()
