"""Recipes as data: the shipped recipes load, the hash follows the content, bad files are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xvlm.data.shards import load_recipe, recipe_hash


def test_shipped_recipes() -> None:
    r4, r16, demo = load_recipe("4m"), load_recipe("16m"), load_recipe("demo")
    assert r4.sources == ("coco", "vg", "sbu", "cc3m")
    assert set(r16.sources) == set(r4.sources) | {"cc12m", "objects365", "openimages"}
    # The caption word cap is the loader's one knob (METHOD.md section 4): 40 words for 4M, 30 for 16M.
    pre = Path(__file__).resolve().parents[2] / "configs" / "pretrain"
    assert [json.loads((pre / f"{n}.json").read_text())["data"]["max_words"] for n in ("4m", "16m")] == [40, 30]
    assert not hasattr(r4, "max_caption_words") and r4.min_image_side == 32
    assert "coco/test" in demo.flat_leak_splits and "refcoco+/testB" in demo.flat_leak_splits
    assert len({recipe_hash(r) for r in (r4, r16, demo)}) == 3


def test_hash_follows_content(tmp_path: Path) -> None:
    demo = load_recipe("demo")
    assert recipe_hash(demo) == recipe_hash(load_recipe("demo"))
    assert recipe_hash(demo.with_(seed=1)) != recipe_hash(demo)
    p = tmp_path / "x.json"
    p.write_text(json.dumps(demo.to_dict()))
    assert recipe_hash(load_recipe(p)) == recipe_hash(demo)  # the file's name does not matter


def test_bad_recipes(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"name": "bad", "sources": ["coco"], "shard_sise": 10}))
    with pytest.raises(ValueError, match=r"bad.json: unknown keys \['shard_sise'\]"):
        load_recipe(p)
    p.write_text(json.dumps({"name": "bad", "sources": []}))
    with pytest.raises(ValueError, match="'sources' is empty"):
        load_recipe(p)
    with pytest.raises(FileNotFoundError, match="known recipes"):
        load_recipe("nope")
