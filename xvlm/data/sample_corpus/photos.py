"""Real photographs shipped inside the scikit-image wheel (no network), with hand-written text.

Why: shape scenes alone would let a pipeline pass while mishandling real JPEG statistics (EXIF-free
camera photos, grayscale images, odd aspect ratios). ``skimage.data`` ships a handful of real photos
(environment-trial.md §7); each gets five captions, a few boxes (normalised ``x0, y0, x1, y1``,
eyeballed, loose) and the COCO / Objects365 / OpenImages label of each box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Photo:
    name: str
    captions: tuple[str, ...]
    # (label, attributes, normalised box x0, y0, x1, y1)
    objects: tuple[tuple[str, tuple[str, ...], tuple[float, float, float, float]], ...]
    grayscale: bool = False


PHOTOS: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        (
            "A woman in an orange space suit smiling for a portrait.",
            "An astronaut posing in front of a flag.",
            "Portrait of a smiling astronaut in an orange suit.",
            "A woman astronaut with short hair in her flight suit.",
            "A person in an orange suit stands in front of an american flag.",
        ),
        (
            ("person", ("smiling",), (0.04, 0.02, 0.74, 1.0)),
            ("flag", ("american",), (0.0, 0.0, 0.18, 0.6)),
            ("helmet", ("white",), (0.55, 0.62, 1.0, 1.0)),
        ),
    ),
    Photo(
        "chelsea",
        (
            "A close up of a tabby cat looking to the side.",
            "A brown striped cat sitting indoors.",
            "The face of a cat with long white whiskers.",
            "A tabby cat staring at something off camera.",
            "A ginger cat with green eyes.",
        ),
        (("cat", ("tabby", "brown"), (0.05, 0.0, 0.95, 1.0)),),
    ),
    Photo(
        "coffee",
        (
            "A cup of coffee on a saucer with a spoon.",
            "A white cup of coffee seen from above.",
            "Coffee with crema in a white cup on a table.",
            "A white cup on a red saucer on a wooden table.",
            "An espresso cup with a spoon on the saucer.",
        ),
        (("cup", ("white",), (0.27, 0.02, 0.75, 0.62)),),
    ),
    Photo(
        "rocket",
        (
            "A rocket on the launch pad at night.",
            "A space rocket before launch.",
            "A tall white rocket next to a launch tower.",
            "A launch pad with a rocket and its service tower.",
            "A rocket lit up by floodlights before launch.",
        ),
        (("rocket", ("white",), (0.45, 0.05, 0.66, 0.95)),),
    ),
    Photo(
        "stereo_motorcycle",
        (
            "A motorcycle parked in a garage.",
            "A red motorcycle in front of a cluttered shelf.",
            "A motorbike standing indoors next to a wall.",
            "A parked motorcycle seen from the side.",
            "A shiny motorcycle in a workshop.",
        ),
        (("motorcycle", ("red", "parked"), (0.10, 0.20, 0.90, 0.95)),),
    ),
    Photo(
        "hubble_deep_field",
        (
            "A deep space image full of distant galaxies.",
            "Many small galaxies on a black background.",
            "A telescope photo of the night sky with galaxies.",
            "Colourful galaxies scattered across dark space.",
            "The hubble deep field showing thousands of galaxies.",
        ),
        (("galaxy", ("bright",), (0.40, 0.40, 0.60, 0.60)),),
    ),
    Photo(
        "camera",
        (
            "A black and white photo of a man with a camera on a tripod.",
            "A photographer standing in a field with his camera.",
            "A grayscale picture of a man operating a camera.",
            "A man in a coat looking through a camera.",
            "A cameraman outdoors with buildings in the distance.",
        ),
        (
            ("person", ("standing",), (0.0, 0.11, 0.62, 1.0)),
            ("camera", ("black",), (0.46, 0.28, 0.66, 0.43)),
            ("tripod", ("metal",), (0.45, 0.40, 0.72, 1.0)),
        ),
        grayscale=True,
    ),
)


@cache
def _raw(name: str) -> np.ndarray:
    import skimage.data as skd

    arr = skd.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(skd, name)()
    return np.asarray(arr)


def load(photo: Photo, max_side: int) -> Image.Image:
    """The photo downscaled so its longer side is ``max_side`` (deterministic LANCZOS resize)."""
    arr = _raw(photo.name)
    img = Image.fromarray(arr)
    w, h = img.size
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def pixel_box(norm: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Normalised x0,y0,x1,y1 -> integer COCO x,y,w,h inside the image."""
    x0, y0, x1, y1 = norm
    x, y = round(x0 * width), round(y0 * height)
    return (x, y, max(1, round(x1 * width) - x), max(1, round(y1 * height) - y))
