"""The evaluation runs' example figures (matplotlib, Agg): what a reviewer opens in the MLflow UI.

- retrieval: the top-5 texts for a few query images and the top-5 images for a few query texts;
- grounding: a few expressions with the true (green) and predicted (red) box, drawn by
  ``xvlm.viz.draw_boxes`` (the one box painter);
- VQA / NLVR2 / captions: one row of panels, each image(s) over its question / sentence / caption.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xvlm.data.downstream.grounding import GroundingSplit
from xvlm.data.downstream.images import load_rgb
from xvlm.data.downstream.retrieval import RetrievalSplit
from xvlm.eval.grounding import GroundingResult
from xvlm.eval.retrieval import RetrievalResult


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def retrieval_figures(split: RetrievalSplit, result: RetrievalResult, n_queries: int = 3) -> dict[str, Any]:
    """Top-5 texts for a few query images (TR) and top-5 images for a few query texts (IR)."""
    plt = _plt()
    figs: dict[str, Any] = {}
    fig, axes = plt.subplots(n_queries, 2, figsize=(10, 3 * n_queries), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 3]})
    for q in range(min(n_queries, len(split.images))):
        axes[q, 0].imshow(load_rgb(split.image_path(q)))
        axes[q, 0].set_axis_off()
        top = result.score_i2t[q].topk(min(5, len(split.texts))).indices.tolist()
        lines = [f"{r + 1}. {'+' if split.txt2img[t] == q else '-'} {textwrap.shorten(split.texts[t], 70)}"
                 for r, t in enumerate(top)]
        axes[q, 1].text(0, 0.5, "\n".join(lines), va="center", family="monospace", fontsize=8)
        axes[q, 1].set_axis_off()
    fig.suptitle("text retrieval: top-5 texts per query image (+ = ground truth)")
    figs["tr_top5.png"] = fig
    img2txt = split.img2txt
    queries = [img2txt[i][0] for i in range(min(n_queries, len(split.images)))]
    fig, axes = plt.subplots(len(queries), 5, figsize=(12, 2.8 * len(queries)), squeeze=False)
    for row, t in enumerate(queries):
        top = result.score_t2i[t].topk(min(5, len(split.images))).indices.tolist()
        for c, i in enumerate(top):
            ax = axes[row, c]
            ax.imshow(load_rgb(split.image_path(i)))
            ax.set_xticks([])
            ax.set_yticks([])
            ok = i == split.txt2img[t]
            for s in ax.spines.values():
                s.set_color("green" if ok else "red")
                s.set_linewidth(4)
        axes[row, 0].set_title(textwrap.shorten(split.texts[t], 90), loc="left", fontsize=9)
    fig.suptitle("image retrieval: top-5 images per query text (green = ground truth)")
    figs["ir_top5.png"] = fig
    return figs


def grounding_figure(split: GroundingSplit, result: GroundingResult, n: int = 6) -> Any:
    """A few expressions: true box green, predicted box red, IoU in the title."""
    from xvlm.viz import draw_boxes

    plt = _plt()
    n = min(n, len(split.samples))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    for k in range(n):
        s, ax = split.samples[k], axes[0, k]
        boxes = [tuple(float(v) for v in b) for b in (result.gt_xywh[k], result.pred_xywh[k])]
        ax.imshow(draw_boxes(load_rgb(split.image_path(s)), boxes, colours=[(0, 255, 0), (255, 0, 0)]))
        ax.set_title(f"{textwrap.shorten(s.text, 40)}\nIoU {float(result.iou[k]):.2f}", fontsize=8)
        ax.set_axis_off()
    fig.suptitle("grounding: true (green) vs predicted (red)")
    return fig


def panel_png(path: Path, panels: Sequence[tuple[Sequence[Any], str]], title: str) -> Path:
    """One row of panels, each showing one or two images over a caption; written to ``path``."""
    from PIL import Image

    plt = _plt()
    cols = sum(len(imgs) for imgs, _ in panels)
    fig, axes = plt.subplots(1, cols, figsize=(2.6 * cols, 3.4), squeeze=False)
    k = 0
    for imgs, text in panels:
        for j, p in enumerate(imgs):
            ax = axes[0, k]
            with Image.open(p) as im:
                ax.imshow(im.convert("RGB"))
            ax.set_axis_off()
            if j == 0:
                ax.set_title("\n".join(textwrap.wrap(text, 28 * len(imgs))), fontsize=8, loc="left")
            k += 1
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
