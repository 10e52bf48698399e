"""Downstream sample sets and their readers: real formats, truth of the text, clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xvlm.data.downstream.caption import (
    coco_id_from_filename,
    pre_caption,
    read_gt_json,
    read_karpathy_dataset,
    read_karpathy_split,
)
from xvlm.data.downstream.nlvr2 import read_nlvr2
from xvlm.data.downstream.vqa import pre_question, read_answer_list, read_vg_qa, read_vqa
from xvlm.data.sample_corpus.common import Corpus
from xvlm.data.sample_corpus.downstream_vqa import DownstreamSizes, write_downstream
from xvlm.data.sample_corpus.scenes import COLOURS


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    write_downstream(Corpus(root, 0))
    return root


def test_writer_is_deterministic(ds: Path, tmp_path: Path) -> None:
    small = DownstreamSizes(vqa_train=3, vqa_val=2, vqa_test=1, nlvr_train=4, nlvr_dev=2, nlvr_test=2,
                            cap_train=2, cap_val=1, cap_test=1)
    a, b = tmp_path / "a", tmp_path / "b"
    write_downstream(Corpus(a, 7), small)
    write_downstream(Corpus(b, 7), small)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_vqa_official_files_and_answers_true_of_pixels(ds: Path) -> None:
    s = DownstreamSizes()
    train = read_vqa(ds / "vqa/v2_OpenEnded_mscoco_train2014_questions.json",
                     ds / "vqa/v2_mscoco_train2014_annotations.json", ds / "coco2014")
    assert len(train) == 3 * s.vqa_train and all(len(ex.answers) == 10 for ex in train)
    assert train[0].question_id == train[0].image_id * 1000
    test = read_vqa(ds / "vqa/v2_OpenEnded_mscoco_test2015_questions.json", None, ds / "coco2014")
    assert len(test) == 3 * s.vqa_test and all(ex.answers == () for ex in test)
    answers = read_answer_list(ds / "vqa/answer_list.json")
    majority_in_list = 0
    for ex in train:
        top = max(set(ex.answers), key=ex.answers.count)
        majority_in_list += top in answers
        if ex.question.startswith("What colour is the"):  # the colour answer is the shape's pixel colour
            assert top in COLOURS
    assert majority_in_list == len(train)
    # The colour answer matches the image: sample the pixel mode over the image, excluding background.
    ex = next(e for e in train if e.question.startswith("What colour") and len(set(e.answers)) >= 1)
    pix = np.asarray(Image.open(ex.image).convert("RGB")).reshape(-1, 3).astype(int)
    dist = {c: np.abs(pix - np.array(v)).sum(1).min() for c, v in COLOURS.items()}
    top = max(set(ex.answers), key=ex.answers.count)
    assert dist[top] < 40


def test_vqa_reader_errors_name_file_and_question(ds: Path, tmp_path: Path) -> None:
    q = json.loads((ds / "vqa/v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    a = json.loads((ds / "vqa/v2_mscoco_val2014_annotations.json").read_text())
    dropped = a["annotations"].pop(5)
    (tmp_path / "q.json").write_text(json.dumps(q))
    (tmp_path / "a.json").write_text(json.dumps(a))
    with pytest.raises(ValueError, match=f"a.json: no annotation for question_id {dropped['question_id']}"):
        read_vqa(tmp_path / "q.json", tmp_path / "a.json", ds / "coco2014")
    del q["questions"][1]["question"]
    (tmp_path / "q.json").write_text(json.dumps(q))
    with pytest.raises(ValueError, match=r"q.json: questions\[1\]: missing field 'question'"):
        read_vqa(tmp_path / "q.json", None, ds / "coco2014")
    with pytest.raises(FileNotFoundError, match="image .* missing"):
        read_vqa(ds / "vqa/v2_OpenEnded_mscoco_val2014_questions.json", None, tmp_path)
    (tmp_path / "list.json").write_text('["yes", "no", "yes"]')
    with pytest.raises(ValueError, match="duplicate"):
        read_answer_list(tmp_path / "list.json")


def test_vg_qa_reader(tmp_path: Path) -> None:
    (tmp_path / "qa.json").write_text(json.dumps([{"id": 1, "qas": [
        {"a_objects": [], "question": "What color is the clock?", "image_id": 1, "qa_id": 986768,
         "answer": "Green.", "q_objects": []}]}]))
    (ex,) = read_vg_qa(tmp_path / "qa.json", tmp_path, check_images=False)
    assert (ex.answers, ex.source, ex.image) == (("green",), "vg", tmp_path / "1.jpg")


def test_nlvr2_official_and_reference_formats(ds: Path, tmp_path: Path) -> None:
    dev = read_nlvr2(ds / "nlvr2/data/dev.json", ds / "nlvr2/images")
    assert len(dev) == DownstreamSizes().nlvr_dev and sum(e.label for e in dev) == len(dev) // 2
    train = read_nlvr2(ds / "nlvr2/data/train.json", ds / "nlvr2/images")
    assert all("/train/" in str(e.images[0]) for e in train)
    ref = [{"images": [str(p.relative_to(ds / "nlvr2/images")) for p in e.images], "sentence": e.sentence,
            "label": "True" if e.label else "False"} for e in dev[:3]]
    (tmp_path / "nlvr_dev.json").write_text(json.dumps(ref))
    again = read_nlvr2(tmp_path / "nlvr_dev.json", ds / "nlvr2/images")
    assert [(e.images, e.label) for e in again] == [(e.images, e.label) for e in dev[:3]]
    ref[1]["label"] = "maybe"
    (tmp_path / "bad.json").write_text(json.dumps(ref))
    with pytest.raises(ValueError, match="bad.json: row 1: field 'label'"):
        read_nlvr2(tmp_path / "bad.json", ds / "nlvr2/images")


def test_caption_karpathy_files(ds: Path) -> None:
    s = DownstreamSizes()
    train = read_karpathy_split(ds / "caption/coco_karpathy_train.json", ds / "coco2014")
    test = read_karpathy_split(ds / "caption/coco_karpathy_test.json", ds / "coco2014")
    assert len(train) == s.cap_train and len(test) == s.cap_test
    assert all(len(r.captions) == 5 for r in train + test)
    gt = read_gt_json(ds / "caption/coco_karpathy_test_gt.json")
    assert gt == {r.image_id: list(r.captions) for r in test}
    assert coco_id_from_filename("val2014/COCO_val2014_000000391895.jpg") == 391895
    assert pre_caption("A red-circle, on   grey.") == "a red circle on grey"
    assert pre_question("What colour is the Circle?") == "what colour is the circle"
    with pytest.raises(ValueError, match="empty"):
        pre_caption(" ... ")


def test_karpathy_dataset_json(tmp_path: Path) -> None:
    data = {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "restval", "cocoid": 42,
         "sentences": [{"raw": "A cat. "}]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000043.jpg", "split": "test", "cocoid": 43,
         "sentences": [{"raw": "A dog."}]}]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(data))
    train = read_karpathy_dataset(tmp_path / "dataset_coco.json", tmp_path, "train", check_images=False)
    assert [(r.image_id, r.captions) for r in train] == [(42, ("A cat.",))]
    assert train[0].image == tmp_path / "val2014/COCO_val2014_000000000042.jpg"
