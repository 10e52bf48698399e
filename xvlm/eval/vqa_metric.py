"""VQA accuracy exactly as the official evaluation (GT-Vision-Lab/VQA ``vqaEval.py``) computes it.

Why a faithful copy instead of a "cleaner" metric: numbers must be comparable with the evaluation server's
(METHOD.md §7). The official rules, including their quirks, are kept on purpose:

- The *predicted* answer always goes through ``process_punctuation`` then ``process_digit_article``
  (number words -> digits, articles dropped, contractions restored, lower-cased).
- The *human* answers go through ``process_punctuation`` only, and only when the 10 answers are not all
  identical. (The official annotation files already hold normalised answers, so this rarely matters.)
- Accuracy of one question = mean over the 10 leave-one-annotator-out subsets of
  ``min(#matching answers among the other 9 / 3, 1)``: 3 or more matching humans score 1, and a single
  match scores 0.3 (mean of 9 subsets at 1/3 and one subset at 0).
- ``periodStrip`` is the official regex ``(?!<=\\d)(\\.)(?!\\d)`` (a look-*ahead* where a look-behind was
  meant) and the official code passes ``re.UNICODE`` as the ``count`` argument of ``sub``, so at most 32
  periods are removed; both are reproduced.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official regex (see module docstring)
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_OFFICIAL_PERIOD_COUNT = int(re.UNICODE)  # the official ``sub(..., re.UNICODE)`` passes 32 as ``count``


def process_punctuation(text: str) -> str:
    """Official ``processPunctuation``: drop or space out punctuation, strip periods not inside numbers."""
    out = text
    for p in PUNCT:
        # The condition looks at the *input* text for every symbol, as the official code does.
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """Official ``processDigitArticle``: lower-case, number words -> digits, drop articles, fix contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean_ws(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """The normalisation the official evaluation applies to a *predicted* answer."""
    return process_digit_article(process_punctuation(_clean_ws(answer)))


def vqa_score(prediction: str, human_answers: Sequence[str]) -> float:
    """Accuracy of one prediction against the human answers (normally 10), in [0, 1].

    Leave-one-out rule: for each annotator i, count the *other* answers equal to the prediction, score
    ``min(count / 3, 1)``; the question's accuracy is the mean over annotators.
    """
    if not human_answers:
        raise ValueError("vqa_score needs at least one human answer")
    pred = normalize_answer(prediction)
    gts = [_clean_ws(a) for a in human_answers]
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    matches = sum(a == pred for a in gts)
    accs = [min(1.0, (matches - (a == pred)) / 3.0) for a in gts]
    return sum(accs) / len(accs)


def vqa_accuracy(predictions: Mapping[int, str], annotations: Iterable[Mapping]) -> dict[str, float | int]:
    """Mean VQA accuracy (in %, as the server reports) over official annotation records.

    ``annotations`` are records of ``v2_mscoco_*_annotations.json`` (``question_id``, ``answers`` with
    ``answer`` fields, ``answer_type``). Every annotated question needs a prediction: a missing one is an
    error (the server refuses partial result files too), not a silent zero.
    """
    per_type: dict[str, list[float]] = {}
    scores: list[float] = []
    for ann in annotations:
        qid = ann["question_id"]
        if qid not in predictions:
            raise KeyError(f"no prediction for question_id {qid}")
        s = vqa_score(predictions[qid], [a["answer"] for a in ann["answers"]])
        scores.append(s)
        per_type.setdefault(str(ann.get("answer_type", "all")), []).append(s)
    if not scores:
        raise ValueError("vqa_accuracy: no annotations")
    out: dict[str, float | int] = {"overall": 100.0 * sum(scores) / len(scores), "n": len(scores)}
    for t, v in sorted(per_type.items()):
        out[f"type/{t}"] = 100.0 * sum(v) / len(v)
    return out


def answer_targets(human_answers: Sequence[str]) -> list[tuple[str, float]]:
    """Training targets of one question: each distinct answer weighted by its share of the annotators.

    The reference (``vqa_dataset.py``) weights an answer by count / #answers, so the weights sum to 1.
    Answers are taken as written in the annotation file (already normalised by the dataset authors).
    """
    if not human_answers:
        raise ValueError("answer_targets needs at least one answer")
    counts = Counter(_clean_ws(a) for a in human_answers)
    n = len(human_answers)
    return [(a, c / n) for a, c in counts.items()]
