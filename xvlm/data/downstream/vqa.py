"""VQA v2 readers: official question + annotation files, Visual Genome QA, the answer list.

Official files (visualqa.org): ``v2_OpenEnded_mscoco_{subtype}_questions.json`` (``questions[*].{image_id,
question, question_id}``, ``data_subtype``) and ``v2_mscoco_{subtype}_annotations.json`` (``annotations[*].
{question_id, answers[10].answer, answer_type, ...}``); test splits have questions only. Images are COCO
2014 / test2015 files ``{image_root}/{subtype}/COCO_{subtype}_{image_id:012d}.jpg``.
Visual Genome QA (``question_answers.json``): a list of ``{id, qas: [{qa_id, image_id, question, answer}]}``;
the reference trains on it with answer weight 0.5 (``VG_ANSWER_WEIGHT``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xvlm.errors import BadInput, MissingInput

VG_ANSWER_WEIGHT = 0.5  # reference vqa_dataset.py: every VG answer counts 0.5


@dataclass(frozen=True)
class VQAExample:
    question_id: int
    image_id: int
    image: Path
    question: str
    answers: tuple[str, ...]  # human answers (10 for VQA, 1 for VG, none for test splits)
    source: str = "vqa"  # "vqa" | "vg"
    answer_type: str = ""


def pre_question(text: str, max_words: int = 30) -> str:
    """The reference's ``pre_question``: lower-case, drop ``,.!?"'``, ``-``/``/`` to spaces, cap the words."""
    out = re.sub(r"([.!\"()*#:;~])", "", text.lower()).replace("-", " ").replace("/", " ")
    out = re.sub(r"[,?']", "", out).rstrip(" ")
    words = out.split()
    if not words:
        raise BadInput(f"question {text!r} is empty after cleaning")
    return " ".join(words[:max_words])


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: invalid JSON: {e}") from e


def coco_image_path(image_root: Path, subtype: str) -> Callable[[int], Path]:
    return lambda image_id: image_root / subtype / f"COCO_{subtype}_{image_id:012d}.jpg"


def read_vqa(questions_json: str | Path, annotations_json: str | Path | None, image_root: str | Path,
             check_images: bool = True) -> list[VQAExample]:
    """Join official questions and (optionally) annotations on ``question_id``.

    Every question must have exactly one annotation and vice versa when annotations are given: a mismatch
    names the file and the question id instead of dropping rows.
    """
    qpath = Path(questions_json)
    qdata = _load(qpath)
    if not isinstance(qdata, dict) or "questions" not in qdata or "data_subtype" not in qdata:
        raise BadInput(f"{qpath}: expected an object with 'questions' and 'data_subtype'")
    subtype = str(qdata["data_subtype"])
    image_of = coco_image_path(Path(image_root), subtype)
    anns: dict[int, dict] = {}
    if annotations_json is not None:
        apath = Path(annotations_json)
        adata = _load(apath)
        if not isinstance(adata, dict) or "annotations" not in adata:
            raise BadInput(f"{apath}: expected an object with 'annotations'")
        for row, a in enumerate(adata["annotations"]):
            if "question_id" not in a or not isinstance(a.get("answers"), list) or not a["answers"]:
                raise BadInput(f"{apath}: annotations[{row}]: needs 'question_id' and a non-empty 'answers'")
            anns[int(a["question_id"])] = a
    out = []
    for row, q in enumerate(qdata["questions"]):
        for key in ("image_id", "question", "question_id"):
            if key not in q:
                raise BadInput(f"{qpath}: questions[{row}]: missing field {key!r}")
        qid = int(q["question_id"])
        answers: tuple[str, ...] = ()
        atype = ""
        if annotations_json is not None:
            a = anns.pop(qid, None)
            if a is None:
                raise BadInput(f"{annotations_json}: no annotation for question_id {qid} of {qpath}")
            answers = tuple(str(x["answer"]) for x in a["answers"])
            atype = str(a.get("answer_type", ""))
        out.append(VQAExample(qid, int(q["image_id"]), image_of(int(q["image_id"])), str(q["question"]),
                              answers, "vqa", atype))
    if anns:
        raise BadInput(f"{annotations_json}: {len(anns)} annotation(s) without a question in {qpath}, "
                         f"e.g. question_id {next(iter(anns))}")
    if check_images:
        _check_images(out, qpath)
    return out


def read_vg_qa(path: str | Path, image_root: str | Path, check_images: bool = True) -> list[VQAExample]:
    """Visual Genome ``question_answers.json``; images ``{image_root}/{image_id}.jpg``."""
    path, root = Path(path), Path(image_root)
    data = _load(path)
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a JSON list of images with 'qas'")
    out = []
    for row, img in enumerate(data):
        for k, qa in enumerate(img.get("qas", [])):
            for key in ("qa_id", "image_id", "question", "answer"):
                if key not in qa:
                    raise BadInput(f"{path}: [{row}].qas[{k}]: missing field {key!r}")
            ans = str(qa["answer"]).strip().rstrip(".").lower()  # VG answers are sentences: "Green."
            out.append(VQAExample(int(qa["qa_id"]), int(qa["image_id"]), root / f"{qa['image_id']}.jpg",
                                  str(qa["question"]), (ans,), "vg"))
    if check_images:
        _check_images(out, path)
    return out


def read_answer_list(path: str | Path) -> list[str]:
    """The candidate answers ranked at inference (a JSON list of distinct strings)."""
    path = Path(path)
    data = _load(path)
    if not isinstance(data, list) or not data or not all(isinstance(a, str) and a.strip() for a in data):
        raise BadInput(f"{path}: expected a non-empty JSON list of non-empty strings")
    if len(set(data)) != len(data):
        raise BadInput(f"{path}: duplicate answers in the answer list")
    return list(data)


def _check_images(examples: list[VQAExample], source: Path) -> None:
    for ex in examples:
        if not ex.image.is_file():
            raise MissingInput(f"{source}: question_id {ex.question_id}: image {ex.image} missing")
