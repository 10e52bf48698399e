"""Beam search on a toy decoder with a known transition table where greedy and beam disagree."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from xvlm.eval.beam import beam_search

EOS, A, B, C = 0, 1, 2, 3
# P(next | last token); row 4 is the prompt token. Greedy takes A (0.5) then faces a flat row; the best
# sequence starts with the less likely B and then is nearly certain.
TABLE = torch.tensor([
    [1.00, 0.00, 0.00, 0.00],   # after EOS (unused)
    [0.34, 0.33, 0.00, 0.33],   # after A: flat
    [0.95, 0.00, 0.00, 0.05],   # after B: almost surely end
    [0.60, 0.20, 0.20, 0.00],   # after C
    [0.00, 0.50, 0.40, 0.10],   # after the prompt
])
PROMPT = 4


def step(tokens: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
    return TABLE[tokens[:, -1]].clamp_min(1e-30).log()


def seq_logprob(seq: tuple[int, ...]) -> float:
    prev, total = PROMPT, 0.0
    for t in seq:
        total += math.log(max(TABLE[prev, t].item(), 1e-30))
        prev = t
    return total


def brute_force_best(max_len: int, min_len: int) -> tuple[tuple[int, ...], float]:
    """Every sequence ending in EOS within max_len (EOS not before min_len), plus unfinished max_len ones."""
    best: tuple[tuple[int, ...], float] = ((), -math.inf)
    for n in range(1, max_len + 1):
        for body in itertools.product([A, B, C], repeat=n - 1):
            for seq in ([*body, EOS], [*body, A], [*body, B], [*body, C]):
                ended = seq[-1] == EOS
                if ended and n - 1 < min_len or not ended and n < max_len:
                    continue
                s = seq_logprob(tuple(seq))
                if s > best[1]:
                    best = (tuple(seq), s)
    return best


def test_beam_finds_the_best_sequence_where_greedy_does_not() -> None:
    prompt = torch.tensor([[PROMPT], [PROMPT]])
    best_seq, best_lp = brute_force_best(max_len=4, min_len=0)
    assert best_seq == (B, EOS)
    beam = beam_search(step, prompt, beam_size=3, eos_id=EOS, max_new_tokens=4, length_penalty=0.0)
    greedy = beam_search(step, prompt, beam_size=1, eos_id=EOS, max_new_tokens=4, length_penalty=0.0)
    for h in beam:
        assert h.tokens == [B] and h.logprob == pytest.approx(best_lp, abs=1e-5)
    assert greedy[0].tokens[0] == A                       # greedy commits to the likelier first token
    assert greedy[0].logprob < best_lp - 0.5


def test_min_length_forbids_early_end() -> None:
    prompt = torch.tensor([[PROMPT]])
    best_seq, best_lp = brute_force_best(max_len=4, min_len=2)
    (h,) = beam_search(step, prompt, beam_size=3, eos_id=EOS, max_new_tokens=4, min_new_tokens=2,
                       length_penalty=0.0)
    assert len(h.tokens) >= 2
    assert tuple(h.tokens) + (EOS,) == best_seq and h.logprob == pytest.approx(best_lp, abs=1e-5)


def test_max_length_finishes_alive_beams_and_length_penalty_normalises() -> None:
    prompt = torch.tensor([[PROMPT]])
    (h,) = beam_search(step, prompt, beam_size=2, eos_id=EOS, max_new_tokens=1, length_penalty=1.0)
    assert h.tokens == [A] and h.score == pytest.approx(math.log(0.5))
    (h,) = beam_search(step, prompt, beam_size=3, eos_id=EOS, max_new_tokens=4, length_penalty=1.0)
    assert h.score == pytest.approx(h.logprob / (len(h.tokens) + 1))
