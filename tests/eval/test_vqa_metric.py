"""VQA accuracy against hand-computed cases of the official rules (normalisation + 10 leave-one-out subsets)."""

from __future__ import annotations

import pytest

from xvlm.eval.vqa_metric import (
    answer_targets,
    normalize_answer,
    process_punctuation,
    vqa_accuracy,
    vqa_score,
)


@pytest.mark.parametrize(("raw", "norm"), [
    ("Two", "2"),                      # number words -> digits, lower-case
    ("none", "0"),
    ("a dog", "dog"),                  # articles dropped
    ("The Red Circle", "red circle"),
    ("dont", "don't"),                 # contractions restored
    ("yes!", "yes"),                   # punctuation
    ("red.", "red"),                   # period not inside a number is stripped
    ("3.5", "3.5"),                    # period inside a number is kept
    ("1,000", "1000"),                 # comma between digits removed
    ("black-and-white", "black and white"),  # hyphen without surrounding space -> space
    ("black - white", "black white"),  # " -" present -> removed, not spaced
    ("  circle\n", "circle"),
])
def test_normalize_answer(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_human_answers_get_punctuation_only() -> None:
    # Official quirk: human answers are not digit/article-normalised, so "two" never matches "2".
    assert process_punctuation("two!") == "two "
    assert vqa_score("2", ["two"] * 5 + ["2"] * 5) == pytest.approx(1.0)   # 5 exact "2" matches
    assert vqa_score("two", ["two"] * 10) == 0.0                         # prediction "two" -> "2"
    assert vqa_score("2", ["2"] * 10) == 1.0


@pytest.mark.parametrize(("n_match", "expected"), [
    (0, 0.0),
    (1, 0.3),          # 9 subsets contain the match (1/3 each), 1 does not: 9 * (1/3) / 10
    (2, 0.6),          # 8 subsets with 2 matches (2/3), 2 with 1 (1/3): (16/3 + 2/3) / 10
    (3, 0.9),          # 7 subsets with 3 (1), 3 subsets with 2 (2/3): (7 + 2) / 10
    (4, 1.0),          # every subset keeps >= 3 matches
    (10, 1.0),
])
def test_ten_subset_rule(n_match: int, expected: float) -> None:
    humans = ["red"] * n_match + [f"colour{i}" for i in range(10 - n_match)]
    assert vqa_score("red", humans) == pytest.approx(expected)


def test_normalisation_applies_before_matching() -> None:
    humans = ["circle", "circle", "circle", "square", "square", "square", "square", "a", "b", "c"]
    assert vqa_score("The circle.", humans) == pytest.approx(0.9)


def test_accuracy_over_annotations_and_missing_prediction() -> None:
    anns = [
        {"question_id": 1, "answer_type": "yes/no", "answers": [{"answer": "yes"}] * 10},
        {"question_id": 2, "answer_type": "other", "answers": [{"answer": "red"}] + [{"answer": "blue"}] * 9},
    ]
    acc = vqa_accuracy({1: "yes", 2: "red"}, anns)
    assert acc["overall"] == pytest.approx(100 * (1.0 + 0.3) / 2)
    assert acc["type/yes/no"] == pytest.approx(100.0) and acc["type/other"] == pytest.approx(30.0)
    with pytest.raises(KeyError, match="question_id 2"):
        vqa_accuracy({1: "yes"}, anns)


def test_answer_targets_weights_sum_to_one() -> None:
    t = dict(answer_targets(["red"] * 7 + ["orange"] * 2 + ["dark red"]))
    assert t == {"red": 0.7, "orange": 0.2, "dark red": 0.1}
