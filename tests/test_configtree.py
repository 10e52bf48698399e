"""The one strict config loader (``xvlm.configtree``) and the run-configuration tree built with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from xvlm.configtree import build
from xvlm.errors import BadInput


@dataclass
class Leaf:
    lr: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)


@dataclass
class Root:
    RENAMED = {"old_name": "name"}

    name: str = "x"
    leaf: Leaf = field(default_factory=Leaf)
    per_task: dict[str, Leaf] = field(default_factory=dict)
    pairs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    maybe: Leaf | None = None


def test_nested_sections_are_built_and_lists_become_tuples() -> None:
    r = build(Root, {"leaf": {"betas": [0.5, 0.6]}, "per_task": {"a": {"lr": 2.0}}, "pairs": {"coco": ["val"]},
                     "maybe": {"lr": 3.0}})
    assert r.leaf == Leaf(1.0, (0.5, 0.6)) and r.per_task == {"a": Leaf(2.0)} and r.pairs == {"coco": ("val",)}
    assert r.maybe == Leaf(3.0) and build(Root, {}).maybe is None


@pytest.mark.parametrize(("d", "message"), [
    ({"nmae": "y"}, r"^root: unknown keys \['nmae'\]; known: \['leaf', 'maybe', 'name', 'pairs', 'per_task'\]$"),
    ({"leaf": {"lr": 1, "lrr": 2}}, r"^root\.leaf: unknown keys \['lrr'\]"),
    ({"per_task": {"vqa": {"k": 1}}}, r"^root\.per_task\.vqa: unknown keys \['k'\]"),
    ({"leaf": 3}, r"^root\.leaf: expected a JSON object, got int 3$"),
    ({"old_name": "a", "name": "b"}, r"both 'old_name' \(deprecated\) and 'name' given"),
])
def test_every_bad_key_is_named_with_its_path(d: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        build(Root, d, "root")


def test_a_renamed_key_is_accepted_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"root\.old_name is deprecated: use root\.name"):
        assert build(Root, {"old_name": "a"}, "root").name == "a"


def test_presets_map_one_to_one_onto_the_run_config() -> None:
    """Every key of every preset is a RunConfig field (no key is dropped or renamed on the way), and the
    resolved tree round-trips through JSON."""
    from xvlm.pipeline.config import PRESETS, RunConfig, load_preset, to_json

    for path in sorted(PRESETS.glob("*.json")):
        raw = load_preset(path.stem)
        run = RunConfig.from_dict(raw)
        tree = json.loads(to_json(run))
        for key, value in raw.items():
            if isinstance(value, dict) and key not in ("model_overrides", "tags"):
                assert set(value) <= set(tree[key]), (path.name, key)
            else:
                assert key in tree, (path.name, key)
        assert RunConfig.from_dict(tree) == run
        assert run.train_config().to_dict().keys() == {k for k in tree if k not in ("recipe", "downstream")}


def test_vl_task_configs_layer_defaults_recipe_and_preset() -> None:
    from xvlm.pipeline.config import DownstreamConfig

    ds = build(DownstreamConfig, {"tasks": {"caption": {"epochs": 1}}}, "downstream")
    cap, vqa = ds.task_config("caption"), ds.task_config("vqa")
    assert (cap.epochs, cap.lr, cap.batch_size) == (1, 1e-5, 32)     # preset < recipe < TaskConfig default
    assert (vqa.epochs, vqa.lr, vqa.batch_size) == (10, 5e-5, 24)


def test_the_old_name_of_new_lr_mult_still_loads_with_a_warning() -> None:
    from xvlm.train.config import PretrainConfig

    with pytest.warns(DeprecationWarning, match=r"pretrain\.optim\.lr_mult_new is deprecated: use pretrain\.optim\.new_lr_mult"):
        cfg = PretrainConfig.from_dict({"optim": {"lr_mult_new": 3.0}})
    assert cfg.optim.new_lr_mult == 3.0 and "lr_mult_new" not in cfg.to_dict()["optim"]
