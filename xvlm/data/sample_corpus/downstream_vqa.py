"""Downstream sample sets: VQA v2, NLVR2 and COCO-Karpathy captioning, in the real on-disk formats.

Why separate scenes (not the pre-training images): the fine-tuning tests must show *learning* with the
debug model in a few hundred steps, so the sets are larger than the pre-training sources, use simple scenes
(1-3 shapes, 96-128 px) and text whose answer is a pure function of the scene. Formats:

- VQA v2 (``vqa/``): ``v2_OpenEnded_mscoco_{train2014,val2014,test2015}_questions.json`` and
  ``v2_mscoco_{train2014,val2014}_annotations.json`` (10 answers per question with ``answer_confidence``
  and ``answer_id``; ``question_id = image_id * 1000 + k`` as in the real files) plus ``answer_list.json``
  (the ALBEF/X-VLM candidate list). Images: ``coco2014/{subtype}/COCO_{subtype}_{image_id:012d}.jpg``.
  About 10% of human answers are wrong, as real annotators disagree; the weights and the 10-subset
  accuracy see that.
- NLVR2 (``nlvr2/``): the official JSON-lines ``data/{train,dev,test1}.json`` (``identifier``,
  ``sentence``, ``label`` "True"/"False", urls, ``directory`` for train) and PNG pairs
  ``images/{split}[/{directory}]/{split}-{set}-{pair}-img{0,1}.png``. Sentences compare the two images
  ("The left image has more shapes than the right image.", a quarter "... more red shapes ..."); labels
  are balanced per sentence template, so the sentence alone scores 50%. Why comparisons of counts and not
  colour presence per side ("The left image contains a red shape."): from random weights the debug model
  does not learn a label that is a product of a text feature and an image feature (side or colour word x
  what the image shows) within a test's few hundred steps: its loss stays at ln 2 (docs/evaluation.md,
  NLVR2). "More shapes on the left" is a function of the images alone, which it learns; the colour-count
  sentences share that direction, so they are partly answered by it and partly need the colour word.
- Captioning (``caption/``): ALBEF/BLIP's ``coco_karpathy_{train,val,test}.json`` (train: one record per
  caption ``{caption, image, image_id}``; val/test: one per image with 5 captions) and the pycocoevalcap
  ground truth ``coco_karpathy_{val,test}_gt.json``; images under ``coco2014/val2014`` as Karpathy's.

VQA and captions draw from the ``downstream`` generator of ``Corpus.rng``, NLVR2 from its own
``downstream-nlvr2`` one, so the other sources' bytes never move when one set is redesigned.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .common import Corpus, dump_json, encode_jpeg, unique_ints
from .scenes import COLOURS, KINDS, Scene, relation, render, sample_scene

VQA_INFO = {"description": "This is v2.0 of the VQA dataset (xvlm sample corpus).", "url": "http://visualqa.org",
            "version": "2.0", "year": 2017, "contributor": "VQA Team", "date_created": "2017-04-26 17:07:13"}
VQA_LICENSE = {"url": "http://creativecommons.org/licenses/by/4.0/", "name": "Creative Commons Attribution 4.0 International License"}
COLOUR_NAMES = tuple(sorted(COLOURS))
NUMBERS = ("0", "1", "2", "3", "4")


@dataclass(frozen=True)
class DownstreamSizes:
    """Images (VQA, captioning) or pairs (NLVR2) per split; fixed so the corpus manifest stays unchanged."""

    vqa_train: int = 100
    vqa_val: int = 24
    vqa_test: int = 8
    nlvr_train: int = 800  # enough pairs that the fine-tune generalises instead of memorising (160 did)
    nlvr_dev: int = 96
    nlvr_test: int = 64
    cap_train: int = 120
    cap_val: int = 16
    cap_test: int = 24


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def small_scene(rng: np.random.Generator, n_min: int = 1, n_max: int = 3) -> Scene:
    """A 96-128 px scene with 1-3 non-overlapping, distinct shapes."""
    w, h = int(rng.integers(96, 129)), int(rng.integers(96, 129))
    return sample_scene(rng, w, h, int(rng.integers(n_min, n_max + 1)))


def write_downstream(ctx: Corpus, sizes: DownstreamSizes | None = None) -> None:
    sizes = sizes or DownstreamSizes()
    rng = ctx.rng("downstream")
    _write_vqa(ctx, rng, sizes)
    _write_nlvr2(ctx, ctx.rng("downstream-nlvr2"), sizes)
    _write_captions(ctx, rng, sizes)


# ---------------------------------------------------------------------------------------------- VQA v2
def vqa_questions(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """Three (question, answer, question_type, answer_type) true of the scene: colour, yes/no, count."""
    shapes = scene.shapes
    out = []
    kinds = [s.kind for s in shapes]
    unique = [s for s in shapes if kinds.count(s.kind) == 1]
    if unique:
        s = unique[int(rng.integers(len(unique)))]
        out.append((f"What colour is the {s.kind}?", s.colour, "what color is the", "other"))
    else:  # every kind repeated: ask for the shape of a (unique-by-construction) colour+kind's colour
        s = shapes[0]
        out.append((f"What shape is the {s.colour} one?", s.kind, "what shape is the", "other"))
    present = {(s.colour, s.kind) for s in shapes}
    if rng.random() < 0.5:
        c, k = sorted(present)[int(rng.integers(len(present)))]
        out.append((f"Is there {_a(c)} {c} {k}?", "yes", "is there a", "yes/no"))
    else:
        absent = [(c, k) for c in COLOUR_NAMES for k in KINDS if (c, k) not in present]
        c, k = absent[int(rng.integers(len(absent)))]
        out.append((f"Is there {_a(c)} {c} {k}?", "no", "is there a", "yes/no"))
    out.append(("How many shapes are there?", str(len(shapes)), "how many", "number"))
    return out


def _human_answers(rng: np.random.Generator, answer: str, answer_type: str) -> list[dict]:
    pool = {"other": [*COLOUR_NAMES, *KINDS], "yes/no": ["yes", "no"], "number": list(NUMBERS)}[answer_type]
    wrong = [a for a in pool if a != answer]
    out = []
    for i in range(10):
        a = answer if rng.random() < 0.9 else wrong[int(rng.integers(len(wrong)))]
        conf = "yes" if a == answer else str(rng.choice(["maybe", "no"]))
        out.append({"answer": a, "answer_confidence": conf, "answer_id": i + 1})
    return out


def _write_vqa(ctx: Corpus, rng: np.random.Generator, sizes: DownstreamSizes) -> None:
    splits = (("train2014", sizes.vqa_train), ("val2014", sizes.vqa_val), ("test2015", sizes.vqa_test))
    ids = iter(unique_ints(rng, sum(n for _, n in splits), 1, 581_930))
    for subtype, n in splits:
        questions, annotations = [], []
        for _ in range(n):
            image_id = next(ids)
            scene = small_scene(rng)
            ctx.write(f"coco2014/{subtype}/COCO_{subtype}_{image_id:012d}.jpg", encode_jpeg(render(scene)))
            for k, (q, a, qtype, atype) in enumerate(vqa_questions(scene, rng)):
                qid = image_id * 1000 + k
                questions.append({"image_id": image_id, "question": q, "question_id": qid})
                answers = _human_answers(rng, a, atype)
                annotations.append({
                    "question_type": qtype, "multiple_choice_answer": a, "answers": answers,
                    "image_id": image_id, "answer_type": atype, "question_id": qid,
                })
        head = {"info": VQA_INFO, "task_type": "Open-Ended", "data_type": "mscoco", "license": VQA_LICENSE,
                "data_subtype": subtype}
        ctx.write_json(f"vqa/v2_OpenEnded_mscoco_{subtype}_questions.json", {**head, "questions": questions})
        if subtype != "test2015":  # the test split has no public answers
            ctx.write_json(f"vqa/v2_mscoco_{subtype}_annotations.json", {
                "info": VQA_INFO, "license": VQA_LICENSE, "data_subtype": subtype,
                "annotations": annotations, "data_type": "mscoco"})
    ctx.write_json("vqa/answer_list.json", ["yes", "no", *NUMBERS, *COLOUR_NAMES, *KINDS])


# ---------------------------------------------------------------------------------------------- NLVR2
NLVR_TEMPLATES = 4  # templates 0-2: count of all shapes; 3: count of one colour


def nlvr_statement(left: Scene, right: Scene, template: int, colour: str) -> tuple[str, bool]:
    """Sentence ``template`` (0-3) comparing the pair's shape counts, and whether it is true."""
    if template < 3:
        n = [len(sc.shapes) for sc in (left, right)]
        return "The left image has more shapes than the right image.", n[0] > n[1]
    n = [sum(s.colour == colour for s in sc.shapes) for sc in (left, right)]
    return f"The left image has more {colour} shapes than the right image.", n[0] > n[1]


def _png(scene: Scene) -> bytes:
    buf = io.BytesIO()
    render(scene).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _write_nlvr2(ctx: Corpus, rng: np.random.Generator, sizes: DownstreamSizes) -> None:
    for split, n in (("train", sizes.nlvr_train), ("dev", sizes.nlvr_dev), ("test1", sizes.nlvr_test)):
        lines = []
        for i in range(n):
            # Balanced labels *per template* (so the sentence alone says nothing): fix the sentence, then
            # resample the pair until its truth is the wanted one.
            want, template = i % 2 == 0, (i // 2) % NLVR_TEMPLATES
            colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
            for _ in range(10_000):
                left, right = small_scene(rng), small_scene(rng)
                sentence, label = nlvr_statement(left, right, template, colour)
                if label == want:
                    break
            else:  # pragma: no cover - every template is satisfiable both ways with 1-3 shapes
                raise RuntimeError(f"could not sample an NLVR2 pair with label {want} for {sentence!r}")
            set_id, pair_id = 100 + i // 2, i % 2
            stem = f"{split}-{set_id}-{pair_id}"
            rec = {"validation": {}, "sentence": sentence, "left_url": f"https://example.org/nlvr2/{stem}-0.jpg",
                   "writer": str(int(rng.integers(1, 200))), "label": "True" if label else "False",
                   "right_url": f"https://example.org/nlvr2/{stem}-1.jpg", "synset": "n00000000 shape",
                   "query": "shapes on grey", "identifier": f"{stem}-0", "extra_validations": {}}
            folder = f"nlvr2/images/{split}"
            if split == "train":
                rec["directory"] = str(set_id % 5)
                folder = f"{folder}/{rec['directory']}"
            ctx.write(f"{folder}/{stem}-img0.png", _png(left))
            ctx.write(f"{folder}/{stem}-img1.png", _png(right))
            lines.append(rec)
        ctx.write(f"nlvr2/data/{split}.json", b"".join(dump_json(r) + b"\n" for r in lines))


# ---------------------------------------------------------------------------------------------- captions
def scene_captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` COCO-style captions (capitalised, final period) true of a 1-2 shape scene."""
    a = scene.shapes[0]
    an = _a(a.colour)
    if len(scene.shapes) == 1:
        t = [f"{an.title()} {a.name}.", f"{an.title()} {a.name} on a grey background.",
             f"A single {a.name}.", f"One {a.name} in the picture.", f"{an.title()} {a.name} on grey."]
    else:
        b = scene.shapes[1]
        bn = _a(b.colour)
        t = [f"{an.title()} {a.name} and {bn} {b.name}.",
             f"{an.title()} {a.name} {relation(a, b)} {bn} {b.name}.",
             f"Two shapes: {an} {a.name} and {bn} {b.name}.",
             f"{bn.title()} {b.name} and {an} {a.name} on grey.",
             f"{bn.title()} {b.name} {relation(b, a)} {an} {a.name}."]
    order = rng.permutation(len(t))
    return [t[int(order[i % len(t)])] for i in range(n)]


def _write_captions(ctx: Corpus, rng: np.random.Generator, sizes: DownstreamSizes) -> None:
    splits = (("train", sizes.cap_train), ("val", sizes.cap_val), ("test", sizes.cap_test))
    ids = iter(unique_ints(rng, sum(n for _, n in splits), 1, 581_930))
    cap_id = 0
    for split, n in splits:
        records, gt_images, gt_anns = [], [], []
        for _ in range(n):
            image_id = next(ids)
            folder = "train2014" if split == "train" and rng.random() < 0.5 else "val2014"
            rel = f"{folder}/COCO_{folder}_{image_id:012d}.jpg"
            scene = small_scene(rng, 1, 2)
            ctx.write(f"coco2014/{rel}", encode_jpeg(render(scene)))
            caps = scene_captions(scene, rng)
            if split == "train":
                records += [{"caption": c, "image": rel, "image_id": f"coco_{image_id}"} for c in caps]
            else:
                records.append({"image": rel, "caption": caps})
                gt_images.append({"id": image_id})
                for c in caps:
                    gt_anns.append({"image_id": image_id, "caption": c, "id": cap_id})
                    cap_id += 1
        ctx.write_json(f"caption/coco_karpathy_{split}.json", records)
        if split != "train":
            ctx.write_json(f"caption/coco_karpathy_{split}_gt.json", {"annotations": gt_anns, "images": gt_images})
