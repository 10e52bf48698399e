"""Short fine-tunes of the debug model on the downstream sample sets beat the trivial baselines.

The model starts from random weights (no pre-training checkpoint in the test suite), so these runs
mostly show that the losses, the answer ranking / two-image head / beam search and the metrics are wired
so that learning shows up in the numbers. Thresholds leave a margin under the values seen when writing
them (noted per test); held-out splits are scored after selection on validation where the task has one.
Runs are single-threaded (the numbers were measured that way; reduction order changes a run).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xvlm.data.downstream.caption import read_karpathy_split
from xvlm.data.downstream.nlvr2 import read_nlvr2
from xvlm.data.downstream.vqa import read_answer_list, read_vqa
from xvlm.data.sample_corpus.common import Corpus
from xvlm.data.sample_corpus.downstream_vqa import write_downstream
from xvlm.eval.caption import constant_caption_baseline, evaluate_captions, finetune_caption
from xvlm.eval.nlvr2 import evaluate_nlvr2, finetune_nlvr2
from xvlm.eval.nlvr2 import majority_baseline as nlvr2_majority
from xvlm.eval.vl_common import TaskConfig
from xvlm.eval.vqa import evaluate_vqa, finetune_vqa
from xvlm.eval.vqa import majority_baseline as vqa_majority
from xvlm.models.xvlm import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    write_downstream(Corpus(root, 0))
    return root


def _fresh():
    torch.manual_seed(0)
    return build_model("xvlm-debug")


def test_vqa_beats_majority(ds: Path) -> None:
    q = ds / "vqa"
    train = read_vqa(q / "v2_OpenEnded_mscoco_train2014_questions.json", q / "v2_mscoco_train2014_annotations.json",
                     ds / "coco2014")
    val = read_vqa(q / "v2_OpenEnded_mscoco_val2014_questions.json", q / "v2_mscoco_val2014_annotations.json",
                   ds / "coco2014")
    answers = read_answer_list(q / "answer_list.json")
    cfg = TaskConfig(epochs=100, max_steps=400, batch_size=16, lr=2e-3, k_test=8)
    model, result = finetune_vqa(_fresh(), train, [], answers, cfg)
    assert result.history[-1]["loss/vqa"] < 0.5 * result.history[0]["loss/vqa"]
    acc, _ = evaluate_vqa(model, val, answers, cfg)
    majority = vqa_majority(train, val)            # ~21.7 on this set; ~40 seen after 400 steps
    assert acc["vqa_acc"] > majority + 10


def test_nlvr2_beats_chance(ds: Path, one_thread: None) -> None:
    """Held-out (dev + test-P) accuracy above the 50% that the sentence alone or the majority label gives.

    The sample sentences compare the pair's shape counts (``downstream_vqa.nlvr_statement``); the model is
    the ``pair`` design with the vision tower at the full lr (x0.1: 74.4% at seeds 0/0). From random weights
    the reference's ``interleaved`` design stays near chance (52.5% at 0/0: its output is nearly the same for
    every pair), and sentences whose truth is a product of a word and the image (colour presence per side,
    "left" vs "right") stay at chance (docs/evaluation.md, NLVR2). Measured (1 thread, 400 steps, ~45 s), dev + test-P
    at corpus seed / fine-tune seed 0/0 77.5%, 0/1 79.4%, 1/0 76.2%, 1/1 77.5% (train 79-84%); asserted > 65%.
    """
    n = ds / "nlvr2"
    train, dev, test = (read_nlvr2(n / "data" / f"{s}.json", n / "images") for s in ("train", "dev", "test1"))
    cfg = TaskConfig(epochs=100, max_steps=400, batch_size=16, lr=3e-4, vision_lr_mult=1.0, nlvr_design="pair")
    model, _ = finetune_nlvr2(_fresh(), train, dev, cfg)
    acc, _ = evaluate_nlvr2(model, dev + test, cfg)
    assert nlvr2_majority(train, dev + test) == pytest.approx(50.0)
    assert acc["nlvr2_acc"] > 65.0, acc


def test_caption_beats_constant_caption(ds: Path, one_thread: None) -> None:
    """Captions must depend on the image: CIDEr on the 24 test images above captioning every image with the
    most frequent training caption ("an orange triangle on grey", CIDEr 48.7, computed here).

    Measured (1 thread, 300 steps, ~52 s): CIDEr 86.1 with 5 distinct captions. (On the caption draw before
    NLVR2 got its own RNG stream: 92.0 / 9 distinct against a constant 60.6; 87.6 / 9 with the vision tower
    at 0.1x lr. The earlier "same caption for every image" (CIDEr 51) predates the width-scaled debug BERT
    init.) Asserted: constant + 15 CIDEr and >= 4 distinct captions.
    """
    c = ds / "caption"
    train, test = (read_karpathy_split(c / f"coco_karpathy_{s}.json", ds / "coco2014") for s in ("train", "test"))
    cfg = TaskConfig(epochs=100, max_steps=300, batch_size=32, lr=2e-3, eval_batch_size=24)
    model, _ = finetune_caption(_fresh(), train, [], cfg)
    scores, caps = evaluate_captions(model, test, cfg, use_java=False)
    _, constant = constant_caption_baseline(train, test, use_java=False)
    assert len(set(caps.values())) >= 4, caps
    assert scores["caption/CIDEr"] > constant["caption/CIDEr"] + 15, (scores, constant)
