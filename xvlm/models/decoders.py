"""Text decoders built from X-VLM's pre-trained BERT-layout layers: the VQA answer decoder and the captioner.

METHOD.md §7 and the reference (xvlm-reference-code.md §4.2, §5.3):

- **VQA** (``XVLMForVQA``): the question is encoded by the full X-VLM (text encoder + cross encoder attending
  to the whole image); an *answer decoder* of ``num_cross_layers`` (6 for base) causal layers, each
  cross-attending to the question states, generates the answer. It is initialised from the cross layers
  (self-attention, FFN, cross-attention query/output) and the MLM head; the cross-attention key/value are
  re-initialised because the pre-trained ones project *vision* tokens (width 1024), not question states
  (width 768). Its word embeddings are a copy of the text encoder's, tied to its LM head.
- **Captioning** (``XVLMForCaptioning``): the text encoder and cross encoder themselves become a 12-layer
  causal decoder (the reference renames ``text_encoder.*`` -> ``text_decoder.*``): every layer's
  self-attention gets a causal mask, the cross layers keep attending to the image, the MLM head is the LM
  head (tied to the word embeddings). No new parameters.

The layers are the model file's own ``BertLayer``; causality is only a different attention mask (our
``BertSelfAttention`` takes any additive mask), so ``xvlm/models/xvlm.py`` is unchanged. Losses and
answer ranking live here because they are the decoders' defining behaviour; beam search, training loops
and metrics are in ``xvlm.eval``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xvlm.models.config import TextConfig
from xvlm.models.xvlm import XVLM, BertEmbeddings, BertLayer, MLMPredictions, additive_mask, concept_pooling


def causal_mask(atts: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, L) padding mask -> (B, 1, L, L) additive mask: position i sees positions <= i that are not padding.

    Row i always keeps position 0 (the start token), so no row is fully masked.
    """
    n = atts.shape[1]
    keep = torch.ones(n, n, dtype=torch.bool, device=atts.device).tril()[None, None] & atts[:, None, None, :].bool()
    return (~keep).to(dtype) * torch.finfo(dtype).min


def whole_image_tokens(model_vision: nn.Module, images: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Swin on the images -> [image CLS; patches] (N, 1+G*G, W) and an all-ones mask (N, 1+G*G)."""
    patches, _ = model_vision(images)
    c = concept_pooling(patches, torch.arange(len(images), device=images.device), None, stride)
    return c.embeds, c.atts


def sequence_logprob(logits: Tensor, ids: Tensor, atts: Tensor) -> Tensor:
    """Sum over t >= 1 of log P(ids[:, t] | ids[:, <t]) where ``atts`` is 1 (teacher forcing): (B,)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (tok * atts[:, 1:]).sum(1)


# --------------------------------------------------------------------------------------------------------
# VQA
# --------------------------------------------------------------------------------------------------------


class AnswerDecoder(nn.Module):
    """Causal BERT layers cross-attending to question states, with an LM head tied to its own embeddings."""

    def __init__(self, cfg: TextConfig, num_layers: int) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.layer = nn.ModuleList(BertLayer(cfg, cross_width=cfg.hidden_size) for _ in range(num_layers))
        self.head = MLMPredictions(cfg)

    @classmethod
    def from_xvlm(cls, model: XVLM) -> tuple[AnswerDecoder, list[str]]:
        """Initialise from the cross layers + MLM head; returns the decoder and its re-initialised keys."""
        t = model.cfg.text
        dec = cls(t, t.num_cross_layers)
        dec.apply(XVLM._init_bert_style)
        dec.embeddings.load_state_dict(model.text_encoder.embeddings.state_dict())
        dec.head.load_state_dict(model.mlm_head.predictions.state_dict())
        fresh: list[str] = []
        for i, src in enumerate(model.cross_encoder.layer):
            sd = {k: v for k, v in src.state_dict().items()
                  if not k.startswith(("crossattention.self.key.", "crossattention.self.value."))}
            missing = dec.layer[i].load_state_dict(sd, strict=False).missing_keys
            fresh += [f"layer.{i}.{k}" for k in missing]
        return dec, fresh

    def forward(self, ids: Tensor, atts: Tensor, enc: Tensor, enc_atts: Tensor) -> Tensor:
        """Answer ids (A, L) + question states (A, Lq, H) -> next-token logits (A, L, V)."""
        x = self.embeddings(ids)
        mask, emask = causal_mask(atts, x.dtype), additive_mask(enc_atts, x.dtype)
        for layer in self.layer:
            x = layer(x, mask, enc, emask)
        return self.head(x, self.embeddings.word_embeddings.weight)


class XVLMForVQA(nn.Module):
    """Question encoder = X-VLM (text + cross encoder on the whole image); answers from ``AnswerDecoder``."""

    def __init__(self, model: XVLM) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.vision_encoder = model.vision_encoder
        self.text_encoder = model.text_encoder
        self.cross_encoder = model.cross_encoder
        self.answer_decoder, fresh = AnswerDecoder.from_xvlm(model)
        self.new_params = tuple(f"answer_decoder.{k}" for k in fresh)  # lr x2 (reference: task-new params)

    def encode_question(self, images: Tensor, image_index: Tensor, q_ids: Tensor, q_atts: Tensor) -> Tensor:
        """Question states (B, Lq, H): question tokens fused with their image (``images[image_index]``)."""
        vis, vatts = whole_image_tokens(self.vision_encoder, images, self.cfg.vision.stride)
        text = self.text_encoder(q_ids, q_atts)
        return self.cross_encoder(text, q_atts, vis[image_index], vatts[image_index])

    def loss(self, images: Tensor, image_index: Tensor, q_ids: Tensor, q_atts: Tensor, a_ids: Tensor,
             a_atts: Tensor, a_question: Tensor, a_weight: Tensor) -> Tensor:
        """Σ_answers weight × sequence cross-entropy / #questions (reference ``model_vqa.py``).

        Answers are ``[CLS] answer [SEP]``; ``a_question`` maps each answer row to its question row, and
        ``a_weight`` is its annotator share (VQA) or 0.5 (VG).
        """
        states = self.encode_question(images, image_index, q_ids, q_atts)
        logits = self.answer_decoder(a_ids, a_atts, states[a_question], q_atts[a_question])
        nll = -sequence_logprob(logits, a_ids, a_atts)
        return (a_weight * nll).sum() / q_ids.shape[0]

    @torch.no_grad()
    def rank_answers(self, images: Tensor, image_index: Tensor, q_ids: Tensor, q_atts: Tensor,
                     ans_ids: Tensor, ans_atts: Tensor, k: int = 128) -> tuple[Tensor, Tensor]:
        """Best answer index per question from the candidate list (``ans_ids`` (N_ans, La)).

        Stage 1: the k candidates with the highest probability of their first token. Stage 2: re-rank those
        by full-sequence log-likelihood (every answer token and [SEP]). Returns (best index (B,), its
        log-likelihood (B,)).
        """
        states = self.encode_question(images, image_index, q_ids, q_atts)
        b, k = q_ids.shape[0], min(k, ans_ids.shape[0])
        start = ans_ids[:1, :1].expand(b, 1)
        first = self.answer_decoder(start, torch.ones_like(start), states, q_atts)[:, 0].float().softmax(-1)
        top_p, top_i = first.index_select(1, ans_ids[:, 1]).topk(k, dim=1)  # (B, k)
        rows = top_i.flatten()
        q = torch.arange(b, device=q_ids.device).repeat_interleave(k)
        logits = self.answer_decoder(ans_ids[rows], ans_atts[rows], states[q], q_atts[q])
        ll = sequence_logprob(logits, ans_ids[rows], ans_atts[rows]).view(b, k)
        best = ll.argmax(1)
        return top_i.gather(1, best[:, None]).squeeze(1), ll.gather(1, best[:, None]).squeeze(1)


# --------------------------------------------------------------------------------------------------------
# Captioning
# --------------------------------------------------------------------------------------------------------


class XVLMForCaptioning(nn.Module):
    """X-VLM's text + cross encoders run causally as an image-conditioned language model."""

    def __init__(self, model: XVLM) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.vision_encoder = model.vision_encoder
        self.text_encoder = model.text_encoder
        self.cross_encoder = model.cross_encoder
        self.mlm_head = model.mlm_head
        self.new_params: tuple[str, ...] = ()

    def encode_image(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return whole_image_tokens(self.vision_encoder, images, self.cfg.vision.stride)

    def hidden(self, ids: Tensor, atts: Tensor, vision: Tensor, vision_atts: Tensor) -> Tensor:
        """Last-layer states (B, L, H): all layers causal; cross layers attend to ``vision`` (B, V, W)."""
        x = self.text_encoder.embeddings(ids)
        mask, vmask = causal_mask(atts, x.dtype), additive_mask(vision_atts, x.dtype)
        for layer in self.text_encoder.layer:
            x = layer(x, mask)
        for layer in self.cross_encoder.layer:
            x = layer(x, mask, vision, vmask)
        return x

    def head(self, states: Tensor) -> Tensor:
        """States (..., H) -> vocabulary logits (..., V) (the MLM head, tied to the word embeddings)."""
        return self.mlm_head.predictions(states, self.text_encoder.embeddings.word_embeddings.weight)

    def logits(self, ids: Tensor, atts: Tensor, vision: Tensor, vision_atts: Tensor) -> Tensor:
        """Next-token logits (B, L, V)."""
        return self.head(self.hidden(ids, atts, vision, vision_atts))

    def loss(self, images: Tensor, image_index: Tensor, ids: Tensor, atts: Tensor, prompt_len: int,
             label_smoothing: float = 0.1) -> Tensor:
        """Token cross-entropy (label smoothing) over caption tokens + [SEP]; the prompt is not scored.

        ``ids`` = ``[CLS] a picture of <caption> [SEP] [PAD]...``; positions < ``prompt_len`` (CLS + prompt
        words) are never targets, as the reference's ``decoder_targets[:, :prompt_length] = -100``.
        """
        vis, vatts = self.encode_image(images)
        states = self.hidden(ids, atts, vis[image_index], vatts[image_index])
        targets = ids.masked_fill(atts == 0, -100)
        targets[:, :prompt_len] = -100
        # The vocabulary head (V = 30522 against H = 32 in the debug model: most of a step's time) runs only
        # on the positions that predict a target; the loss equals the full-sequence one with ignore_index.
        scored = targets[:, 1:] != -100
        logits = self.head(states[:, :-1][scored])
        return F.cross_entropy(logits.float(), targets[:, 1:][scored], label_smoothing=label_smoothing)

    def next_token_logprobs(self, tokens: Tensor, vision: Tensor, vision_atts: Tensor) -> Tensor:
        """Log-probabilities (B, V) of the token after ``tokens`` (B, t) (no padding): the beam-search step."""
        states = self.hidden(tokens, torch.ones_like(tokens), vision, vision_atts)
        return F.log_softmax(self.head(states[:, -1]).float(), dim=-1)


def copy_model(model: XVLM) -> XVLM:
    """A deep copy, so a task model never shares parameters with the pre-training model it came from."""
    return copy.deepcopy(model)
