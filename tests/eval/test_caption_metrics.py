"""pycocoevalcap on a fixed pair of caption files, against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from xvlm.eval.caption_metrics import caption_scores, java_available, score_caption_files


def _files(tmp_path: Path, refs: dict[int, list[str]], res: dict[int, str]) -> tuple[Path, Path]:
    gt = {"images": [{"id": i} for i in refs],
          "annotations": [{"image_id": i, "caption": c, "id": n} for n, (i, c) in
                          enumerate((i, c) for i, cs in refs.items() for c in cs)]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": i, "caption": c} for i, c in res.items()]))
    return tmp_path / "gt.json", tmp_path / "res.json"


@pytest.mark.skipif(not java_available(), reason="pycocoevalcap's PTB tokenizer and METEOR need Java")
def test_official_scorer_on_fixed_files(tmp_path: Path) -> None:
    # Image 1: "a red circle" vs reference "a red circle on grey." -> c = 3, r = 5 words, all n-grams match.
    #   BLEU-1 = BLEU-2 = BP = exp(1 - 5/3); ROUGE-L: P = 1, R = 3/5, beta 1.2 -> (1 + b^2) P R / (R + b^2 P).
    # Image 2 would add an idf: with one image every n-gram occurs in all documents -> idf 0 -> CIDEr 0.
    gt, res = _files(tmp_path, {1: ["a red circle on grey."]}, {1: "A red circle."})
    s = score_caption_files(gt, res)
    assert s["Bleu_1"] == pytest.approx(math.exp(-2 / 3), abs=1e-6)
    assert s["Bleu_2"] == pytest.approx(math.exp(-2 / 3), abs=1e-6)
    b2 = 1.2 ** 2
    assert s["ROUGE_L"] == pytest.approx((1 + b2) * 0.6 / (0.6 + b2), abs=1e-6)
    assert s["CIDEr"] == 0.0
    assert 0.0 < s["METEOR"] < 1.0 and s["skipped"] == []
    # Two images, exact copies with disjoint words: idf = log 2 everywhere, cosine 1 for n = 1..3, no 4-grams
    # in 3-word captions -> CIDEr-D = 10 * (1 + 1 + 1 + 0) / 4 = 7.5; METEOR of exact copies = 1.
    gt, res = _files(tmp_path, {1: ["a red circle"], 2: ["two blue squares"]},
                     {1: "a red circle", 2: "two blue squares"})
    s = score_caption_files(gt, res)
    assert s["CIDEr"] == pytest.approx(7.5) and s["METEOR"] == pytest.approx(1.0)


def test_without_java_meteor_is_skipped_and_the_rest_agrees() -> None:
    s = caption_scores({1: ["a red circle"], 2: ["two blue squares"]}, {1: "A red circle.", 2: "two blue squares"},
                       use_java=False)
    assert s["CIDEr"] == pytest.approx(7.5) and "METEOR" not in s
    assert any("METEOR" in x for x in s["skipped"])  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="caption ids differ"):
        caption_scores({1: ["a"]}, {2: "a"}, use_java=False)
