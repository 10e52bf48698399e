"""Image-text retrieval: the fine-tuning loss and the two-stage evaluation (METHOD.md §7).

Evaluation (reference ``Retrieval.py: evaluation``, ALBEF's protocol):
1. encode every image (whole-image concept: CLS + all patches) and every text once;
2. ITC similarity of all pairs as **one** matrix product ``image_feat @ text_feat.T``;
3. per query, the top-k candidates by ITC (k = 256 COCO, 128 Flickr in the paper);
4. re-rank them by the ITM positive logit of the cross encoder; every other entry is ``-inf``.
Step 4 runs on the de-duplicated set of (image, text) pairs of both directions in fixed-size batches, so
its cost is linear in k. TR / IR Recall@1/5/10 come from ``xvlm.eval.metrics`` (ITC-only recalls too).

Fine-tuning loss (reference ``model_retrieval.py``): ITC with image-id soft targets (every caption of an
image is a positive) + ITM with one hard negative per side, never a pair showing the same image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from xvlm import progress
from xvlm.data.downstream.retrieval import RetrievalSplit
from xvlm.eval.batches import image_loader, tokenize
from xvlm.eval.metrics import retrieval_metrics
from xvlm.models.losses import itc_loss, itm_loss, negative_logits, sample_hard_negatives
from xvlm.models.xvlm import XVLM

# --------------------------------------------------------------------------------------------------------
# Fine-tuning loss
# --------------------------------------------------------------------------------------------------------


def retrieval_losses(model: XVLM, batch: dict[str, Tensor], generator: torch.Generator | None = None,
                     ) -> dict[str, Tensor]:
    """{itc, itm} for a batch ``{images (B,3,R,R), text_ids, text_atts, image_ids (B,)}`` of pairs.

    Row b pairs image b with text b; rows with equal ``image_ids`` show the same image (ITC soft targets,
    excluded as ITM negatives).
    """
    temp = model.temperature()
    ids = batch["image_ids"]
    patches, _ = model.encode_image(batch["images"])
    b = torch.arange(len(ids), device=ids.device)
    concepts = model.concepts(patches, b, None)
    text = model.encode_text(batch["text_ids"], batch["text_atts"])
    image_feat, text_feat = model.image_feat(concepts.embeds[:, 0]), model.text_feat(text)
    out = {"itc": itc_loss(image_feat, text_feat, temp, image_ids=ids, itc_grad=model.cfg.itc_grad)}
    same = ids[:, None] == ids[None, :]
    sim = negative_logits(image_feat, text_feat, temp, model.cfg.itm_negatives)  # as in pre-training
    neg_img, ok_img = sample_hard_negatives(sim.T, same, generator)  # an image for each text
    neg_txt, ok_txt = sample_hard_negatives(sim, same, generator)  # a text for each image
    img_rows = torch.cat([b, neg_img[ok_img], b[ok_txt]])
    txt_rows = torch.cat([b, b[ok_img], neg_txt[ok_txt]])
    labels = torch.cat([torch.ones_like(b), torch.zeros_like(img_rows[len(b):])])
    fused = model.fuse(text[txt_rows], batch["text_atts"][txt_rows],
                       concepts.embeds[img_rows], concepts.atts[img_rows])
    out["itm"] = itm_loss(model.itm_logits(fused), labels)
    return out


# --------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------


@dataclass
class RetrievalEvalConfig:
    k: int = 128  # ITC candidates re-ranked per query (paper: 256 COCO, 128 Flickr30K)
    image_batch: int = 64
    text_batch: int = 256
    itm_batch: int = 256  # (image, text) pairs per cross-encoder call
    max_tokens: int = 40
    num_workers: int = 0


@dataclass
class RetrievalFeatures:
    """Everything the two stages need, computed once per split."""

    image_embeds: Tensor  # (N_img, 1+G*G, W) whole-image concept tokens
    image_atts: Tensor  # (N_img, 1+G*G)
    image_feat: Tensor  # (N_img, D) L2-normalised
    text_hidden: Tensor  # (N_txt, L, H)
    text_atts: Tensor  # (N_txt, L)
    text_feat: Tensor  # (N_txt, D)


@dataclass
class RetrievalResult:
    metrics: dict[str, float]  # after ITM re-ranking (the reported numbers)
    itc_metrics: dict[str, float]  # ITC similarity alone
    score_i2t: Tensor  # (N_img, N_txt) re-ranked scores, -inf outside the top-k
    score_t2i: Tensor  # (N_txt, N_img)
    sim: Tensor  # (N_img, N_txt) ITC similarity
    timings: dict[str, float] = field(default_factory=dict)  # seconds: encode, itc, rerank
    n_pairs: int = 0  # distinct pairs scored by the cross encoder


@torch.no_grad()
def encode_split(model: XVLM, split: RetrievalSplit, tokenizer: Any, cfg: RetrievalEvalConfig,
                 device: torch.device | str = "cpu") -> RetrievalFeatures:
    """Encode all images (evaluation transform) and all texts of ``split``."""
    embeds, atts, ifeat = [], [], []
    loader = image_loader([split.image_path(i) for i in range(len(split.images))], model.cfg, cfg.image_batch,
                          cfg.num_workers)
    for images in progress.track(loader, "encode images", unit="batch"):
        patches, _ = model.encode_image(images.to(device))
        c = model.concepts(patches, torch.arange(len(images), device=device), None)
        embeds.append(c.embeds)
        atts.append(c.atts)
        ifeat.append(model.image_feat(c.embeds[:, 0]))
    ids, tatts = tokenize(tokenizer, split.texts, cfg.max_tokens)
    ids, tatts = ids.to(device), tatts.to(device)
    hidden, tfeat = [], []
    for s in range(0, len(ids), cfg.text_batch):
        h = model.encode_text(ids[s:s + cfg.text_batch], tatts[s:s + cfg.text_batch])
        hidden.append(h)
        tfeat.append(model.text_feat(h))
    return RetrievalFeatures(torch.cat(embeds), torch.cat(atts), torch.cat(ifeat), torch.cat(hidden), tatts,
                             torch.cat(tfeat))


def itc_similarity(feats: RetrievalFeatures) -> Tensor:
    """All-pairs ITC similarity (N_img, N_txt): one batched matrix product."""
    return feats.image_feat @ feats.text_feat.T


def candidate_pairs(sim: Tensor, k: int) -> Tensor:
    """Distinct (image, text) pairs in the top-k of either direction, as flat ids ``img * N_txt + txt``."""
    n_img, n_txt = sim.shape
    k_t, k_i = min(k, n_txt), min(k, n_img)
    top_t = sim.topk(k_t, dim=1).indices  # (N_img, k) texts per image
    top_i = sim.topk(k_i, dim=0).indices  # (k, N_txt) images per text
    i2t = torch.arange(n_img, device=sim.device)[:, None] * n_txt + top_t
    t2i = top_i * n_txt + torch.arange(n_txt, device=sim.device)[None, :]
    return torch.unique(torch.cat([i2t.flatten(), t2i.flatten()]))


@torch.no_grad()
def itm_scores(model: XVLM, feats: RetrievalFeatures, pairs: Tensor, n_txt: int, batch: int) -> Tensor:
    """ITM positive logit for each flat pair id, ``batch`` pairs per cross-encoder call."""
    out = torch.empty(len(pairs), device=feats.image_feat.device)
    for s in progress.track(range(0, len(pairs), batch), "re-rank (ITM)", unit="batch"):
        p = pairs[s:s + batch]
        img, txt = p // n_txt, p % n_txt
        fused = model.fuse(feats.text_hidden[txt], feats.text_atts[txt], feats.image_embeds[img],
                           feats.image_atts[img])
        out[s:s + batch] = model.itm_logits(fused)[:, 1].float()
    return out


def rerank(model: XVLM, feats: RetrievalFeatures, sim: Tensor, k: int, itm_batch: int,
           ) -> tuple[Tensor, Tensor, int]:
    """Scores after ITM re-ranking of the top-k of each direction; (score_i2t, score_t2i, #pairs scored).

    Each direction keeps its own candidate set: entry (i, t) of ``score_i2t`` is the ITM score when t is
    in image i's top-k, else -inf; likewise ``score_t2i`` with text t's top-k images. A pair in both sets
    is scored once.
    """
    n_img, n_txt = sim.shape
    pairs = candidate_pairs(sim, k)
    scores = itm_scores(model, feats, pairs, n_txt, itm_batch)
    flat = torch.full((n_img * n_txt,), float("-inf"), device=sim.device)
    flat[pairs] = scores
    full = flat.view(n_img, n_txt)
    ninf = torch.tensor(float("-inf"), device=sim.device)
    in_i2t = torch.zeros_like(full, dtype=torch.bool).scatter_(1, sim.topk(min(k, n_txt), dim=1).indices, True)
    in_t2i = torch.zeros_like(full, dtype=torch.bool).scatter_(0, sim.topk(min(k, n_img), dim=0).indices, True)
    return torch.where(in_i2t, full, ninf), torch.where(in_t2i, full, ninf).T.contiguous(), len(pairs)


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def evaluate_retrieval(model: XVLM, split: RetrievalSplit, tokenizer: Any,
                       cfg: RetrievalEvalConfig | None = None, device: torch.device | str = "cpu",
                       ) -> RetrievalResult:
    """Two-stage retrieval evaluation of ``split``; the model is put in eval mode (and left there)."""
    cfg = cfg or RetrievalEvalConfig()
    model.eval()
    t0 = time.perf_counter()
    feats = encode_split(model, split, tokenizer, cfg, device)
    _sync(device)
    t1 = time.perf_counter()
    sim = itc_similarity(feats)
    _sync(device)
    t2 = time.perf_counter()
    s_i2t, s_t2i, n_pairs = rerank(model, feats, sim, cfg.k, cfg.itm_batch)
    _sync(device)
    t3 = time.perf_counter()
    metrics = retrieval_metrics(s_i2t, s_t2i, split.txt2img)
    itc = retrieval_metrics(sim, sim.T, split.txt2img)
    return RetrievalResult(metrics, itc, s_i2t.cpu(), s_t2i.cpu(), sim.cpu(),
                           {"encode_s": t1 - t0, "itc_s": t2 - t1, "rerank_s": t3 - t2}, n_pairs)
