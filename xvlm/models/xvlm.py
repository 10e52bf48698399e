"""X-VLM: Swin vision tower + BERT text/cross encoders, concept pooling and heads.

Zeng, Zhang, Li, "Multi-Grained Vision Language Pre-Training: Aligning Texts with Visual Concepts",
ICML 2022 (arXiv 2111.08276); reference code zengyan-97/X-VLM. The facts implemented here are in
/work/shared/docs/METHOD.md §2; deviations from the reference are listed in docs/model.md.

Read top-down: vision encoder -> BERT-layout layers -> text / cross encoders -> concept pooling -> heads ->
``XVLM``. The model returns features and logits only; every loss lives in ``xvlm.models.losses`` and the
pre-training step that combines them in ``xvlm.models.objective``.

Parameter names follow Hugging Face BERT below the encoder level (``layer.{i}.attention.self.query`` ...),
so a BERT checkpoint maps by one rule (``xvlm.models.weights.bert_key_to_ours``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.swin_transformer import SwinTransformer
from torch import Tensor, nn

from xvlm.errors import BadInput
from xvlm.models.config import TextConfig, VisionConfig, XVLMConfig

CHECKPOINTABLE = ("vision", "text", "cross")  # towers ``XVLM.set_grad_checkpointing`` can checkpoint

# --------------------------------------------------------------------------------------------------------
# Vision encoder
# --------------------------------------------------------------------------------------------------------


class SwinVisionEncoder(SwinTransformer):
    """timm's Swin without a classifier; returns stride-32 patch tokens and their mean as the image CLS.

    Subclassing (not wrapping) keeps timm's parameter names at the top level, so official / timm Swin
    checkpoints and the reference's ``vision_encoder.*`` keys load through timm's ``checkpoint_filter_fn``.
    """

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__(
            img_size=cfg.img_size,
            patch_size=cfg.patch_size,
            in_chans=3,
            num_classes=0,
            embed_dim=cfg.embed_dim,
            depths=tuple(cfg.depths),
            num_heads=tuple(cfg.num_heads),
            window_size=cfg.window_size,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=True,
            drop_path_rate=cfg.drop_path_rate,
        )
        self.cfg = cfg
        if cfg.pos_embed not in ("none", "sincos"):
            raise ValueError(f"vision.pos_embed must be 'none' or 'sincos', got {cfg.pos_embed!r}")
        pe = None
        if cfg.pos_embed == "sincos":
            g = cfg.img_size // cfg.patch_size
            pe = build_sincos2d_pos_embed([g, g], cfg.embed_dim).view(1, g, g, cfg.embed_dim)
        self.abs_pos: Tensor | None
        self.register_buffer("abs_pos", pe, persistent=False)  # never a checkpoint key

    def forward_features(self, x: Tensor) -> Tensor:
        """timm's stem -> stages -> norm, plus the optional absolute position embedding after the stem."""
        x = self.patch_embed(x)  # (N, H/4, W/4, C), NHWC
        if self.abs_pos is not None:
            x = x + self.abs_pos.to(x.dtype)
        return self.norm(self.layers(x))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """images (N, 3, R, R) -> patch tokens (N, G*G, W) row-major (index G*row + col), CLS (N, W)."""
        x = self.forward_features(images)  # (N, G, G, W), NHWC, final LayerNorm applied
        tokens = x.flatten(1, 2)
        return tokens, tokens.mean(dim=1)  # reference: AdaptiveAvgPool1d over all patches


# --------------------------------------------------------------------------------------------------------
# BERT-layout layers (names as in Hugging Face BERT), attention through F.scaled_dot_product_attention
# --------------------------------------------------------------------------------------------------------


def additive_mask(atts: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, L) 1 = keep / 0 = drop -> (B, 1, 1, L) additive mask (0 or a large negative, never -inf).

    A finite minimum keeps a fully-masked row finite instead of NaN (cannot happen with a kept CLS, but a
    NaN would poison the whole batch if it did).
    """
    return (1.0 - atts[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, ids: Tensor) -> Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None]
        x = x + self.token_type_embeddings.weight[0]  # single segment, as the reference
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention; ``kv_width`` differs from hidden for cross-attention (1024 -> 768)."""

    def __init__(self, cfg: TextConfig, kv_width: int | None = None) -> None:
        super().__init__()
        kv_width = kv_width or cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)
        self.dropout_p = cfg.attn_dropout

    def _heads(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)  # (B, h, N, d_h)

    def forward(self, x: Tensor, mask: Tensor, kv: Tensor | None = None) -> Tensor:
        kv = x if kv is None else kv
        q, k, v = self._heads(self.query(x)), self._heads(self.key(kv)), self._heads(self.value(kv))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask.to(q.dtype), dropout_p=self.dropout_p if self.training else 0.0)
        return out.transpose(1, 2).flatten(2)


class BertSelfOutput(nn.Module):
    """Projection + dropout + residual + post-LayerNorm (BERT is post-norm)."""

    def __init__(self, cfg: TextConfig, in_width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_width, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: TextConfig, kv_width: int | None = None) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg, kv_width)
        self.output = BertSelfOutput(cfg, cfg.hidden_size)

    def forward(self, x: Tensor, mask: Tensor, kv: Tensor | None = None) -> Tensor:
        return self.output(self.self(x, mask, kv), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, as BERT's "gelu"


class BertLayer(nn.Module):
    """Self-attention -> [cross-attention to vision tokens] -> FFN.

    With ``cross_width`` set this is a cross-encoder layer (METHOD.md §2): the cross-attention's keys and
    values project from the vision width (1024 for Swin-B) to the text width, so it is its own module
    rather than a stock BERT cross-attention (which projects from 768).
    """

    def __init__(self, cfg: TextConfig, cross_width: int | None = None) -> None:
        super().__init__()
        self.attention = BertAttention(cfg)
        self.crossattention = BertAttention(cfg, kv_width=cross_width) if cross_width else None
        self.intermediate = BertIntermediate(cfg)
        self.output = BertSelfOutput(cfg, cfg.intermediate_size)

    def forward(self, x: Tensor, mask: Tensor, vision: Tensor | None = None,
                vision_mask: Tensor | None = None) -> Tensor:
        x = self.attention(x, mask)
        if self.crossattention is not None:
            if vision is None or vision_mask is None:
                raise ValueError("a cross-encoder layer needs vision tokens and their mask")
            x = self.crossattention(x, vision_mask, vision)
        return self.output(self.intermediate(x), x)


class TextEncoder(nn.Module):
    """BERT layers 0..k-1 on token ids; the ITC text feature is the CLS of its output."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_text_layers))
        self.grad_checkpointing = False

    def forward(self, ids: Tensor, atts: Tensor) -> Tensor:
        x = self.embeddings(ids)
        mask = additive_mask(atts, x.dtype)
        for layer in self.layer:
            x = run_layer(layer, self.grad_checkpointing, x, mask)
        return x


class CrossEncoder(nn.Module):
    """BERT layers k..11, each with cross-attention to (concept) vision tokens."""

    def __init__(self, cfg: TextConfig, vision_width: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg, cross_width=vision_width)
                                   for _ in range(cfg.num_cross_layers))
        self.grad_checkpointing = False

    def forward(self, text: Tensor, text_atts: Tensor, vision: Tensor, vision_atts: Tensor) -> Tensor:
        mask, vmask = additive_mask(text_atts, text.dtype), additive_mask(vision_atts, text.dtype)
        x = text
        for layer in self.layer:
            x = run_layer(layer, self.grad_checkpointing, x, mask, vision, vmask)
        return x


def run_layer(layer: nn.Module, checkpointed: bool, *args: Tensor) -> Tensor:
    """One layer, optionally under activation checkpointing: only its inputs are kept for the backward, which
    runs the layer's forward again. Non-reentrant ``torch.utils.checkpoint`` restores the RNG state for the
    recomputation, so dropout draws the same masks and the gradients equal the plain ones."""
    if checkpointed and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


# --------------------------------------------------------------------------------------------------------
# Concept pooling (METHOD.md §2, "Visual concept")
# --------------------------------------------------------------------------------------------------------


class Concepts(NamedTuple):
    embeds: Tensor  # (B, 1 + G*G, W): [concept CLS; all patch tokens of its image]
    atts: Tensor  # (B, 1 + G*G) long: 1 for the CLS and the selected patches, else 0
    patch_mask: Tensor  # (B, G*G) bool: the selected patches


def box_to_patch_mask(boxes: Tensor, grid: int, stride: int) -> Tensor:
    """Boxes (B, 4) as (x, y, w, h) pixels in the resized frame -> (B, grid*grid) bool, row-major.

    Every patch the box touches is selected: columns floor(x/P) .. ceil((x+w)/P)-1 clamped to the grid,
    at least one; rows likewise (the reference's ``get_image_attns``).
    """
    x, y, w, h = boxes.to(torch.float64).unbind(-1)

    def span(lo: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
        start = torch.floor(lo / stride).clamp(0, grid - 1)
        end = torch.maximum(start + 1, torch.ceil((lo + size) / stride).clamp(max=grid))  # exclusive
        return start, end

    (c0, c1), (r0, r1) = span(x, w), span(y, h)
    idx = torch.arange(grid, device=boxes.device, dtype=torch.float64)
    cols = (idx >= c0[:, None]) & (idx < c1[:, None])  # (B, G)
    rows = (idx >= r0[:, None]) & (idx < r1[:, None])
    return (rows[:, :, None] & cols[:, None, :]).flatten(1)


def concept_pooling(patch_tokens: Tensor, image_index: Tensor, boxes: Tensor | None, stride: int) -> Concepts:
    """Visual-concept features from the Swin output of each distinct image.

    Swin runs once per distinct image; each text sample b points at its image ``image_index[b]`` and,
    optionally, a box. The concept CLS is the mean of the selected patch features (all patches when
    ``boxes`` is None, which equals the image CLS); the cross encoder sees [CLS; all patches] with an
    attention mask keeping only the CLS and the selected patches.

    Args:
        patch_tokens: (N_img, G*G, W) Swin output.
        image_index: (B,) long, row of ``patch_tokens`` for each sample.
        boxes: (B, 4) (x, y, w, h) in pixels of the resized square image, or None for whole images.
        stride: pixels per token side (32 for Swin).
    """
    grid = math.isqrt(patch_tokens.shape[1])
    if grid * grid != patch_tokens.shape[1]:
        raise ValueError(f"patch_tokens has {patch_tokens.shape[1]} tokens, not a square grid")
    tokens = patch_tokens[image_index]  # (B, G*G, W)
    if boxes is None:
        pmask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    else:
        pmask = box_to_patch_mask(boxes, grid, stride)
    m = pmask.to(tokens.dtype)[..., None]
    cls = (tokens * m).sum(1) / m.sum(1)  # masked mean; m.sum >= 1 by construction
    embeds = torch.cat([cls[:, None], tokens], dim=1)
    atts = torch.cat([torch.ones_like(pmask[:, :1]), pmask], dim=1).long()
    return Concepts(embeds, atts, pmask)


# --------------------------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------------------------


def build_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    """ITM / bbox head: Linear(d, 2d) -> LayerNorm -> GELU -> Linear(2d, out); indices 0, 1, 3 as reference."""
    return nn.Sequential(nn.Linear(in_dim, 2 * in_dim), nn.LayerNorm(2 * in_dim), nn.GELU(),
                         nn.Linear(2 * in_dim, out_dim))


class MLMTransform(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class MLMPredictions(nn.Module):
    """BERT's MLM head; the decoder weight *is* the word-embedding matrix (tied), only its bias is own."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.transform = MLMTransform(cfg)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, x: Tensor, word_embeddings: Tensor) -> Tensor:
        return F.linear(self.transform(x), word_embeddings, self.bias)


class MLMHead(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.predictions = MLMPredictions(cfg)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------


BERT_INIT_STD, BERT_INIT_WIDTH = 0.02, 768  # BERT-base's initializer_range and the width it was set for


def init_std(text: TextConfig) -> float:
    """Weight std for the BERT-style init: 0.02 at hidden 768 (BERT-base, the reference), scaled by
    sqrt(768 / hidden) at other widths so that sqrt(fan_in) * std, the per-element scale of every projection
    output, stays BERT-base's ~0.55.

    Why: with a fixed 0.02 a narrow tower is nearly the identity at init. At hidden 32 (``xvlm-debug``) each
    layer changed the [CLS] state by ~1%, so the ITC text feature (the CLS) was the same for every text
    (across-batch std 0.004). Against identical text features the ITC minimum is reached by making the image
    features identical too (loss ln B), so training collapsed the vision tower within ~10 steps and never left
    that saddle: ITC stayed at ln B and ITM at the label prior while MLM (token states) still learned.
    """
    return BERT_INIT_STD * math.sqrt(BERT_INIT_WIDTH / text.hidden_size)


class XVLM(nn.Module):
    """X-VLM towers and heads. Every method returns features or logits; losses are elsewhere.

    Feature paths used by training and evaluation:
      ``encode_image`` -> (patch tokens, CLS); ``concepts`` -> concept tokens + mask;
      ``encode_text`` -> text hidden states; ``fuse`` -> cross-encoder hidden states;
      ``image_feat`` / ``text_feat`` -> L2-normalised ITC features; ``itm_logits``; ``predict_bbox``;
      ``mlm_logits``; ``temperature``.
    """

    def __init__(self, cfg: XVLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        t, vw = cfg.text, cfg.vision.width
        self.vision_encoder = SwinVisionEncoder(cfg.vision)
        self.text_encoder = TextEncoder(t)
        self.cross_encoder = CrossEncoder(t, vw)
        self.vision_proj = nn.Linear(vw, cfg.embed_dim)
        self.text_proj = nn.Linear(t.hidden_size, cfg.embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(cfg.temp)))
        self.itm_head = build_mlp(t.hidden_size, 2)
        self.bbox_head = build_mlp(t.hidden_size, 4)
        self.mlm_head = MLMHead(t)
        std = init_std(t)
        for name, module in self.named_children():
            if name != "vision_encoder":  # timm initialises Swin itself
                module.apply(lambda m: self._init_bert_style(m, std))

    def set_grad_checkpointing(self, towers: Iterable[str] = CHECKPOINTABLE) -> None:
        """Activation checkpointing for the named towers (``set_grad_checkpointing`` below)."""
        set_grad_checkpointing(self, towers)

    @staticmethod
    def _init_bert_style(m: nn.Module, std: float = BERT_INIT_STD) -> None:
        """BERT's init (normal ``std``, zero bias, unit LayerNorm); weights from checkpoints overwrite it."""
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # -- towers ------------------------------------------------------------------------------------------
    def encode_image(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, R, R) normalised images -> patch tokens (N, G*G, W), image CLS (N, W)."""
        return self.vision_encoder(images)

    def concepts(self, patch_tokens: Tensor, image_index: Tensor, boxes: Tensor | None = None) -> Concepts:
        """Concept tokens for each sample (see ``concept_pooling``); boxes None -> whole images."""
        return concept_pooling(patch_tokens, image_index, boxes, self.cfg.vision.stride)

    def encode_text(self, ids: Tensor, atts: Tensor) -> Tensor:
        """Token ids (B, L) + attention mask -> text-encoder hidden states (B, L, H)."""
        return self.text_encoder(ids, atts)

    def fuse(self, text_hidden: Tensor, text_atts: Tensor, vision: Tensor, vision_atts: Tensor) -> Tensor:
        """Cross encoder: text hidden (B, L, H) attending to vision tokens (B, V, W) -> (B, L, H)."""
        return self.cross_encoder(text_hidden, text_atts, vision, vision_atts)

    # -- heads -------------------------------------------------------------------------------------------
    def image_feat(self, vision_cls: Tensor) -> Tensor:
        """Image / concept CLS (B, W) -> L2-normalised ITC feature (B, embed_dim)."""
        return F.normalize(self.vision_proj(vision_cls), dim=-1)

    def text_feat(self, text_hidden: Tensor) -> Tensor:
        """Text-encoder hidden states -> L2-normalised ITC feature of the CLS (B, embed_dim)."""
        return F.normalize(self.text_proj(text_hidden[:, 0]), dim=-1)

    def itm_logits(self, fused: Tensor) -> Tensor:
        """Cross-encoder output (B, L, H) -> match / no-match logits (B, 2) from the fusion CLS."""
        return self.itm_head(fused[:, 0])

    def predict_bbox(self, fused: Tensor) -> Tensor:
        """Cross-encoder output -> normalised (cx, cy, w, h) in [0, 1] (B, 4)."""
        return self.bbox_head(fused[:, 0]).sigmoid()

    def mlm_logits(self, fused: Tensor, masked_pos: Tensor) -> Tensor:
        """Vocabulary logits (B, M, V) at ``masked_pos`` (B, M) only (gather before the head, as reference)."""
        h = torch.gather(fused, 1, masked_pos[..., None].expand(-1, -1, fused.shape[-1]))
        return self.mlm_head.predictions(h, self.text_encoder.embeddings.word_embeddings.weight)

    def temperature(self) -> Tensor:
        """The ITC temperature, clamped in place to [temp_min, temp_max] first (as the reference)."""
        with torch.no_grad():
            self.temp.clamp_(self.cfg.temp_min, self.cfg.temp_max)
        return self.temp


def set_grad_checkpointing(model: nn.Module, towers: Iterable[str]) -> None:
    """Activation checkpointing for the named towers of ``model`` (an ``XVLM`` or a task model holding its
    ``vision_encoder`` / ``text_encoder`` / ``cross_encoder``), off for the others: ``vision`` through timm's
    own per-stage switch, ``text`` / ``cross`` per BERT layer (``run_layer``). Saved activations drop to each
    layer's input, at the cost of a second forward of those layers in the backward (docs/training.md,
    "Activation checkpointing"); the maths is unchanged."""
    towers = set(towers)
    if bad := sorted(towers - set(CHECKPOINTABLE)):
        raise BadInput(f"activation_checkpointing: unknown towers {bad}; choose from {list(CHECKPOINTABLE)}")
    for name, switch in (("vision", "vision_encoder"), ("text", "text_encoder"), ("cross", "cross_encoder")):
        tower = getattr(model, switch, None)
        if tower is None:
            if name in towers:
                raise BadInput(f"activation_checkpointing: {type(model).__name__} has no {switch}")
            continue
        if isinstance(tower, SwinTransformer):
            tower.set_grad_checkpointing(name in towers)
        else:
            tower.grad_checkpointing = name in towers


def build_model(cfg: XVLMConfig | str) -> XVLM:
    """Build from a config or a registered variant name (``xvlm-debug``, ``xvlm-base``, ``xvlm-base-384``)."""
    from xvlm.models.config import get_config

    return XVLM(get_config(cfg) if isinstance(cfg, str) else cfg)
