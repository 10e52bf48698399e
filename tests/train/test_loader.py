"""Loader behaviour: region geometry, flips, text caps, MLM statistics, batching, splitting, corrupt
samples, resume position."""

from __future__ import annotations

import io
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.train.shardgen import jpeg_bytes, scene_sample, write_shards
from xvlm.data.augment import AugmentConfig, Augmenter, plan_image_text, plan_region
from xvlm.data.collate import (
    Collator,
    MaskingConfig,
    SpecialIds,
    apply_mask,
    build_fast_tokenizer,
    choose_mask_positions,
    clean_caption,
    normalize_images,
    stack_images,
    swap_left_right,
)
from xvlm.data.loader import CorruptSample, DataConfig, PretrainStream, build_loader, parse_sample
from xvlm.data.loader.stream import CorruptCounter
from xvlm.data.sample_corpus.scenes import COLOURS

RES = 64


def _record(seed: int = 0, size: tuple[int, int] = (160, 128), kind: str = "both"):
    return parse_sample({**scene_sample(np.random.default_rng(seed), f"k{seed}", size, 4, kind), "__url__": "t"})


def _visible_fraction(box, crop) -> float:
    x, y, w, h = box
    left, top, cw, ch = crop
    ix = max(0.0, min(x + w, left + cw) - max(x, left))
    iy = max(0.0, min(y + h, top + ch) - max(y, top))
    return ix * iy / (w * h)


def test_clean_and_swap() -> None:
    assert clean_caption("A man's left-hand/glove, (red)!  ", 40) == "a mans left hand glove red"
    assert clean_caption("one two three", 2) == "one two"
    assert clean_caption("?!.", 40) == ""
    assert swap_left_right("Left of the right box, leftover") == "Right of the left box, leftover"


def test_region_plan_boxes_inside_visibility_and_cap() -> None:
    cfg = AugmentConfig(res=RES, max_texts=5)
    n_flip = 0
    for seed in range(200):
        rec = _record(seed % 20)
        plan = plan_region(rec, cfg, random.Random(seed), seed)
        assert plan is not None and plan.kind == "region"
        assert 1 <= len(plan.texts) <= 5
        left, top, cw, ch = plan.crop
        assert plan.texts[0].is_region
        regions = [t for t in plan.texts if t.is_region]
        for t in regions:
            x, y, w, h = t.box
            assert x >= -1e-4 and y >= -1e-4 and x + w <= RES + 1e-3 and y + h <= RES + 1e-3 and w > 0 and h > 0
        # expected output box of every concept, by plain arithmetic: clip to crop, scale, mirror
        fractions = [_visible_fraction(c.box, plan.crop) for c in rec.concepts]
        sx, sy = RES / cw, RES / ch
        expected = []
        for c in rec.concepts:
            x0, y0 = max(c.box[0], left), max(c.box[1], top)
            x1, y1 = min(c.box[0] + c.box[2], left + cw), min(c.box[1] + c.box[3], top + ch)
            x0, x1 = (x0 - left) * sx, (x1 - left) * sx
            if plan.flip:
                x0, x1 = RES - x1, RES - x0
            expected.append((x0, (y0 - top) * sy, x1 - x0, (y1 - y0) * sy))
        for t in regions:
            match = [i for i, e in enumerate(expected)
                     if all(abs(a - b) < 1e-3 for a, b in zip(e, t.box, strict=True))]
            assert match, (t, expected)
            assert any(fractions[i] > 0.5 for i in match)
        n_vis = sum(f > 0.5 for f in fractions)
        n_caption = sum(not t.is_region for t in plan.texts)
        assert len(regions) == min(n_vis, 5 - n_caption)
        n_flip += plan.flip
    assert 60 < n_flip < 140


def test_flip_swaps_words_and_mirrors_boxes_and_pixels() -> None:
    cfg = AugmentConfig(res=RES, randaugment=False)
    aug = Augmenter(cfg)
    seen_flip = seen_plain = 0
    for seed in range(40):
        rec = _record(seed, kind="region")
        plan = plan_region(rec, cfg, random.Random(seed), seed)
        img = aug(plan).image
        anchor = plan.texts[0]  # fully visible, so its box centre lies on the shape (scenes are exact)
        colour = next((w for w in anchor.text.split() if w in COLOURS), None)  # the subject's colour
        if colour is not None and anchor.box[2] >= 6 and anchor.box[3] >= 6:
            cx, cy = int(anchor.box[0] + anchor.box[2] / 2), int(anchor.box[1] + anchor.box[3] / 2)
            got = img[:, cy, cx].float()
            assert torch.allclose(got, torch.tensor(COLOURS[colour], dtype=torch.float32), atol=40), (
                seed, anchor, got)
        src = [c.text for c in rec.concepts] + [f"{a} {c.text}" for c in rec.concepts for a in c.attributes]
        for t in plan.texts:
            if plan.flip:
                assert swap_left_right(t.text) in src
            else:
                assert t.text in src
        seen_flip += plan.flip
        seen_plain += not plan.flip
    assert seen_flip and seen_plain


def test_image_text_plan_uses_caption_and_rrc() -> None:
    cfg = AugmentConfig(res=RES)
    rec = _record(3, kind="image")
    for seed in range(30):
        plan = plan_image_text(rec, cfg, random.Random(seed), seed)
        left, top, w, h = plan.crop
        assert left >= 0 and top >= 0 and left + w <= rec.width and top + h <= rec.height
        assert 0.2 * rec.width * rec.height - 1 <= w * h <= rec.width * rec.height
        assert len(plan.texts) == 1 and plan.texts[0].box is None
        caps = [clean_caption(c, 40) for c in rec.captions]
        assert plan.texts[0].text in caps + [swap_left_right(c) for c in caps]


def test_draft_decode_matches_full_decode_closely() -> None:
    from xvlm.data.augment import decode_crop

    rng = np.random.default_rng(0)
    arr = (rng.random((480, 640, 3)) * 40 + np.linspace(0, 200, 640)[None, :, None]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=92)
    crop = (40, 30, 560, 420)
    fast = np.asarray(decode_crop(buf.getvalue(), (640, 480), crop, 64, draft=True), dtype=np.float32)
    full = np.asarray(decode_crop(buf.getvalue(), (640, 480), crop, 64, draft=False), dtype=np.float32)
    assert np.abs(fast - full).mean() < 4.0


def test_mlm_masking_statistics() -> None:
    tok = build_fast_tokenizer()
    special = SpecialIds.of(tok)
    cfg = MaskingConfig()
    rng = random.Random(0)
    words = ["red", "circle", "unbelievable", "triangle", "left", "of", "a", "purple", "diamond", "grey",
             "background", "xylophonist", "the", "square"]
    n_masked = n_expected = 0
    kinds = {"mask": 0, "random": 0, "same": 0}
    whole = partial = 0
    special_ids = {special.pad, special.cls, special.sep, special.mask, special.unk}
    for _ in range(400):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 30)))
        enc = tok.encode(text)
        ids, wids = enc.ids[:40], enc.word_ids[:40]
        pos = choose_mask_positions(wids, cfg, rng)
        n_tok = sum(w is not None for w in wids)
        expect = min(8, max(1, round((n_tok + 1) * 0.25)))
        assert 1 <= len(pos) <= expect
        assert all(wids[p] is not None for p in pos)  # never [CLS]/[SEP]
        n_masked += len(pos)
        n_expected += expect
        out = apply_mask(ids, pos, special, rng)
        for p in pos:
            if out[p] == special.mask:
                kinds["mask"] += 1
            elif out[p] == ids[p]:
                kinds["same"] += 1
            else:
                kinds["random"] += 1
                assert out[p] not in special_ids and out[p] >= 999  # a normal word piece
        assert all(out[i] == ids[i] for i in range(len(ids)) if i not in pos)
        for w in {wids[p] for p in pos}:
            pieces = [i for i, x in enumerate(wids) if x == w]
            if len(pieces) > 1:
                whole += all(i in pos for i in pieces)
                partial += not all(i in pos for i in pieces)
    total = sum(kinds.values())
    assert abs(kinds["mask"] / total - 0.8) < 0.04
    assert abs(kinds["random"] / total - 0.1) < 0.03
    assert abs(kinds["same"] / total - 0.1) < 0.03
    assert whole > 0 and partial == 0  # whole-word masking always holds
    assert n_masked / n_expected > 0.93  # the skipped overshooting spans cost little


def test_collate_shapes_and_targets() -> None:
    cfg = AugmentConfig(res=RES)
    aug, col = Augmenter(cfg), Collator(RES, 40, MaskingConfig())
    samples = [aug(plan_region(_record(s), cfg, random.Random(s), s)) for s in range(3)]
    b = col(samples)
    n_txt = sum(len(s.texts) for s in samples)
    assert b.images.shape == (3, 3, RES, RES) and b.images.dtype == torch.uint8
    assert b.text_ids.shape[0] == n_txt and b.mlm_pos.shape == (n_txt, 8)
    assert b.image_index.tolist() == [i for i, s in enumerate(samples) for _ in s.texts]
    assert (b.text_ids[:, 0] == 101).all()
    masked = b.mlm_labels != -100
    assert torch.equal(torch.gather(b.text_ids, 1, b.mlm_pos)[masked], b.mlm_labels[masked])
    reg = b.is_region
    bx = b.boxes[reg]
    assert torch.allclose(b.bbox_target[reg][:, 0], (bx[:, 0] + bx[:, 2] / 2) / RES)
    assert ((b.bbox_target[reg] > 0) & (b.bbox_target[reg] <= 1 + 1e-6)).all()


def _cfg(shards: list[str], **kw) -> DataConfig:
    base = dict(shards=shards, image_res=RES, batch_texts=12, shuffle_buffer=16, num_workers=0, seed=1)
    return DataConfig(**{**base, **kw})


def test_batches_have_fixed_size_and_no_duplicates(tmp_path: Path) -> None:
    shards = write_shards(tmp_path, 24, 2)
    for mixing in ("mixed", "alternating"):
        kinds = set()
        for lb in itertools.islice(iter(PretrainStream(_cfg(shards, mixing=mixing))), 8):
            b = lb.batch
            kinds.add(lb.kind)
            assert b.text_ids.shape[0] == 12
            assert len(set(lb.keys)) == len(lb.keys) == b.images.shape[0]
            pairs = [(lb.keys[int(i)], t) for i, t in zip(b.image_index, lb.texts, strict=True)]
            assert len(set(pairs)) == len(pairs)
            if lb.kind == "image" and not lb.stand_in:
                assert b.boxes is None
            if lb.kind == "region" and not lb.stand_in:
                assert b.is_region.any()
        assert kinds == ({"mixed"} if mixing == "mixed" else {"image", "region"})


def test_reader_splitting_covers_each_sample_once(tmp_path: Path) -> None:
    for n_shards in (4, 2):  # by shard, and the fewer-shards-than-readers fallback
        shards = write_shards(tmp_path / str(n_shards), 20, n_shards)
        ds = PretrainStream(_cfg(shards, shuffle_buffer=4))
        seen: list[str] = []
        for reader in range(4):
            seen += [r.key for r in ds._records(reader, 4, 0, CorruptCounter())]
        assert sorted(seen) == sorted(f"img_{i:06d}" for i in range(20))


def test_corrupt_samples_are_counted(tmp_path: Path) -> None:
    bad_json = {"__key__": "bad_json", "jpg": jpeg_bytes(40, 30), "json": b"{not json"}
    bad_size = {"__key__": "bad_size", "jpg": jpeg_bytes(40, 30),
                "json": json.dumps({"width": 50, "height": 30, "captions": ["x"]}).encode()}
    bad_box = {"__key__": "bad_box", "jpg": jpeg_bytes(40, 30), "json": json.dumps(
        {"width": 40, "height": 30, "captions": [], "concepts": [{"kind": "object", "text": "x",
                                                                  "box": [30, 0, 20, 10]}]}).encode()}
    with pytest.raises(CorruptSample, match=r"bad_box.*concepts\[0\]\.box"):
        parse_sample({**bad_box, "__url__": "s.tar"})
    shards = write_shards(tmp_path, 12, 1, extra={0: [bad_json, bad_size, bad_box]})
    lb = next(iter(PretrainStream(_cfg(shards, batch_texts=4, shuffle_buffer=100))))
    assert lb.corrupt == 3


def _flat(lb) -> list[torch.Tensor]:
    b = lb.batch
    return [b.images, b.text_ids, b.mlm_ids, b.mlm_pos, b.image_index] + ([b.boxes] if b.boxes is not None else [])


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_position_replays_exactly(tmp_path: Path, workers: int) -> None:
    shards = write_shards(tmp_path, 16, 4)
    cfg = _cfg(shards, num_workers=workers)
    full = list(itertools.islice(iter(build_loader(cfg)), 7))
    # 3 is not a multiple of the 2 workers: batch 3 is worker 1's, yet a fresh DataLoader asks worker 0 first
    resumed = list(itertools.islice(iter(build_loader(cfg, start_batch=3)), 4))
    for a, b in zip(full[3:], resumed, strict=True):
        assert a.keys == b.keys and a.texts == b.texts
        for x, y in zip(_flat(a), _flat(b), strict=True):
            assert torch.equal(x, y)
    # the two workers produce different batches (their streams are split, not copied)
    if workers == 2:
        assert full[0].keys != full[1].keys


def test_augmented_images_stack_into_a_channels_last_batch_with_the_same_values() -> None:
    """Augmenter returns CHW views of Pillow's HWC buffer; stack_images makes one channels-last batch whose
    values equal a plain contiguous stack, and normalize_images gives the same floats for either layout."""
    cfg = AugmentConfig(res=RES)
    aug = Augmenter(cfg)
    images = []
    for seed in range(3):
        rec = _record(seed, kind="image")
        img = aug(plan_image_text(rec, cfg, random.Random(seed), seed)).image
        assert img.shape == (3, RES, RES) and img.dtype == torch.uint8
        images.append(img)
    batch = stack_images(images)
    plain = torch.stack([im.contiguous() for im in images])
    assert batch.shape == (3, 3, RES, RES) and torch.equal(batch, plain)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    assert torch.equal(normalize_images(batch, mean, std), normalize_images(plain, mean, std))


def test_randaugment_draws_are_seeded_per_sample() -> None:
    """Same plan -> same pixels (RandAugment seeded from the plan); RandAugment does change the image."""
    cfg, off = AugmentConfig(res=RES), AugmentConfig(res=RES, randaugment=False)
    rec = _record(5, kind="image")
    changed = 0
    for seed in range(8):
        plan = plan_image_text(rec, cfg, random.Random(seed), seed)
        a, b = Augmenter(cfg)(plan).image, Augmenter(cfg)(plan).image
        assert torch.equal(a, b)
        changed += not torch.equal(a, Augmenter(off)(plan).image)
    assert changed >= 5, changed  # a draw can be a no-op (Identity, AutoContrast on a full-range crop)
