"""Pictures for operators: a shard sample with its boxes and texts, a grounding result, a data report.

- ``draw_boxes`` is the one box painter (Pillow, no antialiasing, so a drawn border has exactly its colour):
  the outline's outer edge lies on the box edge and its ``width`` pixels grow inwards; a label tag sits
  just above the box (inside its top-left corner when there is no room above; ``label_rect`` says where).
- ``render_sample`` / ``show_sample``: a sample as stored in the shards (``key.jpg`` + ``key.json``), upscaled
  by an integer factor with nearest-neighbour (every source pixel becomes an s x s block, so the picture
  stays faithful), one colour per distinct box, and a legend listing the captions and each box's texts.
- ``grounding_picture``: prediction (and ground truth) for one expression, for the evaluation flows.
- ``data_report``: one PNG of matplotlib panels over a shard build (samples per source, texts per image,
  box sizes, caption lengths, removed / quarantined by reason) and the numbers it plotted.

Matplotlib runs on the Agg backend (no display); every file is written to a temp name and renamed.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from xvlm.data.shards.writer import SHARD_DIR, read_member
from xvlm.errors import BadInput, BadKey, MissingInput
from xvlm.fsio import atomic_path

Box = Sequence[float]  # (x, y, w, h) pixels
RGB = tuple[int, int, int]

# matplotlib's tab10, as 8-bit RGB: distinct hues that read well on photographs
PALETTE: tuple[RGB, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
PRED_COLOUR: RGB = (214, 39, 40)
TRUE_COLOUR: RGB = (44, 160, 44)
FONT_SIZE = 14
LABEL_PAD = 2


def font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system font needed)."""
    return ImageFont.load_default(size=size)


def save_png(img: Any, out_png: str | Path, **kw: Any) -> Path:
    """Write a PIL image or a matplotlib figure to ``out_png`` atomically (temp file + rename)."""
    out = Path(out_png)
    with atomic_path(out) as tmp:
        if isinstance(img, Image.Image):
            img.save(tmp, format="PNG")
        else:
            img.savefig(tmp, format="png", **kw)
    return out


# --------------------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------------------


def box_pixels(box: Box, size: tuple[int, int], scale: int = 1) -> tuple[int, int, int, int] | None:
    """Inclusive pixel corners (x0, y0, x1, y1) of an (x, y, w, h) box at ``scale``, clipped to ``size``
    (the unscaled image size); None when nothing of the box is inside the image."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, round(x * scale)), max(0, round(y * scale))
    x1 = min(size[0] * scale, round((x + w) * scale)) - 1
    y1 = min(size[1] * scale, round((y + h) * scale)) - 1
    return (x0, y0, x1, y1) if x1 >= x0 and y1 >= y0 else None


def label_rect(corners: tuple[int, int, int, int], label: str, image_size: tuple[int, int],
               size: int = FONT_SIZE) -> tuple[int, int, int, int]:
    """Inclusive rectangle of a box's label tag: above the box's top-left corner, or inside it when the
    box touches the top of the image; shifted left if it would leave the image on the right."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), label, font=font(size))
    tw, th = right + 2 * LABEL_PAD, bottom + 2 * LABEL_PAD
    x0, y0 = corners[0], corners[1] - th if corners[1] - th >= 0 else corners[1]
    x0 = max(0, min(x0, image_size[0] - tw))
    return (x0, y0, x0 + tw - 1, y0 + th - 1)


def draw_boxes(image: Image.Image, boxes: Sequence[Box], labels: Sequence[str | None] | None = None,
               colours: Sequence[RGB] | None = None, width: int = 2, scale: int = 1,
               font_size: int = FONT_SIZE) -> Image.Image:
    """A copy of ``image`` (RGB) with each (x, y, w, h) box outlined in its colour and tagged with its label.

    ``scale``: the boxes are in the pixels of an image ``scale`` times smaller (``render_sample`` draws
    on the upscaled picture). Later boxes are drawn over earlier ones. No antialiasing: every border pixel
    has exactly its box's colour (the tests check pixels).
    """
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    labels = list(labels) if labels is not None else [None] * len(boxes)
    colours = list(colours) if colours is not None else [PALETTE[i % len(PALETTE)] for i in range(len(boxes))]
    if not len(labels) == len(colours) == len(boxes):
        raise ValueError(f"draw_boxes: {len(boxes)} boxes, {len(labels)} labels, {len(colours)} colours")
    base = (math.ceil(out.width / scale), math.ceil(out.height / scale))
    draw = ImageDraw.Draw(out)
    for box, label, colour in zip(boxes, labels, colours, strict=True):
        corners = box_pixels(box, base, scale)
        if corners is None:
            continue
        draw.rectangle(corners, outline=tuple(colour), width=width)
        if label:
            r = label_rect(corners, label, out.size, font_size)
            draw.rectangle(r, fill=tuple(colour))
            draw.text((r[0] + LABEL_PAD, r[1] + LABEL_PAD), label, fill=_ink(colour), font=font(font_size))
    return out


def _ink(colour: RGB) -> RGB:
    """Black or white text, whichever reads better on ``colour`` (ITU-R BT.601 luma)."""
    return (0, 0, 0) if 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 140 else (255, 255, 255)


def _with_legend(picture: Image.Image, lines: Sequence[tuple[str, RGB]], min_width: int = 480,
                 size: int = FONT_SIZE) -> Image.Image:
    """``picture`` at the top-left of a white canvas, the coloured text ``lines`` (wrapped) below it."""
    f = font(size)
    width = max(picture.width, min_width)
    char_w = max(1.0, ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength("abcdefghij", font=f) / 10)
    wrapped = [(w, c) for text, c in lines
               for w in (textwrap.wrap(text, max(10, int((width - 16) / char_w)), subsequent_indent="    ") or [""])]
    line_h = size + 4
    canvas = Image.new("RGB", (width, picture.height + 8 + line_h * len(wrapped) + 4), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (text, colour) in enumerate(wrapped):
        draw.text((8, picture.height + 8 + i * line_h), text, fill=colour, font=f)
    return canvas


# --------------------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------------------


def render_scale(size: tuple[int, int], min_side: int = 448) -> int:
    """Integer upscale so the longer side reaches ``min_side`` (shard thumbnails are often ~200 px)."""
    return max(1, math.ceil(min_side / max(size)))


def sample_boxes(sample: Mapping[str, Any]) -> list[tuple[tuple[float, ...], list[str]]]:
    """Distinct boxes of a sample in first-seen order, each with the texts of its concepts
    ("kind: attributes text [source]"); several concepts often share one box (a COCO object and its VG
    object and region)."""
    out: dict[tuple[float, ...], list[str]] = {}
    for i, c in enumerate(sample.get("concepts") or []):
        box = c.get("box")
        if not isinstance(box, Sequence) or len(box) != 4:
            raise BadInput(f"sample {sample.get('key', '?')}: concepts[{i}].box must be [x, y, w, h], got {box!r}")
        attrs = " ".join(c.get("attributes") or [])
        text = f"{c.get('kind', '?')}: {(attrs + ' ') if attrs else ''}{c.get('text', '')}"
        out.setdefault(tuple(float(v) for v in box), []).append(text + (f" [{c['source']}]" if c.get("source") else ""))
    return list(out.items())


def render_sample(image: Image.Image, sample: Mapping[str, Any], scale: int | None = None) -> Image.Image:
    """The sample's image (upscaled by ``scale``, default ``render_scale``) with one numbered box per distinct
    concept box, and below it the key, source, size, captions and each box's texts in the box's colour.

    Boxes are in the stored image's pixels (the shard JSON's frame); a JSON whose width / height disagree
    with the image raises, naming the key.
    """
    key = sample.get("key", "?")
    if "width" in sample and (int(sample["width"]), int(sample["height"])) != image.size:
        raise BadInput(f"sample {key}: JSON says {sample['width']}x{sample['height']}, image is "
                         f"{image.width}x{image.height}")
    s = scale or render_scale(image.size)
    big = image.convert("RGB").resize((image.width * s, image.height * s), Image.Resampling.NEAREST)
    boxes = sample_boxes(sample)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(boxes))]
    picture = draw_boxes(big, [b for b, _ in boxes], [str(i + 1) for i in range(len(boxes))], colours,
                         width=max(2, s), scale=s)
    sources = ", ".join(sample.get("sources") or [sample.get("source", "?")])
    lines: list[tuple[str, RGB]] = [(f"{key}   {image.width}x{image.height}   sources: {sources}", (0, 0, 0))]
    lines += [(f"caption: {c}", (0, 0, 0)) for c in sample.get("captions") or []]
    for i, ((_, texts), colour) in enumerate(zip(boxes, colours, strict=True)):
        lines += [(f"[{i + 1}] {t}", colour) for t in texts]
    return _with_legend(picture, lines)


def read_sample(build_dir: str | Path, key: str) -> tuple[Image.Image, dict[str, Any]]:
    """The stored image and JSON of ``key``, found through ``manifest.parquet`` (random access by offset)."""
    build = Path(build_dir)
    manifest = build / "manifest.parquet"
    if not manifest.is_file():
        raise MissingInput(f"{manifest}: no manifest (is {build} a finished shard build?)")
    table = pq.read_table(manifest, filters=[("key", "=", key)])
    if table.num_rows == 0:
        raise BadKey(f"{manifest}: no sample with key {key!r}")
    row = table.to_pylist()[0]
    tar = build / SHARD_DIR / row["tar"]
    meta = json.loads(read_member(tar, row["json_offset"], row["json_size"]))
    if meta.get("key", key) != key:
        raise BadInput(f"{tar}: member at offset {row['json_offset']} is {meta.get('key')!r}, manifest says {key!r}")
    with Image.open(io.BytesIO(read_member(tar, row["jpg_offset"], row["jpg_size"]))) as im:
        return im.convert("RGB"), meta


def show_sample(build_dir: str | Path, key: str, out_png: str | Path, scale: int | None = None) -> Path:
    """``xvlm show KEY``: render ``key`` of a shard build to ``out_png``; returns the path."""
    image, meta = read_sample(build_dir, key)
    return save_png(render_sample(image, meta, scale), out_png)


# --------------------------------------------------------------------------------------------------------
# Grounding
# --------------------------------------------------------------------------------------------------------


def grounding_picture(image: Image.Image, text: str, pred_box: Box, true_box: Box | None = None,
                      scale: int | None = None) -> Image.Image:
    """The image with the predicted box (red, "pred") and the true box (green, "true"), the expression and,
    with a true box, their IoU (``xvlm.eval.metrics.paired_iou``, the one IoU) written below."""
    s = scale or render_scale(image.size)
    big = image.convert("RGB").resize((image.width * s, image.height * s), Image.Resampling.NEAREST)
    boxes, labels, colours = [pred_box], ["pred"], [PRED_COLOUR]
    if true_box is not None:
        boxes, labels, colours = [true_box, pred_box], ["true", "pred"], [TRUE_COLOUR, PRED_COLOUR]
    picture = draw_boxes(big, boxes, labels, colours, width=max(2, s), scale=s)
    lines = [(f'"{text}"', (0, 0, 0)),
             ("pred: " + ", ".join(f"{v:.1f}" for v in pred_box), PRED_COLOUR)]
    if true_box is not None:
        lines.append(("true: " + ", ".join(f"{v:.1f}" for v in true_box), TRUE_COLOUR))
        from xvlm.eval.metrics import box_iou  # torch: imported only when a true box is given

        lines.append((f"IoU {box_iou(pred_box, true_box):.3f}", (0, 0, 0)))
    return _with_legend(picture, lines)


# --------------------------------------------------------------------------------------------------------
# Data report
# --------------------------------------------------------------------------------------------------------

REPORT_FIGSIZE = (15.0, 9.0)  # inches
REPORT_DPI = 100  # -> 1500 x 900 pixels
AREA_BINS = 20  # relative box area histogram over [0, 1]


@dataclass
class DataReport:
    """The numbers ``data_report`` plotted (and the PNG): tests compare them with the Parquet files, flows log
    ``metrics()`` next to the picture."""

    png: str
    samples_per_source: dict[str, int]  # written samples (manifest rows) per source
    texts_per_image: dict[int, int]  # n captions + n concepts -> number of samples
    caption_words: dict[int, int]  # words per caption (whitespace split) -> number of captions
    box_area_edges: list[float]  # AREA_BINS + 1 edges over [0, 1]
    box_area_counts: list[int]  # boxes per bin of w*h / (width*height)
    removed: dict[str, int]  # removed.parquet reasons (leak, duplicate_*, no_text, ...)
    shard_quarantine: dict[str, int]  # quarantine.parquet reasons (write time)
    lake_quarantine: dict[str, int] = field(default_factory=dict)  # lake quarantine reasons ({} without a lake)

    @property
    def leaked(self) -> int:
        return self.removed.get("leak", 0)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow (``report.samples.coco``, ``report.removed.leak``, ...)."""
        out: dict[str, float] = {"report.samples": float(sum(self.samples_per_source.values())),
                                 "report.boxes": float(sum(self.box_area_counts)),
                                 "report.leaked": float(self.leaked)}
        for name in ("samples_per_source", "removed", "shard_quarantine", "lake_quarantine"):
            out.update({f"report.{name}.{k}": float(v) for k, v in getattr(self, name).items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counts(values: Sequence[Any]) -> dict[Any, int]:
    return dict(sorted(Counter(values).items()))


def report_numbers(build_dir: str | Path, lake_root: str | Path | None = None) -> DataReport:
    """Count what the report plots. Samples = rows of ``manifest.parquet`` (what the shards hold); their
    captions and boxes come from ``samples.parquet`` (boxes relative to the sample's own width x height)."""
    build = Path(build_dir)
    for name in ("manifest.parquet", "samples.parquet", "removed.parquet"):
        if not (build / name).is_file():
            raise MissingInput(f"{build / name}: missing (is {build} a finished shard build?)")
    manifest = pq.read_table(build / "manifest.parquet", columns=["key", "source", "n_captions", "n_concepts"])
    written = manifest.column("key")
    samples = pq.read_table(build / "samples.parquet", columns=["image_key", "width", "height", "captions", "concepts"])
    samples = samples.filter(pc.is_in(samples.column("image_key"), value_set=written))
    words = [len(c.split()) for caps in samples.column("captions").to_pylist() for c in caps or []]
    areas: list[float] = []
    for key, w, h, concepts in zip(*(samples.column(c).to_pylist() for c in ("image_key", "width", "height", "concepts")),
                                   strict=True):
        for c in concepts or []:
            if not w or not h:
                raise BadInput(f"{build / 'samples.parquet'}: sample {key} has width {w}, height {h}")
            areas.append(c["w"] * c["h"] / (w * h))
    edges = [i / AREA_BINS for i in range(AREA_BINS + 1)]
    counts = [0] * AREA_BINS
    for a in areas:
        counts[min(AREA_BINS - 1, max(0, int(a * AREA_BINS)))] += 1
    n_texts = pc.add(manifest.column("n_captions"), manifest.column("n_concepts")).to_pylist()
    quarantine = build / "quarantine.parquet"
    lake_q: dict[str, int] = {}
    if lake_root is not None:
        parts = sorted((Path(lake_root) / "quarantine").glob("source=*/*.parquet"))
        lake_q = _counts([r for p in parts for r in pq.read_table(p, columns=["reason"]).column("reason").to_pylist()])
    return DataReport(
        png="",
        samples_per_source=_counts(manifest.column("source").to_pylist()),
        texts_per_image=_counts(n_texts), caption_words=_counts(words),
        box_area_edges=edges, box_area_counts=counts,
        removed=_counts(pq.read_table(build / "removed.parquet", columns=["reason"]).column("reason").to_pylist()),
        shard_quarantine=_counts(pq.read_table(quarantine, columns=["reason"]).column("reason").to_pylist())
        if quarantine.is_file() else {},
        lake_quarantine=lake_q)


def data_report(build_dir: str | Path, lake_root: str | Path | None = None,
                out_png: str | Path | None = None) -> DataReport:
    """Six panels in one PNG (default ``build_dir/data_report.png``, 1500 x 900): samples per source, texts per
    image, relative box area, caption length, removed + write-time quarantined by reason, lake quarantine
    by reason. Returns the plotted numbers (``DataReport``) with ``png`` set."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rep = report_numbers(build_dir, lake_root)
    fig = Figure(figsize=REPORT_FIGSIZE, dpi=REPORT_DPI)
    FigureCanvasAgg(fig)  # Agg, whatever pyplot's backend is: no display needed, nothing global changed
    ax = fig.subplots(2, 3)
    n = sum(rep.samples_per_source.values())
    fig.suptitle(f"{Path(build_dir).name}: {n} samples, {sum(rep.box_area_counts)} boxes, "
                 f"{rep.leaked} leaked images removed")

    def bars(a: Any, counts: Mapping[Any, int], title: str, xlabel: str, horizontal: bool = False,
             colour: str = "tab:blue") -> None:
        names, values = [str(k) for k in counts], list(counts.values())
        if not values:
            a.text(0.5, 0.5, "none", ha="center", va="center", transform=a.transAxes)
        elif all(isinstance(k, int) for k in counts):  # numeric axis: missing values stay visible as gaps
            a.bar(list(counts), values, color=colour, width=0.8)
        elif horizontal:
            a.barh(names, values, color=colour)
            a.invert_yaxis()
            for i, v in enumerate(values):
                a.text(v, i, f" {v}", va="center", fontsize=8)
        else:
            a.bar(names, values, color=colour)
            a.tick_params(axis="x", labelrotation=30)
        a.set_title(title)
        a.set_xlabel(xlabel)

    bars(ax[0, 0], rep.samples_per_source, "samples per source", "source")
    bars(ax[0, 1], rep.texts_per_image, "texts per image (captions + concepts)", "texts")
    width = rep.box_area_edges[1] - rep.box_area_edges[0]
    ax[0, 2].bar(rep.box_area_edges[:-1], rep.box_area_counts, width=width, align="edge", color="tab:green")
    ax[0, 2].set_title("box size (area / image area)")
    ax[0, 2].set_xlabel("relative area")
    bars(ax[1, 0], rep.caption_words, "caption length", "words")
    reasons = {**{f"removed: {k}": v for k, v in rep.removed.items()},
               **{f"quarantined: {k}": v for k, v in rep.shard_quarantine.items()}}
    bars(ax[1, 1], reasons, "images removed / quarantined (build)", "images", horizontal=True, colour="tab:red")
    bars(ax[1, 2], rep.lake_quarantine, "lake quarantine by reason" if lake_root is not None
         else "lake quarantine (no lake given)", "rows", horizontal=True, colour="tab:orange")
    for a in ax.flat:
        a.tick_params(axis="x", labelsize=8)
    for a in (ax[0, 0], ax[0, 1], ax[0, 2], ax[1, 0]):
        a.set_ylabel("count")
    fig.tight_layout()
    out = Path(out_png) if out_png is not None else Path(build_dir) / "data_report.png"
    save_png(fig, out)
    rep.png = str(out)
    return rep


__all__ = ["PALETTE", "DataReport", "box_pixels", "data_report", "draw_boxes", "grounding_picture", "label_rect",
           "read_sample", "render_sample", "report_numbers", "sample_boxes", "save_png", "show_sample"]
