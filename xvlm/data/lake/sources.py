"""Per-source parsing: which ``sql/lake`` files read which input files into the candidate tables.

Every parse function fills some of ``cand_images``, ``cand_captions``, ``cand_boxes``, ``cand_splits``
and ``cand_rejects`` (created empty beforehand); everything after that - image checks, the box rule,
dedup, quarantine, writing - is shared (:mod:`xvlm.data.lake.ingest`). The ``file`` column records the
path as configured (relative to the raw root for the defaults), which is also what ``quarantine.file``
and error messages show.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from xvlm.data.lake import fingerprint as fp
from xvlm.data.lake import ranges
from xvlm.data.lake.config import (
    REFCOCO_PLUS_SPLITS,
    CocoPaths,
    Flickr30kPaths,
    IngestConfig,
    KarpathyPaths,
    LakeInputError,
    Objects365Paths,
    OpenImagesPaths,
    VgPaths,
    WebCaptionPaths,
)
from xvlm.data.lake.lines import isolate_lines, read_class_lines
from xvlm.data.lake.sqlrun import SqlRunner
from xvlm.errors import BadInput

_UINT32_MAX = 2**32 - 1
_OI_BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf")
_OI_SIZE_COLUMNS = ("ImageID", "Width", "Height")


@dataclass(frozen=True)
class SourceInputs:
    """What a source reads: annotation files (content-hashed) and image folders (listing-hashed)."""

    files: list[Path]
    image_dirs: list[Path]
    check_files: bool  # images are expected on disk (not in img2dataset tars)


def max_object_size(path: Path) -> int:
    """``maximum_object_size`` for a single-object JSON file: its own size, so memory is bounded by it."""
    size = path.stat().st_size + 1
    if size > _UINT32_MAX:
        raise LakeInputError(path, f"single JSON object of {size} bytes exceeds DuckDB's 4 GiB "
                                   "maximum_object_size; split the file (images/annotations) first")
    return max(size, 1024)


def check_utf8(path: Path) -> None:
    """Raise naming the file and byte offset if it is not valid UTF-8.

    DuckDB's JSON reader lets invalid bytes inside strings through into VARCHAR, so JSON inputs are
    validated here (a streamed incremental decode, ~1 GB/s); TSV/CSV lines are checked by read_csv
    itself and quarantined one by one (invalid_utf8). The fingerprint already read the file and
    recorded its verdict (same size and mtime): then it is not read again.
    """
    known, detail = fp.utf8_verdict(path)
    if not known:
        detail = fp.scan_utf8(path)
    if detail is not None:
        raise LakeInputError(path, detail)


def _need(cfg: IngestConfig, rel: str) -> Path:
    """The file ``rel`` names, checked usable as a whole: present, readable, not empty or blank,
    valid UTF-8 (JSON). Anything else is a :class:`LakeInputError` naming it (a file-level error)."""
    p = cfg.resolve(rel)
    if p.is_dir():
        raise LakeInputError(rel, "a folder, not a file")
    if not p.is_file():
        raise LakeInputError(rel, "input file not found" + (" (a dangling link?)" if p.is_symlink() else ""))
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise LakeInputError(rel, f"unreadable ({exc.strerror or exc})") from exc
    if size == 0:
        raise LakeInputError(rel, "empty file (0 bytes)")
    if size <= len(head) and not head.strip():
        raise LakeInputError(rel, f"only whitespace ({size} bytes)")
    if p.suffix == ".json":
        try:
            check_utf8(p)
        except LakeInputError as exc:
            raise LakeInputError(rel, exc.detail) from exc
    return p


# Candidate tables held in memory whose rows name their input file (rolled back with the file).
_MEMORY_TABLES = ("cand_rejects", "cand_aux")


@contextmanager
def input_file(run: SqlRunner, rel: str, entities: tuple[str, ...]) -> Iterator[None]:
    """Parse one input file in isolation: it holds ``entities`` (listed in the stats, zero rows
    included); if it cannot be used as a whole, its rows are rolled back and the error is recorded in
    ``run.file_errors`` - the source's other files, and every other source, still ingest."""
    have = run.file_entities.setdefault(rel, [])
    have.extend(e for e in entities if e not in have)
    mark = run.mark()
    try:
        yield
    except (LakeInputError, OSError) as exc:
        run.rollback(mark, rel, _MEMORY_TABLES)
        detail = exc.detail if isinstance(exc, LakeInputError) else f"unreadable ({exc.strerror or exc})"
        run.file_errors.setdefault(rel, detail)


# ---------------------------------------------------------------- inputs (for fingerprints)

def source_inputs(cfg: IngestConfig, source: str) -> SourceInputs:
    """The files and image folders ``source`` reads, per its config (alternatives resolved)."""
    p = cfg.paths(source)
    r = cfg.resolve
    if isinstance(p, CocoPaths):
        return SourceInputs([r(f) for f in [*p.captions.values(), *p.instances.values()]],
                            [r(d) for d in p.image_dirs.values()], True)
    if isinstance(p, KarpathyPaths):
        files = [r(f) for f in karpathy_files(cfg, p).values()] + [r(f) for f in refcoco_plus_files(cfg, p).values()]
        return SourceInputs(files, [], False)
    if isinstance(p, Flickr30kPaths):
        return SourceInputs([r(p.annotations)], [r(p.image_dir)], True)
    if isinstance(p, VgPaths):
        files = [p.image_data, p.region_descriptions, p.objects] + ([p.attributes] if p.attributes else [])
        return SourceInputs([r(f) for f in files], [r(p.image_root)], True)
    if isinstance(p, WebCaptionPaths):
        return SourceInputs([r(p.captions)], [r(p.images_dir)], False)
    if isinstance(p, Objects365Paths):
        return SourceInputs([r(f) for f in p.annotations.values()], [r(d) for d in p.image_dirs.values()], True)
    if isinstance(p, OpenImagesPaths):
        sizes = [p.image_sizes] if p.image_sizes else []
        return SourceInputs([r(f) for f in [*p.boxes.values(), p.class_descriptions, *sizes]],
                            [r(d) for d in p.image_dirs.values()], True)
    raise BadInput(f"unknown source {source!r}")


def source_settings(cfg: IngestConfig, source: str) -> dict:
    """The config that changes a source's output (part of its fingerprint)."""
    return {"source": source, "paths": asdict(cfg.paths(source)),
            "min_kept_fraction": cfg.min_kept_fraction, "check_images": cfg.check_images,
            "min_image_side": cfg.min_image_side}


# ---------------------------------------------------------------- parse functions

def _cocofmt_docs(run: SqlRunner, cfg: IngestConfig, rel: str, path: Path,
                  doc: str = "cocofmt_doc") -> Iterator[tuple[str | None, int]]:
    """Fill table ``doc`` (``cocofmt_doc``, or ``karpathy_doc`` for Karpathy's ``{"images": [...]}`` files)
    from a single-object file and yield ``(member, idx_base)`` after each fill:
    ``(None, 0)`` once for a file parsed whole; for one over ``cfg.json_stream_threshold``, once per part
    (:func:`ranges.cocofmt_parts`: ``"images"`` or ``"annotations"``, and how many elements of that
    array came before the part, which keeps locators and ``ord`` those of the whole file). A part that
    does not parse, or a file that is not one object, raises naming the file: nothing is written."""
    if path.stat().st_size <= cfg.json_stream_threshold:
        run.create(doc, doc, file=rel, path=path, max_object_size=max_object_size(path))
        yield None, 0
        return
    try:
        members = ranges.object_members(path, max(1, cfg.json_stream_threshold // 2))
    except ranges.JsonShapeError as exc:
        raise LakeInputError(rel, f"not one well-formed JSON object ({exc})") from exc
    base = {"images": 0, "annotations": 0}
    part_dir = (run.stage_dir or cfg.out / "_tmp") / f"cocofmt-{uuid.uuid4().hex}"
    try:
        for key, part, (a, z) in ranges.cocofmt_parts(path, members, part_dir):
            try:
                run.create(doc, doc, file=rel, path=part, max_object_size=max_object_size(part))
            except LakeInputError as exc:
                raise LakeInputError(rel, f"{key} bytes {a}-{z}: {exc.detail}") from exc
            finally:
                part.unlink(missing_ok=True)
            yield key, base[key]
            n_images, n_annotations = run.query(f"{doc}_lens")[0]
            base["images"] += int(n_images)
            base["annotations"] += int(n_annotations)
    except ranges.JsonShapeError as exc:
        raise LakeInputError(rel, f"not one well-formed JSON object ({exc})") from exc
    finally:
        shutil.rmtree(part_dir, ignore_errors=True)


def parse_coco(run: SqlRunner, cfg: IngestConfig, p: CocoPaths) -> None:
    """Captions and instances files; the ``images`` of EVERY file are read (an image listed identically
    in two files is one image, a conflicting record is duplicate_id). A file over the stream threshold is
    parsed in parts (``_cocofmt_docs``)."""
    for kind, files in (("captions", p.captions), ("instances", p.instances)):
        for split, rel in files.items():
            entities = ("images", "captions") if kind == "captions" else ("images", "objects", "categories")
            with input_file(run, rel, entities):
                path = _need(cfg, rel)
                for part, base in _cocofmt_docs(run, cfg, rel, path):
                    if part in (None, "images"):
                        run.insert("cand_images", "cocofmt_images", source="coco", split=split, file=rel,
                                   key_prefix="coco", image_dir=p.image_dirs.get(split, f"coco/{split}"),
                                   path_parts=1, id_is_coco_id=True, idx_base=base)
                    if part in (None, "annotations"):
                        if kind == "captions":
                            run.insert("cand_captions", "coco_captions", source="coco", split=split, file=rel,
                                       key_prefix="coco", idx_base=base)
                        else:
                            run.insert("cand_boxes", "cocofmt_objects", source="coco", file=rel,
                                       key_prefix="coco", idx_base=base)
                            _categories_once(run, rel, part, base)
    run.con.execute("DROP TABLE IF EXISTS cocofmt_doc")


def _categories_once(run: SqlRunner, rel: str, part: str | None, base: int) -> None:
    """Count the ``categories`` of an instances document once per file: a file parsed in parts repeats
    them in every annotations part (:func:`ranges.cocofmt_parts`), so only its first part adds them."""
    if part is None or base == 0:
        run.insert("cand_aux", "cocofmt_categories_aux", file=rel)


def parse_objects365(run: SqlRunner, cfg: IngestConfig, p: Objects365Paths) -> None:
    for split, rel in p.annotations.items():
        with input_file(run, rel, ("images", "objects", "categories")):
            path = _need(cfg, rel)
            for part, base in _cocofmt_docs(run, cfg, rel, path):
                if part in (None, "images"):
                    run.insert("cand_images", "cocofmt_images", source="objects365", split=split, file=rel,
                               key_prefix="o365", image_dir=p.image_dirs.get(split, f"objects365/{split}"),
                               path_parts=2, id_is_coco_id=False, idx_base=base)
                if part in (None, "annotations"):
                    run.insert("cand_boxes", "cocofmt_objects", source="objects365", file=rel, key_prefix="o365",
                               idx_base=base)
                    _categories_once(run, rel, part, base)
    run.con.execute("DROP TABLE IF EXISTS cocofmt_doc")


def refcoco_plus_files(cfg: IngestConfig, p: KarpathyPaths) -> dict[str, str]:
    """The RefCOCO+ split files to read: none when left at the default layout and none of them exists."""
    if not p.refcoco_plus:
        return {}
    if p.refcoco_plus == REFCOCO_PLUS_SPLITS and not any(cfg.resolve(f).is_file() for f in p.refcoco_plus.values()):
        return {}
    return dict(p.refcoco_plus)


def karpathy_files(cfg: IngestConfig, p: KarpathyPaths) -> dict[str, str]:
    """The Karpathy split files to read (dataset -> file): whichever of COCO / Flickr30K are present;
    when none is, all configured ones (so the error names what was looked for)."""
    files = {d: rel for d, rel in (("coco", p.coco), ("flickr30k", p.flickr30k)) if rel}
    present = {d: rel for d, rel in files.items() if cfg.resolve(rel).exists() or cfg.resolve(rel).is_symlink()}
    return present or files


def parse_karpathy(run: SqlRunner, cfg: IngestConfig, p: KarpathyPaths) -> None:
    for dataset, rel in karpathy_files(cfg, p).items():
        with input_file(run, rel, ("splits", "sentences")):
            path = _need(cfg, rel)
            for _part, base in _cocofmt_docs(run, cfg, rel, path, doc="karpathy_doc"):
                run.insert("cand_splits", "karpathy_splits", dataset=dataset, file=rel, idx_base=base)
                run.insert("cand_aux", "karpathy_sentences_aux", file=rel, idx_base=base)
    for split, rel in refcoco_plus_files(cfg, p).items():
        with input_file(run, rel, ("splits",)):
            run.insert("cand_splits", "refcoco_splits", file=rel, path=_need(cfg, rel), split=split)


def parse_flickr30k(run: SqlRunner, cfg: IngestConfig, p: Flickr30kPaths) -> None:
    with input_file(run, p.annotations, ("images", "captions")):
        path = _need(cfg, p.annotations)
        run.create("karpathy_doc", "karpathy_doc", file=p.annotations, path=path,
                   max_object_size=max_object_size(path))
        run.insert("cand_images", "flickr30k_images", file=p.annotations, image_dir=p.image_dir)
        run.insert("cand_captions", "flickr30k_captions", file=p.annotations)


def parse_vg_regions(run: SqlRunner, cfg: IngestConfig, p: VgPaths) -> None:
    with input_file(run, p.region_descriptions, ("regions",)):
        run.insert("cand_boxes", "vg_regions", file=p.region_descriptions, path=_need(cfg, p.region_descriptions))


def parse_vg(run: SqlRunner, cfg: IngestConfig, p: VgPaths, regions: bool = True) -> bool:
    """``regions=False``: the region file is only checked here; the fused pass reads it later.
    Returns whether the region file is usable (False: recorded in ``run.file_errors``)."""
    with input_file(run, p.image_data, ("images",)):
        run.insert("cand_images", "vg_images", file=p.image_data, path=_need(cfg, p.image_data),
                   image_root=p.image_root)
    if regions:
        parse_vg_regions(run, cfg, p)
    else:
        with input_file(run, p.region_descriptions, ("regions",)):
            _need(cfg, p.region_descriptions)
    run.create("vg_attributes", "empty_vg_attributes")
    if p.attributes:
        with input_file(run, p.attributes, ("attributes",)):
            run.create("vg_attribute_rows", "vg_attribute_rows", file=p.attributes, path=_need(cfg, p.attributes))
            run.insert("cand_aux", "vg_attributes_aux", file=p.attributes)
            run.create("vg_attributes", "vg_attributes")
    with input_file(run, p.objects, ("objects",)):
        run.insert("cand_boxes", "vg_objects", file=p.objects, path=_need(cfg, p.objects))
    return p.region_descriptions not in run.file_errors


def _read_tsv(run: SqlRunner, cfg: IngestConfig, rel: str, path: Path, read_sql: str,
              header_lines: int = 0, columns: tuple[str, ...] = (), what: str = "") -> None:
    """``csv_acc`` = the accepted lines of a TSV/CSV, ``reject_errors`` + ``line_faults`` the others,
    ``csv_gaps`` the correction from an accepted line's ordinal to its line number (csv_gaps.sql).
    A file with a header (``header_lines=1``) must name ``columns`` (else a file-level error: ``what``
    it is not); a file of which no line has the expected fields is one too."""
    faults = isolate_lines(path, run.stage_dir or cfg.out / "_tmp")
    try:
        run.con.execute("DROP TABLE IF EXISTS reject_errors")
        run.con.register("line_faults", faults.table())
        accepted = run.create("csv_acc", read_sql, file=rel, path=faults.path)
    finally:
        if faults.path != path:
            faults.path.unlink(missing_ok=True)
    rejected = run.query("csv_reject_count")[0][0]
    if accepted == 0 and rejected:  # not one line with the expected fields: wrong delimiter or file
        raise LakeInputError(rel, f"none of its {rejected} lines has the expected fields: wrong delimiter, "
                                  "or not this source's file?")
    if columns:
        missing = run.query("csv_missing_columns", columns=list(columns))[0][0]
        if missing:
            raise LakeInputError(rel, f"header lacks column(s) {', '.join(missing)}: not {what}?")
    run.create("csv_gaps", "csv_gaps", header_lines=header_lines)


def _web_source(source: str) -> Callable[[SqlRunner, IngestConfig, WebCaptionPaths], None]:
    def parse(run: SqlRunner, cfg: IngestConfig, p: WebCaptionPaths) -> None:
        with input_file(run, p.captions, ("images", "captions")):
            _parse_web(run, cfg, p, source)
    return parse


def _parse_web(run: SqlRunner, cfg: IngestConfig, p: WebCaptionPaths, source: str) -> None:
    path = _need(cfg, p.captions)
    if p.layout in ("caption_url", "url_caption"):
        _read_tsv(run, cfg, p.captions, path, "web_tsv_read")
        run.create("web_rows", "web_tsv_rows", file=p.captions, layout=p.layout)
        run.insert("cand_rejects", "csv_rejects", file=p.captions, entities=["images", "captions"])
        prefix = "line "
    elif p.layout == "sbu_json":
        run.create("web_rows", "sbu_rows", file=p.captions, path=path, max_object_size=max_object_size(path))
        bad = run.query("sbu_count_mismatch")[0]
        if bad and bad[0] is not None:
            raise LakeInputError(p.captions, f"image_urls has {bad[0]} entries but captions has {bad[1]}; "
                                             "the parallel lists cannot be paired")
        prefix = "image_urls["
    else:
        raise BadInput(f"{source}: unknown caption layout {p.layout!r}")
    _check_url_column(run, p)
    parquet = sorted(cfg.resolve(p.images_dir).glob("*.parquet"))
    if parquet:
        run.create("web_downloads", "web_downloads", files=[str(f) for f in parquet],
                   raw_root=str(cfg.raw_root))
    else:
        run.create("web_downloads", "empty_web_downloads")
    common = {"source": source, "split": p.split, "file": p.captions, "locator_prefix": prefix}
    run.insert("cand_images", "web_images", **common)
    run.insert("cand_captions", "web_captions", **common)


def _check_url_column(run: SqlRunner, p: WebCaptionPaths) -> None:
    """A file whose url column mostly holds no URLs has its columns swapped: refuse it, name the fix."""
    n, bad = run.query("web_url_check")[0]
    if n and bad * 2 > n:
        want = {"caption_url": "caption<TAB>url", "url_caption": "url<TAB>caption"}.get(p.layout, p.layout)
        raise LakeInputError(p.captions, f"{bad} of {n} rows have no http(s) URL in the url column: wrong "
                                         f"column order? layout {p.layout!r} expects {want}")


def parse_openimages(run: SqlRunner, cfg: IngestConfig, p: OpenImagesPaths) -> None:
    rel = p.class_descriptions
    run.con.register("oi_class_lines", read_class_lines_empty())
    with input_file(run, rel, ("classes",)):
        path = _need(cfg, rel)
        run.con.register("oi_class_lines", read_class_lines(path, rel))
        run.insert("cand_aux", "oi_classes_aux")
    run.create("oi_classes", "oi_classes")
    run.create("oi_sizes", "oi_sizes_none")
    if p.image_sizes:
        _parse_oi_sizes(run, cfg, p.image_sizes)
    for split, rel in p.boxes.items():
        with input_file(run, rel, ("objects", "images")):
            _read_tsv(run, cfg, rel, _need(cfg, rel), "oi_boxes_read", header_lines=1, columns=_OI_BOX_COLUMNS,
                      what="an OpenImages box file")
            run.insert("cand_boxes", "oi_boxes", file=rel, source="openimages")
            run.insert("cand_rejects", "csv_rejects", file=rel, entities=["objects"])
            run.insert("cand_images", "oi_images", source="openimages", split=split, file=rel,
                       image_dir=p.image_dirs.get(split, f"openimages/{split}"))


def _parse_oi_sizes(run: SqlRunner, cfg: IngestConfig, rel: str) -> None:
    """The optional image size index, read like the box file (line isolation, DuckDB's reader): every
    line is counted (entity ``image_sizes``: used, or quarantined with its line), ``oi_sizes`` holds
    the usable ones. Unusable as a whole (empty, no ``ImageID,Width,Height`` header): an error of this
    file; ``oi_sizes`` stays empty, so the boxes still load, without index sizes."""
    with input_file(run, rel, ("image_sizes",)):
        _read_tsv(run, cfg, rel, _need(cfg, rel), "oi_sizes_read", header_lines=1, columns=_OI_SIZE_COLUMNS,
                  what="an OpenImages image size index (header ImageID,Width,Height)")
        run.create("oi_size_lines", "oi_size_lines")
        run.insert("cand_aux", "oi_sizes_aux", file=rel)
        run.insert("cand_rejects", "csv_rejects", file=rel, entities=["image_sizes"])
        run.create("oi_sizes", "oi_sizes")  # last: nothing after it can fail and leave it half-used
    run.con.execute("DROP TABLE IF EXISTS oi_size_lines")


def read_class_lines_empty() -> pa.Table:
    return pa.table({k: pa.array([], pa.int64() if k == "ord" else pa.string())
                     for k in ("mid", "name", "file", "locator", "ord", "reason", "raw")})


PARSERS: dict[str, Callable] = {
    "coco": parse_coco,
    "karpathy": parse_karpathy,
    "flickr30k": parse_flickr30k,
    "vg": parse_vg,
    "cc3m": _web_source("cc3m"),
    "cc12m": _web_source("cc12m"),
    "sbu": _web_source("sbu"),
    "objects365": parse_objects365,
    "openimages": parse_openimages,
}
