"""NLVR2: one sentence, two images, a True/False head on the fused CLS.

Two designs, both reusing the pre-trained cross encoder (METHOD.md §7, xvlm-reference-code.md §4.2):

- ``"interleaved"`` (default, the reference's ``model_nlvr.py``): every pre-trained cross layer k is copied
  twice; the text runs through ``6 + 2 x num_cross_layers`` layers, copy 2k attending to the left image and
  copy 2k+1 to the right one, so each cross layer's output already mixes what was read from the other
  image. The two copies *share* the cross-attention key/value projections (the reference's
  ``share_cross_attention``): both images are read through the same vision->text projection; the queries,
  self-attention and FFN of each copy are fine-tuned apart. New parameters: the duplicated layers (from
  pre-trained weights) and ``cls_head`` = build_mlp(H, 2).
- ``"pair"`` (a cheaper alternative, UNITER's "pair" setting): the unchanged cross encoder fuses the
  sentence with each image separately (shared weights, two passes); the two fusion CLS vectors are
  concatenated into ``cls_head`` = build_mlp(2H, 2). No duplicated layers; the images only meet at the head.

From random weights (the debug model in the tests) only ``"pair"`` learns the sample set; the interleaved
stack's output stays nearly the same for every pair (52.5% held-out; docs/evaluation.md, NLVR2).

The reference also pre-trains the duplicated layers with a 3-way "text assignment" task before
fine-tuning; its config is missing from the reference repo and is not reproduced here.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from xvlm.errors import BadInput
from xvlm.models.decoders import whole_image_tokens
from xvlm.models.xvlm import XVLM, additive_mask, build_mlp

Design = Literal["interleaved", "pair"]


class XVLMForNLVR2(nn.Module):
    def __init__(self, model: XVLM, design: Design = "interleaved") -> None:
        super().__init__()
        if design not in ("interleaved", "pair"):
            raise BadInput(f"unknown NLVR2 design {design!r}; use 'interleaved' or 'pair'")
        self.cfg, self.design = model.cfg, design
        h = model.cfg.text.hidden_size
        self.vision_encoder = model.vision_encoder
        self.text_encoder = model.text_encoder
        if design == "interleaved":
            layers = []
            for src in model.cross_encoder.layer:
                left, right = copy.deepcopy(src), copy.deepcopy(src)
                right.crossattention.self.key = left.crossattention.self.key  # shared K/V (one module each)
                right.crossattention.self.value = left.crossattention.self.value
                layers += [left, right]
            self.cross_layers = nn.ModuleList(layers)
            self.cls_head = build_mlp(h, 2)
        else:
            self.cross_encoder = model.cross_encoder
            self.cls_head = build_mlp(2 * h, 2)
        self.cls_head.apply(XVLM._init_bert_style)
        self.new_params: tuple[str, ...] = ("cls_head.",)

    def forward(self, left: Tensor, right: Tensor, ids: Tensor, atts: Tensor) -> Tensor:
        """Left / right images (B, 3, R, R) + sentence tokens (B, L) -> logits (B, 2) (index 1 = True)."""
        b = left.shape[0]
        vis, vatts = whole_image_tokens(self.vision_encoder, torch.cat([left, right]), self.cfg.vision.stride)
        text = self.text_encoder(ids, atts)
        if self.design == "pair":
            fused = self.cross_encoder(torch.cat([text, text]), torch.cat([atts, atts]), vis, vatts)
            return self.cls_head(torch.cat([fused[:b, 0], fused[b:, 0]], dim=-1))
        mask = additive_mask(atts, text.dtype)
        vmask = additive_mask(vatts, text.dtype)
        x = text
        for i, layer in enumerate(self.cross_layers):
            side = slice(0, b) if i % 2 == 0 else slice(b, 2 * b)
            x = layer(x, mask, vis[side], vmask[side])
        return self.cls_head(x[:, 0])
