"""Typed configuration of the lake ingest: where each source's files are, and the lake's knobs.

Paths are relative to ``raw_root`` unless absolute, so a user points one source at a real download
(``dataclasses.replace(cfg, vg=VgPaths(region_descriptions="/data/vg/region_descriptions.json", ...))``)
and keeps the defaults (the layout of the sample corpus and of the official archives) for the rest.
A source set to ``None`` is not ingested. ``IngestConfig.to_dict``/``from_dict`` are the JSON variant.

File names: THE one place they are defined (the CLI's ``--file``, ``xvlm prepare`` and the ingest all
read them from here). A file field holds one name or a tuple of alternatives, the names of each released
version, first existing one wins (:meth:`IngestConfig.pick`); ``IngestConfig.with_files({"vg.objects":
"vg/objects_v1_2.json"})`` overrides any of them by its dotted key (:data:`FILE_KEYS` lists the keys).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from xvlm.configtree import build
from xvlm.errors import BadInput

SOURCES: tuple[str, ...] = (
    "coco", "karpathy", "flickr30k", "vg", "cc3m", "cc12m", "sbu", "objects365", "openimages",
)


# A configured input file: one name, or alternatives (the names of each released version; first existing wins).
FileSpec = Union[str, tuple[str, ...]]  # noqa: UP007 - configtree reads the hint at run time


def alternatives(spec: FileSpec) -> tuple[str, ...]:
    """The names a file spec accepts, in order of preference."""
    return (spec,) if isinstance(spec, str) else tuple(spec)


class LakeInputError(BadInput):
    """An input file is unusable as a whole (truncated, wrong encoding, wrong layout); names the file."""

    def __init__(self, file: str | Path, detail: str) -> None:
        super().__init__(f"{file}: {detail}")
        self.file = str(file)
        self.detail = detail


@dataclass(frozen=True)
class CocoPaths:
    """COCO 2017: one captions and one instances JSON (single top-level object) per split."""

    captions: dict[str, str] = field(default_factory=lambda: {
        "train2017": "coco/annotations/captions_train2017.json",
        "val2017": "coco/annotations/captions_val2017.json"})
    instances: dict[str, str] = field(default_factory=lambda: {
        "train2017": "coco/annotations/instances_train2017.json",
        "val2017": "coco/annotations/instances_val2017.json"})
    image_dirs: dict[str, str] = field(default_factory=lambda: {
        "train2017": "coco/train2017", "val2017": "coco/val2017"})


# RefCOCO+ evaluation files in the reference fine-tuning's form, by split (the sample corpus layout).
REFCOCO_PLUS_SPLITS: dict[str, str] = {
    "val": "refcoco+/refcoco+_val.json", "testA": "refcoco+/refcoco+_testA.json",
    "testB": "refcoco+/refcoco+_testB.json"}


@dataclass(frozen=True)
class KarpathyPaths:
    """Downstream split files; they feed the ``splits`` table (None = not given).

    ``coco`` / ``flickr30k``: Karpathy's ``dataset_*.json``. ``refcoco_plus``: split name -> RefCOCO+
    file of the reference fine-tuning (``[{image, text, ref_id}]``). Left at the default layout, it is
    skipped when none of those files exists; any other value must name existing files. Whichever of
    ``coco`` / ``flickr30k`` is present is read (only COCO downloaded is fine); neither present is an error.
    """

    coco: FileSpec | None = "karpathy/dataset_coco.json"
    flickr30k: FileSpec | None = "karpathy/dataset_flickr30k.json"
    refcoco_plus: dict[str, str] | None = field(default_factory=lambda: dict(REFCOCO_PLUS_SPLITS))


@dataclass(frozen=True)
class Flickr30kPaths:
    """Flickr30K images and captions, taken from Karpathy's ``dataset_flickr30k.json``."""

    annotations: str = "karpathy/dataset_flickr30k.json"
    image_dir: str = "flickr30k/flickr30k-images"


@dataclass(frozen=True)
class VgPaths:
    """Visual Genome: top-level JSON arrays, one element per image; images under ``image_root/VG_100K*/``."""

    # VG 1.2 / 1.4 archives unpack to these names; some mirrors keep the version suffix.
    image_data: FileSpec = ("vg/image_data.json", "vg/image_data_v1_2.json")
    region_descriptions: FileSpec = ("vg/region_descriptions.json", "vg/region_descriptions_v1_2.json")
    objects: FileSpec = ("vg/objects.json", "vg/objects_v1_4.json", "vg/objects_v1_2.json")
    attributes: FileSpec | None = ("vg/attributes.json", "vg/attributes_v1_2.json")
    image_root: str = "vg"


@dataclass(frozen=True)
class WebCaptionPaths:
    """A web-caption source and its img2dataset output folder.

    ``layout`` says how the caption file is laid out: ``caption_url`` (CC3M TSV), ``url_caption``
    (CC12M TSV), ``sbu_json`` (SBU's dict of parallel lists). Both TSVs have no header.
    """

    captions: str
    layout: str
    images_dir: str
    split: str = "train"


@dataclass(frozen=True)
class Objects365Paths:
    """Objects365 v2 (or v1): COCO-format JSON per split; images at ``image_dirs[split]/patchN/<file>``."""

    annotations: dict[str, FileSpec] = field(default_factory=lambda: {
        "train": ("objects365/zhiyuan_objv2_train.json", "objects365/objects365_train.json")})
    image_dirs: dict[str, str] = field(default_factory=lambda: {"train": "objects365/train"})


@dataclass(frozen=True)
class OpenImagesPaths:
    """OpenImages boxes CSV per split (header, normalised XMin/XMax/YMin/YMax) and class names."""

    # V6/V7 boxes are oidv6-*; V5 has no prefix. Class names: V7 oidv7-*, V6 oidv6-*, V5/V6 unprefixed.
    boxes: dict[str, FileSpec] = field(default_factory=lambda: {
        "train": ("openimages/oidv6-train-annotations-bbox.csv", "openimages/train-annotations-bbox.csv")})
    class_descriptions: FileSpec = ("openimages/oidv6-class-descriptions-boxable.csv",
                                    "openimages/oidv7-class-descriptions-boxable.csv",
                                    "openimages/class-descriptions-boxable.csv")
    image_dirs: dict[str, str] = field(default_factory=lambda: {"train": "openimages/train"})
    # Optional image size index, CSV ``ImageID,Width,Height`` (not in the release, whose box coordinates
    # are normalised): gives the boxes pixel coordinates without reading the JPEG headers (a run with
    # check_images off); with checks on, a file whose header disagrees is image_size_mismatch.
    image_sizes: FileSpec | None = None


@dataclass(frozen=True)
class IngestConfig:
    """Everything one ingest needs. ``out`` is the lake root; ``lake.duckdb`` is written inside it."""

    raw_root: Path
    out: Path
    coco: CocoPaths | None = field(default_factory=CocoPaths)
    karpathy: KarpathyPaths | None = field(default_factory=KarpathyPaths)
    flickr30k: Flickr30kPaths | None = field(default_factory=Flickr30kPaths)
    vg: VgPaths | None = field(default_factory=VgPaths)
    cc3m: WebCaptionPaths | None = field(default_factory=lambda: WebCaptionPaths(
        "cc3m/Train_GCC-training.tsv", "caption_url", "cc3m/images"))
    cc12m: WebCaptionPaths | None = field(default_factory=lambda: WebCaptionPaths(
        "cc12m/cc12m.tsv", "url_caption", "cc12m/images"))
    sbu: WebCaptionPaths | None = field(default_factory=lambda: WebCaptionPaths(
        "sbu/sbu-captions-all.json", "sbu_json", "sbu/images"))
    objects365: Objects365Paths | None = field(default_factory=Objects365Paths)
    openimages: OpenImagesPaths | None = field(default_factory=OpenImagesPaths)
    # The box rule (docs/lake.md): a box partly outside the image is clipped to it when the clipped
    # box keeps at least this fraction of its area, else quarantined as box_out_of_image.
    min_kept_fraction: float = 0.5
    # Read JPEG headers (PIL, no decode) of on-disk images: existence, readability, size.
    check_images: bool = True
    # An on-disk image whose shorter side is below this (pixels, from its header) is quarantined
    # image_too_small (xvlm/data/lake/images.py); 1 accepts every readable image.
    min_image_side: int = 32
    # VG regions through the fused single pass (xvlm/data/lake/fused.py): parse + box rule + write in one
    # streamed COPY. False = the generic candidate -> final path. The lake is identical either way.
    fused_regions: bool = True
    # Skip a source whose files are missing instead of failing (the sample corpus has them all).
    skip_missing_sources: bool = False
    # A single-object COCO-format JSON file (COCO captions/instances, Objects365) larger than this is
    # parsed in parts of about half this size, cut at element boundaries (xvlm/data/lake/ranges.py):
    # DuckDB parses an object whole, in several times its size of memory and at most 4 GiB. The lake is
    # identical either way (tests/data/test_lake_cocofmt_parts.py), so it is not part of the fingerprint.
    json_stream_threshold: int = 128 << 20
    memory_limit: str = "2GB"
    threads: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw_root", Path(self.raw_root))
        object.__setattr__(self, "out", Path(self.out))
        if not 0.0 < self.min_kept_fraction <= 1.0:
            raise BadInput(f"min_kept_fraction must be in (0, 1], got {self.min_kept_fraction}")
        if isinstance(self.min_image_side, bool) or not isinstance(self.min_image_side, int) \
                or self.min_image_side < 1:
            raise BadInput(f"min_image_side must be an integer >= 1, got {self.min_image_side!r}")

    def resolve(self, rel: str | Path) -> Path:
        """A configured path: absolute as given, else under ``raw_root``."""
        p = Path(rel)
        return p if p.is_absolute() else self.raw_root / p

    def pick(self, spec: FileSpec) -> str:
        """The configured name to read: the first alternative that exists, else the first (whose error
        then names it)."""
        alts = alternatives(spec)
        return next((a for a in alts if self.resolve(a).is_file()), alts[0])

    def paths(self, source: str) -> Any:
        """``source``'s path section with every file alternative resolved to the one name read
        (:meth:`pick`), so the parse, the fingerprint and the quarantine all see one plain string."""
        if source not in SOURCES:
            raise BadInput(f"unknown source {source!r}; the sources are: {', '.join(SOURCES)}")
        p = getattr(self, source)
        if p is None:
            raise BadInput(f"source {source!r} is disabled in the config")
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if isinstance(v, tuple):
                changes[f.name] = self.pick(v)
            elif isinstance(v, dict) and any(isinstance(x, tuple) for x in v.values()):
                changes[f.name] = {k: self.pick(x) if isinstance(x, tuple) else x for k, x in v.items()}
        return dataclasses.replace(p, **changes) if changes else p

    def with_files(self, overrides: dict[str, str]) -> IngestConfig:
        """A copy with file names replaced by dotted key: ``{"openimages.class_descriptions": "x.csv",
        "coco.captions.val2017": "y.json"}`` (:data:`FILE_KEYS`); a key ``source.field.split`` adds a split."""
        cfg = self
        for key, value in overrides.items():
            parts = key.split(".")
            if len(parts) not in (2, 3) or parts[0] not in SOURCES:
                raise BadInput(f"--file {key}={value}: key must be SOURCE.FIELD[.SPLIT]; known: {', '.join(FILE_KEYS)}")
            paths = getattr(cfg, parts[0])
            if paths is None:
                raise BadInput(f"--file {key}={value}: source {parts[0]!r} is disabled in the config")
            names = {f.name for f in dataclasses.fields(paths)}
            if parts[1] not in names:
                raise BadInput(f"--file {key}={value}: {parts[0]} has no file {parts[1]!r}; known: "
                               f"{', '.join(k for k in FILE_KEYS if k.startswith(parts[0] + '.'))}")
            current = getattr(paths, parts[1])
            if len(parts) == 3:
                if not isinstance(current, dict):
                    raise BadInput(f"--file {key}={value}: {parts[0]}.{parts[1]} has no splits")
                new: Any = {**current, parts[2]: value}
            elif isinstance(current, dict):
                raise BadInput(f"--file {key}={value}: {parts[0]}.{parts[1]} is per split: name one, "
                               f"e.g. {parts[0]}.{parts[1]}.{next(iter(current), 'train')}")
            else:
                new = value
            cfg = dataclasses.replace(cfg, **{parts[0]: dataclasses.replace(paths, **{parts[1]: new})})
        return cfg

    def enabled_sources(self) -> list[str]:
        return [s for s in SOURCES if getattr(self, s) is not None]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["raw_root"], d["out"] = str(self.raw_root), str(self.out)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestConfig:
        """Strict (``xvlm.configtree``): per-source path sections built, unknown keys refused."""
        return build(cls, d, "ingest")


# Every configurable input path, as the dotted keys of IngestConfig.with_files (and `xvlm ingest --file`).
FILE_KEYS: tuple[str, ...] = (
    "coco.captions.SPLIT", "coco.instances.SPLIT", "coco.image_dirs.SPLIT",
    "karpathy.coco", "karpathy.flickr30k", "karpathy.refcoco_plus.SPLIT",
    "flickr30k.annotations", "flickr30k.image_dir",
    "vg.image_data", "vg.region_descriptions", "vg.objects", "vg.attributes", "vg.image_root",
    "cc3m.captions", "cc3m.images_dir", "cc12m.captions", "cc12m.images_dir", "sbu.captions", "sbu.images_dir",
    "objects365.annotations.SPLIT", "objects365.image_dirs.SPLIT",
    "openimages.boxes.SPLIT", "openimages.class_descriptions", "openimages.image_dirs.SPLIT",
    "openimages.image_sizes",
)
