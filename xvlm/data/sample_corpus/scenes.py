"""Shape scenes: the synthetic images whose text is true by construction.

Why: a tiny model trained on the sample corpus must be able to *learn* grounding and retrieval, so the
captions, region phrases, object labels and boxes are all derived from one scene description, and the
image is rendered from that same description. A test samples the pixel at each box centre and checks it
has the shape's colour, which is only true because shapes never overlap and every kind covers its box
centre (circle, square, triangle with apex up, diamond).

Everything here is deterministic given the ``numpy.random.Generator`` passed in; Pillow's ``ImageDraw``
primitives are deterministic for integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Saturated colours far apart in RGB so a JPEG-compressed centre pixel is still unambiguous.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 20),
    "purple": (140, 40, 170),
    "orange": (250, 130, 10),
}
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
BACKGROUND: tuple[int, int, int] = (200, 200, 200)


@dataclass(frozen=True)
class Shape:
    """One drawn shape. ``box`` is ``(x, y, w, h)`` in integer pixels, COCO convention."""

    colour: str
    kind: str
    box: tuple[int, int, int, int]
    size: str  # "small" | "large": a second attribute, relative to the scene's other shapes

    @property
    def name(self) -> str:
        return f"{self.colour} {self.kind}"

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


@dataclass(frozen=True)
class Scene:
    """A canvas with non-overlapping shapes."""

    width: int
    height: int
    shapes: tuple[Shape, ...]
    background: tuple[int, int, int] = BACKGROUND


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: int) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return not (
        ax + aw + margin <= bx or bx + bw + margin <= ax or ay + ah + margin <= by or by + bh + margin <= ay
    )


def sample_scene(
    rng: np.random.Generator,
    width: int,
    height: int,
    n_shapes: int,
    distinct: bool = True,
) -> Scene:
    """Place ``n_shapes`` non-overlapping shapes; with ``distinct`` no two share colour+kind.

    Distinct names keep phrases like "the red circle" unambiguous, which the grounding tests rely on.
    """
    shapes: list[Shape] = []
    used: set[tuple[str, str]] = set()
    colours = sorted(COLOURS)
    lo = max(16, min(width, height) // 6)
    hi = max(lo + 1, min(width, height) // 3)
    for _ in range(n_shapes):
        for _attempt in range(200):
            colour = colours[int(rng.integers(len(colours)))]
            kind = KINDS[int(rng.integers(len(KINDS)))]
            if distinct and (colour, kind) in used:
                continue
            side = int(rng.integers(lo, hi + 1))
            x = int(rng.integers(2, width - side - 2))
            y = int(rng.integers(2, height - side - 2))
            box = (x, y, side, side)
            if any(_overlaps(box, s.box, margin=4) for s in shapes):
                continue
            used.add((colour, kind))
            shapes.append(Shape(colour=colour, kind=kind, box=box, size=""))
            break
    if not shapes:
        raise ValueError(f"could not place any shape on a {width}x{height} canvas")
    median = float(np.median([s.box[2] for s in shapes]))
    sized = tuple(
        Shape(s.colour, s.kind, s.box, "large" if s.box[2] > median else "small") for s in shapes
    )
    return Scene(width=width, height=height, shapes=sized)


def render(scene: Scene) -> Image.Image:
    """Draw the scene as an RGB image."""
    img = Image.new("RGB", (scene.width, scene.height), scene.background)
    draw = ImageDraw.Draw(img)
    for s in scene.shapes:
        x, y, w, h = s.box
        x1, y1 = x + w - 1, y + h - 1
        fill = COLOURS[s.colour]
        if s.kind == "circle":
            draw.ellipse([x, y, x1, y1], fill=fill)
        elif s.kind == "square":
            draw.rectangle([x, y, x1, y1], fill=fill)
        elif s.kind == "triangle":
            draw.polygon([(x, y1), (x1, y1), (x + w // 2, y)], fill=fill)
        elif s.kind == "diamond":
            draw.polygon([(x + w // 2, y), (x1, y + h // 2), (x + w // 2, y1), (x, y + h // 2)], fill=fill)
        else:  # pragma: no cover - KINDS is closed
            raise ValueError(f"unknown shape kind {s.kind!r}")
    return img


def relation(a: Shape, b: Shape) -> str:
    """Spatial relation of ``a`` to ``b`` along the axis where their centres differ most."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if abs(ax - bx) >= abs(ay - by):
        return "left of" if ax < bx else "right of"
    return "above" if ay < by else "below"


def polygon(shape: Shape) -> list[float]:
    """COCO polygon (flat x,y list) outlining the shape; circles use 16 points."""
    x, y, w, h = shape.box
    if shape.kind == "square":
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    elif shape.kind == "triangle":
        pts = [(x, y + h), (x + w, y + h), (x + w / 2, y)]
    elif shape.kind == "diamond":
        pts = [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)]
    else:
        cx, cy = shape.centre
        t = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
        pts = list(zip(cx + w / 2 * np.cos(t), cy + h / 2 * np.sin(t), strict=True))
    return [round(float(v), 2) for p in pts for v in p]


def area(shape: Shape) -> float:
    """Pixel area of the drawn shape (analytic)."""
    _, _, w, h = shape.box
    if shape.kind == "square":
        return float(w * h)
    if shape.kind == "circle":
        return round(float(np.pi * w * h / 4.0), 4)
    return float(w * h) / 2.0  # triangle and diamond


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` whole-image captions, all true of the scene (templates drawn without replacement when possible)."""
    shapes = scene.shapes
    a = shapes[0]
    b = shapes[1] if len(shapes) > 1 else None
    out: list[str] = []
    templates: list[str] = []
    if b is not None:
        rel = relation(a, b)
        inv = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[rel]
        templates += [
            f"{_article(a.colour)} {a.name} {rel} {_article(b.colour)} {b.name}",
            f"{_article(b.colour)} {b.name} {inv} {_article(a.colour)} {a.name}",
            f"{_article(a.colour)} {a.name} and {_article(b.colour)} {b.name} on a grey background",
            f"there is {_article(a.colour)} {a.name} {rel} {_article(b.colour)} {b.name}",
        ]
    names = ", ".join(f"{_article(s.colour)} {s.name}" for s in shapes)
    templates += [
        f"{len(shapes)} shape{'s' if len(shapes) > 1 else ''}: {names}",
        f"a picture of {_article(a.colour)} {a.name}",
        f"{_article(a.size or 'x')} {a.size + ' ' if a.size else ''}{a.name} on a plain background",
    ]
    order = rng.permutation(len(templates))
    for i in range(n):
        out.append(templates[int(order[i % len(templates)])])
    return [c[0].upper() + c[1:] + "." for c in out]


def region_phrases(scene: Scene) -> list[tuple[Shape, str]]:
    """One referring phrase per shape: "the red circle left of the blue square" (or just "the red circle")."""
    out: list[tuple[Shape, str]] = []
    for i, s in enumerate(scene.shapes):
        others = [o for j, o in enumerate(scene.shapes) if j != i]
        if others:
            o = others[0]
            out.append((s, f"the {s.name} {relation(s, o)} the {o.name}"))
        else:
            out.append((s, f"the {s.name}"))
    return out


def object_labels(scene: Scene) -> list[tuple[Shape, str, list[str]]]:
    """(shape, name, attributes): the kind is the object name, the colour its one attribute.

    Size is deliberately not an attribute: "small" / "large" are relative to the scene's other shapes, so
    a box alone cannot show them, and "small circle" is true of most circles' boxes in other images. With
    the colour, the object text ("red circle", METHOD.md §4) names one shape of its scene, which keeps
    ITM negatives from other images decidable (docs/training.md, "ITM negatives").
    """
    return [(s, s.kind, [s.colour]) for s in scene.shapes]
