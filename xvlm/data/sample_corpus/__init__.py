"""Embedded sample corpus: a few MB of every raw source, in the real on-disk formats, with planted quirks.

Why: tests, the demo and the lake ingest need the *real* file formats (COCO JSON objects, VG parallel arrays,
CC3M vs CC12M column order, img2dataset tar+parquet folders ...) without downloading anything. Images are
real photos from scikit-image plus shape scenes whose captions and boxes are true of the pixels, so a tiny
model can learn from them. Each known dataset defect is planted a few times and listed in ``QUIRKS.json``.

Output is a pure function of ``(seed, sizes)``: byte-identical across runs. Each source draws from its own
generator (``Corpus.rng(name)``), so extending one source does not change the others' bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from xvlm.errors import BadInput, OutputExists

from .coco import write_coco
from .common import Corpus
from .detection import write_objects365, write_openimages
from .downstream_retrieval import write_downstream_retrieval
from .downstream_vqa import write_downstream
from .flickr import write_flickr30k
from .vg import write_vg
from .web import write_cc3m, write_cc12m, write_sbu

__all__ = ["CorpusSizes", "write_sample_corpus", "MANIFEST"]

MANIFEST = "QUIRKS.json"


@dataclass(frozen=True)
class CorpusSizes:
    """Images per source. Minimums keep every planted quirk addressable."""

    coco_train: int = 36
    coco_val: int = 12
    vg: int = 40
    cc3m: int = 40
    cc12m: int = 30
    sbu: int = 30
    objects365: int = 16
    openimages: int = 16
    flickr30k: int = 20

    def __post_init__(self) -> None:
        minimum = {"coco_train": 16, "coco_val": 4, "vg": 16, "cc3m": 20, "cc12m": 12, "sbu": 10,
                   "objects365": 8, "openimages": 8, "flickr30k": 7}
        for name, low in minimum.items():
            if getattr(self, name) < low:
                raise BadInput(f"CorpusSizes.{name}={getattr(self, name)} is below the minimum {low}")


def _writers(sizes: CorpusSizes) -> list[Callable[[Corpus], None]]:
    """One writer per source family, in dependency order (VG reuses COCO images, CC12M a CC3M URL)."""
    return [
        lambda c: write_coco(c, sizes.coco_train, sizes.coco_val),
        lambda c: write_flickr30k(c, sizes.flickr30k),
        lambda c: write_vg(c, sizes.vg),
        lambda c: write_cc3m(c, sizes.cc3m),
        lambda c: write_cc12m(c, sizes.cc12m),
        lambda c: write_sbu(c, sizes.sbu),
        lambda c: write_objects365(c, sizes.objects365),
        lambda c: write_openimages(c, sizes.openimages),
        write_downstream,  # VQA v2, NLVR2, Karpathy captions (own RNG stream; fixed sizes)
        write_downstream_retrieval,  # retrieval + RefCOCO+ grounding splits (own RNG streams; fixed sizes)
    ]


def write_sample_corpus(
    root: Path, seed: int = 0, sizes: CorpusSizes | None = None, overwrite: bool = False
) -> Path:
    """Generate the corpus into ``root`` atomically (temp dir + rename) and return ``root``.

    Refuses a non-empty ``root`` unless ``overwrite``; on any error nothing is left at ``root``.
    """
    root = Path(root).absolute()
    sizes = sizes or CorpusSizes()
    if root.exists() and not root.is_dir():
        raise OutputExists(f"{root} exists and is not a directory")
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise OutputExists(f"{root} is not empty; pass overwrite=True to replace it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{root.name}.tmp-", dir=root.parent))
    try:
        ctx = Corpus(tmp, seed)
        for write in _writers(sizes):
            write(ctx)
        manifest = ctx.quirks.manifest(seed)
        manifest["sizes"] = asdict(sizes)
        ctx.write(MANIFEST, _pretty(manifest))
        tmp.chmod(0o755)
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{root.name}.old-", dir=root.parent))
            root.rename(old / "corpus")
            tmp.rename(root)
            shutil.rmtree(old)
        else:
            tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _pretty(obj: object) -> bytes:
    from .common import dump_json

    return dump_json(obj, indent=1) + b"\n"
