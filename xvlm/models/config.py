"""Typed model configs and the named-variant registry.

Architecture is data: each named variant is a small JSON file in ``xvlm/models/configs/`` (open_clip style),
parsed into the dataclasses below. ``get_config("xvlm-base")`` returns a fresh copy; ``register_config``
refuses a name that is already taken so two files can never silently shadow each other.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from xvlm.configtree import build
from xvlm.errors import BadInput, BadKey

CONFIG_DIR = Path(__file__).with_name("configs")

ItcGrad = Literal["global", "reference"]
ItmNegatives = Literal["hard", "uniform"]
ItmExclusion = Literal["image", "diagonal"]
TextPositives = Literal["identical", "diagonal"]


@dataclass
class VisionConfig:
    """Swin vision tower (timm ``SwinTransformer``, no classifier head)."""

    img_size: int = 224
    patch_size: int = 4  # Swin stem; the effective token stride is patch_size * 2**(stages-1) = 32
    window_size: int = 7  # 7 at 224, 12 at 384 (METHOD.md §2)
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    # "sincos": a fixed 2-D sin-cos absolute position embedding added to the patch-embedding tokens. Not in
    # the reference (Swin has relative position bias only, METHOD.md §2): a from-scratch debug tower with a
    # 2x2 / 3x3 output grid otherwise gives the cross encoder almost no token positions for bbox regression
    # (docs/training.md, Known gaps). Buffer only, no parameters: checkpoints are unchanged.
    pos_embed: str = "none"

    @property
    def width(self) -> int:
        """Channel width of the last stage (1024 for Swin-B)."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def stride(self) -> int:
        """Pixels per output token along one side (32 for Swin)."""
        return self.patch_size * 2 ** (len(self.depths) - 1)

    @property
    def grid_size(self) -> int:
        """Output tokens per side: 7 at 224, 12 at 384."""
        return self.img_size // self.stride


@dataclass
class TextConfig:
    """BERT split into a text encoder (first ``num_text_layers``) and a cross encoder (the rest)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    num_text_layers: int = 6
    num_cross_layers: int = 6
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0


@dataclass
class XVLMConfig:
    """Whole model: towers, projection/temperature and the loss switches that change maths."""

    name: str = "custom"
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    embed_dim: int = 256  # ITC projection width
    temp: float = 0.07
    temp_min: float = 0.001
    temp_max: float = 0.5
    # ITC gradient convention across ranks (METHOD.md §3, docs/model.md):
    #   "global": the gather's backward all-reduces, so after DDP averaging the ITC gradient is exactly the
    #             gradient of the global-batch loss (same scale as ITM/MLM);
    #   "reference": the X-VLM reference's gather (local slice only): ITC gradient is 1/world_size of that.
    itc_grad: ItcGrad = "global"
    # How ITM negatives are drawn (METHOD.md §3, docs/training.md "ITM negatives"):
    #   "hard": the reference, one negative per row with probability softmax(ITC similarity) + 1e-5;
    #   "uniform": uniformly among the allowed columns. For from-scratch models (the debug/demo presets):
    #             until ITC is informative, hard negatives are mostly the most similar *true* pairs, and
    #             ITM stays at its prior (measured in docs/training.md).
    itm_negatives: ItmNegatives = "hard"
    # Which pairs the ITM sampler never draws as negatives (METHOD.md §3, docs/model.md deviations):
    #   "image": every pair sharing an image id (ours: same-image regions are not negatives);
    #   "diagonal": the positive pair only (the reference's pre-training rule), to reproduce it exactly.
    itm_exclusion: ItmExclusion = "image"
    # Identical texts (same attended token ids) in pre-training (docs/training.md, "Identical texts"):
    #   "identical": positives of each other in ITC and never ITM negatives (ours);
    #   "diagonal": ITC targets the diagonal only and the sampler may draw them (the reference).
    text_positives: TextPositives = "identical"
    # Image mean/std applied by the data path (CLIP's, as the reference).
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    def __post_init__(self) -> None:
        if self.vision.img_size % self.vision.stride:
            raise BadInput(f"config {self.name!r}: img_size {self.vision.img_size} not a multiple of "
                             f"the vision stride {self.vision.stride}")
        if self.text.hidden_size % self.text.num_heads:
            raise BadInput(f"config {self.name!r}: text.hidden_size not divisible by text.num_heads")
        if self.itc_grad not in ("global", "reference"):
            raise BadInput(f"config {self.name!r}: itc_grad must be 'global' or 'reference', "
                             f"got {self.itc_grad!r}")
        if self.itm_negatives not in ("hard", "uniform"):
            raise BadInput(f"config {self.name!r}: itm_negatives must be 'hard' or 'uniform', "
                             f"got {self.itm_negatives!r}")
        for name, allowed in (("itm_exclusion", ("image", "diagonal")), ("text_positives", ("identical", "diagonal"))):
            if getattr(self, name) not in allowed:
                raise BadInput(f"config {self.name!r}: {name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0 < self.temp_min <= self.temp <= self.temp_max:
            raise BadInput(f"config {self.name!r}: need 0 < temp_min <= temp <= temp_max")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XVLMConfig:
        """Build from a JSON-style dict; unknown keys are an error (typos must not pass silently)."""
        return build(cls, copy.deepcopy(d), "model")

    def replace(self, **changes: Any) -> XVLMConfig:
        """Copy with top-level fields changed (``vision``/``text`` accept dicts of field changes)."""
        d = self.to_dict()
        for k, v in changes.items():
            if k in ("vision", "text") and isinstance(v, dict):
                d[k].update(v)
            else:
                d[k] = v
        return XVLMConfig.from_dict(d)


_REGISTRY: dict[str, XVLMConfig] = {}


def register_config(cfg: XVLMConfig) -> None:
    """Add a named variant; a name can be registered once only."""
    if cfg.name in _REGISTRY:
        raise BadInput(f"model config {cfg.name!r} is already registered")
    _REGISTRY[cfg.name] = copy.deepcopy(cfg)


def load_config_file(path: str | Path) -> XVLMConfig:
    """Parse one JSON variant; the ``name`` defaults to the file stem."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: invalid JSON: {e}") from e
    d.setdefault("name", path.stem)
    try:
        return XVLMConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise BadInput(f"{path}: {e}") from e


def list_configs() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> XVLMConfig:
    """A fresh copy of a registered variant (callers may mutate it)."""
    if name not in _REGISTRY:
        raise BadKey(f"unknown model config {name!r}; known: {list_configs()}")
    return copy.deepcopy(_REGISTRY[name])


for _p in sorted(CONFIG_DIR.glob("*.json")):
    register_config(load_config_file(_p))
