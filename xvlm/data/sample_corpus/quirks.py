"""The quirk manifest (``QUIRKS.json``): every deliberately planted defect, so tests can assert each is handled.

Why: the real datasets have known defects (negative VG boxes, missing Objects365 images, CC3M/CC12M URL
overlap, Karpathy-test leakage into COCO train2017 ...; datasets-and-tools.md §1). The sample corpus plants
a few of each *on purpose* and records where, so an ingest test can say "this row was quarantined with
this reason" instead of "some rows were dropped".

Entry fields (the contract the lake ingest is written against):

- ``id``: stable, unique string (``<source>-<kind>-<n>``)
- ``source``: dataset name (coco, karpathy_coco, flickr30k, vg, cc3m, cc12m, sbu, objects365, openimages)
- ``file``: path relative to the corpus root of the *annotation* file holding the quirky record
- ``locator``: JSON path inside ``file`` (``annotations[3]``, ``[5].regions[2]``, ``images[7]``) or, for
  TSV/CSV/parquet files, the 0-based data-row number as a decimal string (CSV header not counted)
- ``kind``: one of :data:`KINDS`
- ``expected``: what a correct ingest does (``clip``, ``quarantine:<reason>``, ``keep:<why>``)
- ``detail``: human explanation
- ``ref``: ids that identify the record without parsing ``locator`` (image_id, annotation_id, url, ...),
  and ``image_file`` (relative path) when an image file on disk is involved
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS: frozenset[str] = frozenset(
    {
        "negative_box",
        "out_of_image_box",
        "zero_size_box",
        "empty_caption",
        "coco_vg_shared_image",
        "cc3m_cc12m_duplicate_url",
        "corrupt_jpeg",
        "missing_image",
        "karpathy_test_in_train",
        "crowd_box",
        "vg_object_without_attributes",
        "objects365_missing_image",
        "grayscale_image",
        "failed_download",
        "objects365_fake_or_reflected",
        "person_placeholder",
        "unbalanced_quote",
    }
)


@dataclass(frozen=True)
class Quirk:
    id: str
    source: str
    file: str
    locator: str
    kind: str
    expected: str
    detail: str
    ref: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "file": self.file,
            "locator": self.locator,
            "kind": self.kind,
            "expected": self.expected,
            "detail": self.detail,
            "ref": self.ref,
        }


class QuirkLog:
    """Collects quirks while the writers run; ids are numbered per (source, kind) in planting order."""

    def __init__(self) -> None:
        self._quirks: list[Quirk] = []
        self._counts: dict[tuple[str, str], int] = {}

    def add(
        self,
        source: str,
        file: str,
        locator: str,
        kind: str,
        expected: str,
        detail: str,
        **ref: Any,
    ) -> Quirk:
        if kind not in KINDS:
            raise ValueError(f"unknown quirk kind {kind!r} (add it to quirks.KINDS)")
        n = self._counts.get((source, kind), 0)
        self._counts[(source, kind)] = n + 1
        q = Quirk(f"{source}-{kind}-{n}", source, file, locator, kind, expected, detail, dict(ref))
        self._quirks.append(q)
        return q

    @property
    def quirks(self) -> list[Quirk]:
        return list(self._quirks)

    def manifest(self, seed: int) -> dict[str, Any]:
        return {"seed": seed, "quirks": [q.to_json() for q in self._quirks]}
