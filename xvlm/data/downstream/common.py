"""Shared pieces of the downstream readers: the error type, JSON loading, text cleaning."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from xvlm.errors import BadInput, MissingInput

MAX_WORDS = 30  # the reference's max_words for retrieval and grounding


class DownstreamFormatError(BadInput):
    """A downstream annotation file is malformed; the message names file, record and field."""


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DownstreamFormatError(f"{path}: invalid JSON: {e}") from e


def clean_text(text: Any, where: str, max_words: int = MAX_WORDS) -> str:
    """Whitespace-collapsed text cut to ``max_words`` words (the reference's ``pre_caption`` length rule).

    Case and punctuation are left to the tokenizer (lower-casing WordPiece). Empty text is an error:
    the reference's ``pre_caption`` raises on it too, and an empty caption would be a silent bad pair.
    """
    if not isinstance(text, str):
        raise DownstreamFormatError(f"{where}: expected a string, got {type(text).__name__}")
    words = re.sub(r"\s+", " ", text).strip().split(" ")
    out = " ".join(words[:max_words]).strip()
    if not out:
        raise DownstreamFormatError(f"{where}: empty text")
    return out
