"""Beam search over any next-token distribution (used by the caption decoder; tested on a toy table).

Why our own instead of ``transformers.generate``: the caption decoder is a plain module built from X-VLM's
BERT-layout layers, not a ``PreTrainedModel``; a 100-line beam search with an explicit scoring rule is
easier to test than adapting it. The rule follows Hugging Face's ``BeamSearchScorer`` (which the reference
captioner used, ``num_beams 3, min_length 5, max_length 20``):

- hypothesis score = sum of token log-probabilities / (generated length ** ``length_penalty``), where the
  generated length counts the tokens after the prompt including the end token;
- each step expands every alive beam, takes the best ``2 * beam_size`` candidates; a candidate ending in
  ``eos_id`` is finished only if it ranks within the first ``beam_size`` (as HF); the best ``beam_size``
  non-ending candidates stay alive;
- the end token is forbidden before ``min_new_tokens`` generated tokens;
- an item stops when it has ``beam_size`` finished hypotheses and no alive beam can beat the worst of
  them at the current length (exact for ``length_penalty = 0``: sums only decrease); at
  ``max_new_tokens`` the alive beams are finished as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# step_fn(tokens (N, t) long, batch_index (N,) long) -> next-token log-probabilities (N, V).
StepFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # generated tokens after the prompt, the end token excluded
    score: float  # length-normalised score (see module docstring)
    logprob: float  # sum of token log-probabilities, end token included


@torch.no_grad()
def beam_search(
    step_fn: StepFn,
    prompt: Tensor,
    beam_size: int,
    eos_id: int,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    length_penalty: float = 1.0,
) -> list[Hypothesis]:
    """Best hypothesis for every row of ``prompt`` (B, P); ``beam_size = 1`` is greedy decoding."""
    if beam_size < 1 or max_new_tokens < 1 or not 0 <= min_new_tokens <= max_new_tokens:
        raise ValueError("need beam_size >= 1, max_new_tokens >= 1 and 0 <= min_new_tokens <= max_new_tokens")
    b, p = prompt.shape
    k, dev = beam_size, prompt.device
    seqs = prompt.repeat_interleave(k, dim=0)  # (B*K, P + t)
    batch_index = torch.arange(b, device=dev).repeat_interleave(k)
    scores = torch.full((b, k), -math.inf, device=dev)
    scores[:, 0] = 0.0  # the first step expands a single beam per item (all K start identical)
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    done = [False] * b

    for t in range(max_new_tokens):
        logp = step_fn(seqs, batch_index).float()
        v = logp.shape[-1]
        if t < min_new_tokens:
            logp[:, eos_id] = -math.inf
        cand = (scores.view(-1, 1) + logp).view(b, k * v)
        top_s, top_i = cand.topk(min(2 * k, k * v), dim=1)
        gen_len = t + 1
        norm = gen_len ** length_penalty
        new_rows, new_tok, new_scores = [], [], []
        for i in range(b):
            alive: list[tuple[float, int, int]] = []
            if not done[i]:
                for rank, (s, idx) in enumerate(zip(top_s[i].tolist(), top_i[i].tolist(), strict=True)):
                    if s == -math.inf:
                        break
                    row, tok = i * k + idx // v, idx % v
                    if tok == eos_id:
                        if rank < k:
                            finished[i].append(Hypothesis(seqs[row, p:].tolist(), s / norm, s))
                    else:
                        alive.append((s, row, tok))
                    if len(alive) == k:
                        break
            while len(alive) < k:  # finished item or too few candidates: dead beams
                alive.append((-math.inf, i * k, eos_id))
            for s, row, tok in alive:
                new_scores.append(s)
                new_rows.append(row)
                new_tok.append(tok)
        seqs = torch.cat([seqs[new_rows], torch.tensor(new_tok, device=dev)[:, None]], dim=1)
        scores = torch.tensor(new_scores, device=dev).view(b, k)
        for i in range(b):
            if done[i]:
                continue
            best_alive = scores[i].max().item()
            if len(finished[i]) >= k:
                kth = sorted((h.score for h in finished[i]), reverse=True)[k - 1]
                # An alive beam's sum can only fall; with length_penalty > 0 its normalised score could
                # still rise, so (like HF's default) compare at the current length.
                if best_alive == -math.inf or best_alive / (gen_len + 1) ** length_penalty <= kth:
                    done[i] = True
            elif best_alive == -math.inf:
                done[i] = True
        if all(done):
            break
    else:  # max_new_tokens reached: alive beams are finished as they are
        norm = max_new_tokens ** length_penalty
        for i in range(b):
            for j in range(k):
                s = scores[i, j].item()
                if not done[i] and s > -math.inf:
                    finished[i].append(Hypothesis(seqs[i * k + j, p:].tolist(), s / norm, s))
    out = []
    for i in range(b):
        if not finished[i]:
            raise RuntimeError(f"beam search found no hypothesis for row {i} (all candidates -inf)")
        out.append(max(finished[i], key=lambda h: h.score))
    return out
