"""Caption metrics through ``pycocoevalcap`` (the reference's and COCO's scorer): BLEU-1..4, METEOR, ROUGE-L, CIDEr.

Why the library and not a re-implementation: the paper's numbers come from it (PTB tokenisation, CIDEr-D
with its document frequencies computed on the evaluated references, METEOR 1.5). It needs Java: the PTB
tokenizer (Stanford CoreNLP 3.4.1) and METEOR are jars it runs with ``java``. Without Java this module
falls back to a Python tokenisation (lower-case, PTB punctuation dropped) and *skips METEOR*, saying so
in the returned ``skipped`` list; the other metrics are then close to, not identical with, the official
ones. SPICE is not computed (it downloads Stanford models at run time, which this project never does).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from xvlm.data.downstream.caption import read_gt_json
from xvlm.errors import BadInput

PTB_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}


def java_available() -> bool:
    return shutil.which("java") is not None


def _python_tokenize(captions: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
    """Fallback when Java is missing: lower-case, split off punctuation, drop PTB punctuation tokens."""
    out = {}
    for k, caps in captions.items():
        toks = [[w for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", c.lower()) if w not in PTB_PUNCT]
                for c in caps]
        out[k] = [" ".join(t) for t in toks]
    return out


def caption_scores(gts: Mapping[int, Sequence[str]], res: Mapping[int, str],
                   use_java: bool | None = None) -> dict[str, object]:
    """Corpus scores of generated captions ``res`` (one per image id) against references ``gts``.

    Returns ``{"Bleu_1".."Bleu_4", "METEOR", "ROUGE_L", "CIDEr": float, "skipped": [names], "n": int}``
    (fractions, not %: CIDEr 1.331 is the paper's 133.1). Every image of ``res`` needs references and vice
    versa.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(gts) != set(res):
        missing, extra = sorted(set(gts) - set(res))[:3], sorted(set(res) - set(gts))[:3]
        raise ValueError(f"caption ids differ: no caption for {missing}..., no references for {extra}...")
    if not res:
        raise ValueError("no captions to score")
    use_java = java_available() if use_java is None else use_java
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        g = tok.tokenize({k: [{"caption": c} for c in v] for k, v in gts.items()})
        r = tok.tokenize({k: [{"caption": v}] for k, v in res.items()})
    else:
        g, r = _python_tokenize(gts), _python_tokenize({k: [v] for k, v in res.items()})
    out: dict[str, object] = {"n": len(res), "skipped": []}
    bleu, _ = Bleu(4).compute_score(g, r, verbose=0)
    out.update({f"Bleu_{i + 1}": float(b) for i, b in enumerate(bleu)})
    out["ROUGE_L"] = float(Rouge().compute_score(g, r)[0])
    out["CIDEr"] = float(Cider().compute_score(g, r)[0])
    if use_java:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        try:
            out["METEOR"] = float(meteor.compute_score(g, r)[0])
        finally:
            del meteor  # its __del__ ends the java process
    else:
        out["skipped"] = ["METEOR (needs Java)", "PTB tokenizer (needs Java; Python fallback used)"]
    return out


def read_result_json(path: str | Path) -> dict[int, str]:
    """A COCO caption result file ``[{"image_id", "caption"}, ...]`` -> caption per image id."""
    path = Path(path)
    rows = json.loads(path.read_text())
    out: dict[int, str] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "image_id" not in row or "caption" not in row:
            raise BadInput(f"{path}: row {i}: needs 'image_id' and 'caption'")
        if int(row["image_id"]) in out:
            raise BadInput(f"{path}: row {i}: image_id {row['image_id']} appears twice")
        out[int(row["image_id"])] = str(row["caption"])
    return out


def score_caption_files(gt_json: str | Path, result_json: str | Path, use_java: bool | None = None) -> dict[str, object]:
    """Score a result file against a COCO-format ground truth (``coco_karpathy_test_gt.json``)."""
    return caption_scores(read_gt_json(gt_json), read_result_json(result_json), use_java)
