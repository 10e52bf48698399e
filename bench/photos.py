"""Photo-like test JPEGs for the loader benches, generated in code (no data set is committed or fetched).

Why not the noise patterns ``loader_throughput.py`` used first: a sinusoid + sigma-12 noise image is almost
all high-entropy texture (290 KB at 1024x768, 2.9 bits/pixel of which most is noise), which makes Huffman
decoding, the part draft decoding cannot shrink, dominate, and no real crop looks like it. These are the
colour photographs that ship inside scikit-image (astronaut, cat, coffee, rocket, Hubble deep field,
motorcycle, retina, ...), each cut to a random 4:3 window, Lanczos-resized to the wanted size, with
sigma-8 Gaussian grain added (an upsampled photo is smoother than a camera's) and saved as baseline JPEG,
quality 90: about 2.8 bits/pixel (108 KB at 640x480; COCO's 640x480 files average about 160 KB).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

GRAIN = 8.0  # Gaussian grain sigma, 0-255 scale
QUALITY = 90


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    import skimage.data as skd  # bundled images only (no pooch download)

    return (skd.astronaut(), skd.chelsea(), skd.coffee(), skd.rocket(), skd.hubble_deep_field(),
            skd.stereo_motorcycle()[0], skd.cat(), skd.retina(), skd.immunohistochemistry())


def photo_jpegs(n: int, w: int, h: int, seed: int = 0) -> list[bytes]:
    """``n`` JPEGs of ``w`` x ``h`` px cut from scikit-image's colour photos (see the module docstring)."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        ph, pw = p.shape[:2]
        cw = int(min(pw, ph * w / h) * rng.uniform(0.6, 1.0))
        ch = max(1, round(cw * h / w))
        x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        win = p[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            win = win[:, ::-1]
        img = np.asarray(Image.fromarray(np.ascontiguousarray(win)).resize((w, h), Image.Resampling.LANCZOS))
        img = img.astype(np.float32) + rng.normal(0.0, GRAIN, img.shape).astype(np.float32)
        buf = io.BytesIO()
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=QUALITY)
        out.append(buf.getvalue())
    return out
