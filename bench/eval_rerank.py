"""Retrieval evaluation cost vs k: ITC stage (one matrix product) and ITM re-rank (linear in k).

1K images x 5K texts (5 per image) on the debug model, CPU. Features come from the model on random
images / token ids (the cost of the two stages does not depend on what the pixels show). Measured:
- ITC stage: ``itc_similarity`` (one ``image_feat @ text_feat.T``) against a baseline in the same
  invocation that scores one query image at a time (N_img matrix-vector products);
- re-rank at k = 16, 64, 128: seconds, distinct (image, text) pairs scored, seconds per pair and the
  time ratio against k = 16 (linear in k means ratio ~ k / 16, i.e. constant seconds per pair).

    .venv/bin/python bench/eval_rerank.py [--images 1000 --texts-per-image 5 --ks 16 64 128 --threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from xvlm.eval.retrieval import RetrievalFeatures, itc_similarity, rerank
from xvlm.models.xvlm import build_model


@torch.no_grad()
def features(model, n_img: int, n_txt: int, length: int = 30, batch: int = 256) -> RetrievalFeatures:
    g = torch.Generator().manual_seed(0)
    res = model.cfg.vision.img_size
    embeds, atts, ifeat, hidden, tfeat = [], [], [], [], []
    for s in range(0, n_img, batch):
        x = torch.randn(min(batch, n_img - s), 3, res, res, generator=g)
        p, _ = model.encode_image(x)
        c = model.concepts(p, torch.arange(len(x)), None)
        embeds.append(c.embeds)
        atts.append(c.atts)
        ifeat.append(model.image_feat(c.embeds[:, 0]))
    ids = torch.randint(1000, 5000, (n_txt, length), generator=g)
    ids[:, 0] = 101
    tatts = torch.ones_like(ids)
    for s in range(0, n_txt, batch):
        h = model.encode_text(ids[s:s + batch], tatts[s:s + batch])
        hidden.append(h)
        tfeat.append(model.text_feat(h))
    return RetrievalFeatures(torch.cat(embeds), torch.cat(atts), torch.cat(ifeat), torch.cat(hidden), tatts,
                             torch.cat(tfeat))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--texts-per-image", type=int, default=5)
    ap.add_argument("--ks", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--itm-batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model("xvlm-debug").eval()
    n_img, n_txt = a.images, a.images * a.texts_per_image
    t = time.perf_counter()
    feats = features(model, n_img, n_txt)
    print(f"encode {n_img} images + {n_txt} texts: {time.perf_counter() - t:.2f} s")

    itc = best_of(lambda: itc_similarity(feats), 5)
    loop = best_of(lambda: torch.stack([feats.text_feat @ feats.image_feat[i] for i in range(n_img)]), 3)
    sim = itc_similarity(feats)
    assert torch.allclose(sim, torch.stack([feats.text_feat @ feats.image_feat[i] for i in range(n_img)]),
                          atol=1e-5)
    print(f"ITC stage, one matmul ({n_img}x{feats.image_feat.shape[1]} @ {feats.image_feat.shape[1]}x{n_txt}): "
          f"{itc * 1e3:.2f} ms; per-query loop baseline {loop * 1e3:.2f} ms; speed-up {loop / itc:.1f}x")

    print(f"| k | re-rank s | pairs scored | us / pair | time ratio vs k={a.ks[0]} | k ratio |")
    print("|---|---|---|---|---|---|")
    base = None
    with torch.no_grad():
        for k in a.ks:
            t = time.perf_counter()
            _, _, n_pairs = rerank(model, feats, sim, k, a.itm_batch)
            dt = time.perf_counter() - t
            base = base or dt
            print(f"| {k} | {dt:.2f} | {n_pairs} | {dt / n_pairs * 1e6:.1f} | {dt / base:.2f} | {k / a.ks[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
