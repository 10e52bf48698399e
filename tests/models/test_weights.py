"""Weight loading: BERT rule, a real small BERT (MiniLM), Swin checkpoints + resize, reference conversion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from timm.models.swin_transformer import SwinTransformer
from transformers import BertConfig, BertForMaskedLM, BertModel

from xvlm.models.config import XVLMConfig, get_config
from xvlm.models.weights import (
    bert_key_to_ours,
    convert_reference_checkpoint,
    load_bert,
    load_reference_checkpoint,
    load_swin,
    resize_rel_pos_table,
)
from xvlm.models.xvlm import XVLM
from xvlm.tokenizer import bert_model_dir, build_tokenizer

# --------------------------------------------------------------------------------------------------------
# Helpers: checkpoints in the official-Swin / reference layouts with random tensors
# --------------------------------------------------------------------------------------------------------


def timm_swin(cfg: XVLMConfig) -> SwinTransformer:
    v = cfg.vision
    return SwinTransformer(img_size=v.img_size, patch_size=v.patch_size, num_classes=0, embed_dim=v.embed_dim,
                           depths=v.depths, num_heads=v.num_heads, window_size=v.window_size).eval()


def official_swin_layout(sd: dict[str, torch.Tensor], with_head: bool = True) -> dict[str, torch.Tensor]:
    """timm names -> Microsoft names (downsample at the end of the previous stage), plus the buffers and
    classifier the official files carry."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)
        out[k] = v
        if k.endswith("relative_position_bias_table"):
            out[k.replace("relative_position_bias_table", "relative_position_index")] = torch.zeros(4, dtype=torch.long)
            out[k.replace("attn.relative_position_bias_table", "attn_mask")] = torch.zeros(2, 2)
    if with_head:
        out["head.weight"], out["head.bias"] = torch.randn(10, sd["norm.weight"].shape[0]), torch.randn(10)
    return out


def randomise(sd: dict[str, torch.Tensor], g: torch.Generator) -> dict[str, torch.Tensor]:
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in sd.items()}


def reference_checkpoint(cfg: XVLMConfig, seed: int = 0) -> tuple[dict, SwinTransformer, BertForMaskedLM]:
    """A released-X-VLM-layout state dict with random tensors, plus the timm Swin and the HF BERT it holds."""
    g = torch.Generator().manual_seed(seed)
    t, vw = cfg.text, cfg.vision.width
    swin = timm_swin(cfg)
    swin.load_state_dict(randomise(swin.state_dict(), g))
    bert = BertForMaskedLM(BertConfig(
        vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_text_layers + t.num_cross_layers,
        num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
        max_position_embeddings=t.max_position_embeddings)).eval()
    bert.load_state_dict(randomise(bert.state_dict(), g), strict=False)
    bert.tie_weights()
    sd = {"vision_encoder." + k: v for k, v in official_swin_layout(swin.state_dict(), with_head=False).items()}
    sd.update({"text_encoder." + k: v for k, v in bert.state_dict().items()})
    sd["text_encoder.bert.embeddings.position_ids"] = torch.arange(t.max_position_embeddings)[None]
    h = t.hidden_size
    for i in range(t.num_text_layers, t.num_text_layers + t.num_cross_layers):
        p = f"text_encoder.bert.encoder.layer.{i}.crossattention."
        shapes = {"self.query.weight": (h, h), "self.key.weight": (h, vw), "self.value.weight": (h, vw),
                  "output.dense.weight": (h, h)}
        for name, shape in shapes.items():
            sd[p + name] = torch.randn(shape, generator=g)
            sd[p + name.replace("weight", "bias")] = torch.randn(h, generator=g)
        sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"] = torch.randn(h, generator=g), torch.randn(h, generator=g)
    heads = {"vision_proj.weight": (cfg.embed_dim, vw), "vision_proj.bias": (cfg.embed_dim,),
             "text_proj.weight": (cfg.embed_dim, h), "text_proj.bias": (cfg.embed_dim,), "temp": ()}
    for name, out in (("itm_head", 2), ("bbox_head", 4)):
        heads.update({f"{name}.0.weight": (2 * h, h), f"{name}.0.bias": (2 * h,), f"{name}.1.weight": (2 * h,),
                      f"{name}.1.bias": (2 * h,), f"{name}.3.weight": (out, 2 * h), f"{name}.3.bias": (out,)})
    sd.update({k: torch.randn(s, generator=g) for k, s in heads.items()})
    return {"model": sd, "config": {"note": "random"}}, swin, bert


# --------------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------------


def test_bert_key_rule() -> None:
    assert bert_key_to_ours("bert.embeddings.word_embeddings.weight", 6) == "text_encoder.embeddings.word_embeddings.weight"
    assert bert_key_to_ours("encoder.layer.5.output.dense.weight", 6) == "text_encoder.layer.5.output.dense.weight"
    assert bert_key_to_ours("bert.encoder.layer.6.attention.self.query.bias", 6) == "cross_encoder.layer.0.attention.self.query.bias"
    assert bert_key_to_ours("bert.encoder.layer.11.crossattention.self.key.weight", 6) == "cross_encoder.layer.5.crossattention.self.key.weight"
    assert bert_key_to_ours("cls.predictions.transform.LayerNorm.gamma", 6) == "mlm_head.predictions.transform.LayerNorm.weight"
    assert bert_key_to_ours("cls.predictions.decoder.bias", 6) == "mlm_head.predictions.bias"  # tied aliases
    assert bert_key_to_ours("cls.predictions.decoder.weight", 6) == "text_encoder.embeddings.word_embeddings.weight"
    for dropped in ("bert.pooler.dense.weight", "embeddings.position_ids",
                    "cls.seq_relationship.weight"):
        assert bert_key_to_ours(dropped, 6) is None


def minilm_model() -> XVLM:
    cfg = get_config("xvlm-debug").replace(text={"hidden_size": 384, "num_heads": 12, "intermediate_size": 1536,
                                                 "num_text_layers": 3, "num_cross_layers": 3,
                                                 "max_position_embeddings": 512})
    return XVLM(cfg).eval()


def test_load_real_minilm_bert_matches_transformers() -> None:
    model = minilm_model()
    report = load_bert(model, bert_model_dir())
    assert report.unmapped == [] and report.balanced() and len(report.sha256) == 64
    assert all(".crossattention." in k or k.startswith("mlm_head.") for k in report.new)
    assert sum(".crossattention." in k for k in report.new) == 3 * 10  # per layer: q/k/v, output dense, LayerNorm (weight + bias)
    hf = BertModel.from_pretrained(str(bert_model_dir())).eval()
    tok = build_tokenizer()
    enc = tok(["a man wearing a backpack", "closed window"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = model.encode_text(enc["input_ids"], enc["attention_mask"])
        ref = hf(**enc, output_hidden_states=True).hidden_states[3]
    keep = enc["attention_mask"].bool()
    torch.testing.assert_close(ours[keep], ref[keep], atol=1e-5, rtol=1e-4)
    hf_l4 = hf.encoder.layer[4]
    torch.testing.assert_close(model.cross_encoder.layer[1].intermediate.dense.weight, hf_l4.intermediate.dense.weight)
    torch.testing.assert_close(model.cross_encoder.layer[1].attention.self.value.bias, hf_l4.attention.self.value.bias)


def test_load_bert_refuses_a_mismatched_config() -> None:
    with pytest.raises(ValueError, match="hidden_size=384"):
        load_bert(XVLM(get_config("xvlm-debug")), bert_model_dir())


def test_default_tokenizer_is_bert_base_uncased() -> None:
    tok = build_tokenizer()
    assert len(tok) == 30522 and (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id) == (101, 102, 0, 103)
    assert tok("A Backpack")["input_ids"] == [101, 1037, 13383, 102]


# --------------------------------------------------------------------------------------------------------
# Swin and the relative-position-bias resize
# --------------------------------------------------------------------------------------------------------


def _beit_coords(src: int, dst: int) -> list[float]:
    """Source offsets of BEiT's geometric grid: ratio q with 1 + q + ... + q^(src//2 - 1) = dst//2."""
    lo, hi = 1.01, 1.5
    while hi - lo > 1e-6:
        q = (lo + hi) / 2
        lo, hi = (lo, q) if (1 - q ** (src // 2)) / (1 - q) > dst // 2 else (q, hi)
    d, cur = [], 1.0
    for i in range(src // 2):
        d.append(cur)
        cur += q ** (i + 1)
    return [-x for x in reversed(d)] + [0.0] + d


def test_resize_rel_pos_table_analytic() -> None:
    # 224 -> 384: 13x13 -> 23x23 per head. A table affine in the (geometric) source offsets must come out
    # affine in the integer target offsets, since the interpolation is exact on affine functions.
    c = torch.tensor(_beit_coords(13, 23))
    dy, dx = torch.meshgrid(c, c, indexing="ij")
    heads = torch.stack([2.0 + 0.5 * dy - 0.25 * dx, torch.full_like(dy, 3.0)], -1).reshape(169, 2)
    out = resize_rel_pos_table(heads, 12)
    assert out.shape == (23 * 23, 2)
    t = torch.arange(-11.0, 12.0)
    ty, tx = torch.meshgrid(t, t, indexing="ij")
    torch.testing.assert_close(out[:, 0].reshape(23, 23), 2.0 + 0.5 * ty - 0.25 * tx, atol=2e-3, rtol=0)
    torch.testing.assert_close(out[:, 1], torch.full((529,), 3.0))  # constant stays constant
    assert out[11 * 23 + 11, 0].item() == pytest.approx(2.0, abs=1e-6)  # offset (0, 0) kept exactly
    assert resize_rel_pos_table(heads, 7).equal(heads)  # same window: untouched


def test_load_swin_official_checkpoint_resized_to_a_larger_window(tmp_path: Path) -> None:
    src_cfg = get_config("xvlm-debug").replace(vision={"depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4)})
    dst_cfg = src_cfg.replace(vision={"img_size": 160, "window_size": 5})  # 3x3 -> 5x5 windows
    swin = timm_swin(src_cfg)
    swin.load_state_dict(randomise(swin.state_dict(), torch.Generator().manual_seed(3)))
    path = tmp_path / "swin_official.pth"
    torch.save({"model": official_swin_layout(swin.state_dict())}, path)
    model = XVLM(dst_cfg)
    report = load_swin(model, path)
    assert report.unmapped == [] and {"head.weight", "head.bias"} <= set(report.dropped)
    assert report.balanced() and report.new == [] and all(k.startswith("vision_encoder.") for k in report.loaded)
    tables = [k for k in swin.state_dict() if k.endswith("relative_position_bias_table")]
    assert sorted(report.resized) == sorted("vision_encoder." + k for k in tables)  # every stage: 5x5 windows
    ours = model.vision_encoder.state_dict()
    src = swin.state_dict()
    for k in tables:
        torch.testing.assert_close(ours[k], resize_rel_pos_table(src[k], 5))
    for k in ("layers.1.downsample.reduction.weight", "layers.3.blocks.1.mlp.fc2.weight", "patch_embed.proj.weight"):
        assert ours[k].equal(src[k])
    # same window: the loaded encoder computes exactly what the source Swin computes
    same = XVLM(src_cfg).eval()
    load_swin(same, path)
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(same.encode_image(images)[0], swin.forward_features(images).flatten(1, 2))


# --------------------------------------------------------------------------------------------------------
# Released X-VLM checkpoints
# --------------------------------------------------------------------------------------------------------


def test_reference_checkpoint_round_trip(tmp_path: Path) -> None:
    cfg = get_config("xvlm-debug")
    ckpt, swin, bert = reference_checkpoint(cfg)
    path = tmp_path / "xvlm_ref.th"
    torch.save(ckpt, path)
    model = XVLM(cfg).eval()
    report = load_reference_checkpoint(model, path)  # strict: raises on any missing / unexpected key
    assert report.unmapped == [] and report.new == []
    # dropped: recomputed buffers and the tied aliases (found equal), each under its full checkpoint name
    assert all(re.search(r"relative_position_index|attn_mask|position_ids|decoder\.(weight|bias)$", k)
               for k in report.dropped)
    assert all(k.startswith(("vision_encoder.", "text_encoder.")) for k in report.dropped)
    assert "text_encoder.cls.predictions.decoder.bias" in report.dropped and report.conflicts == []
    ref = ckpt["model"]
    # every checkpoint key is counted once: loaded + dropped + unmapped == the file's keys
    assert report.balanced() and len(report.loaded) + len(report.dropped) + len(report.unmapped) == len(ref)

    # every one of our tensors equals exactly one source tensor (all sources are distinct random draws)
    ours = model.state_dict()
    for k, v in ours.items():
        matches = [rk for rk, rv in ref.items() if rv.shape == v.shape and rv.dtype == v.dtype and rv.equal(v)]
        matches = [m for m in matches if ".decoder." not in m]  # tied aliases of word embeddings / MLM bias
        assert len(matches) == 1, (k, matches)
    spot = {"cross_encoder.layer.1.crossattention.self.key.weight": "text_encoder.bert.encoder.layer.3.crossattention.self.key.weight",
            "cross_encoder.layer.0.output.LayerNorm.bias": "text_encoder.bert.encoder.layer.2.output.LayerNorm.bias",
            "text_encoder.layer.1.attention.output.dense.weight": "text_encoder.bert.encoder.layer.1.attention.output.dense.weight",
            "mlm_head.predictions.bias": "text_encoder.cls.predictions.bias", "itm_head.3.weight": "itm_head.3.weight",
            "vision_encoder.layers.2.downsample.reduction.weight": "vision_encoder.layers.1.downsample.reduction.weight",
            "temp": "temp"}
    for ok, rk in spot.items():
        assert ours[ok].equal(ref[rk]), ok

    # behaviour: towers and MLM head compute what the source modules compute
    g = torch.Generator().manual_seed(1)
    images, ids = torch.randn(2, 3, 96, 96, generator=g), torch.randint(1000, 3000, (2, 9), generator=g)
    atts = torch.ones_like(ids)
    atts[1, 6:] = 0
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images)[0], swin.forward_features(images).flatten(1, 2))
        hf = bert(input_ids=ids, attention_mask=atts, output_hidden_states=True)
        text = model.encode_text(ids, atts)
        keep = atts.bool()
        torch.testing.assert_close(text[keep], hf.hidden_states[2][keep], atol=1e-5, rtol=1e-4)
        h = torch.randn(2, 3, cfg.text.hidden_size, generator=g)
        torch.testing.assert_close(model.mlm_head.predictions(h, model.text_encoder.embeddings.word_embeddings.weight),
                                   bert.cls(h), atol=1e-5, rtol=1e-4)

    # an unknown key is reported, not silently dropped
    bad = dict(ref, **{"text_encoder.bert.encoder.layer.0.adapter.weight": torch.zeros(1)})
    _, report = convert_reference_checkpoint(bad, model)
    assert report.unmapped == ["text_encoder.bert.encoder.layer.0.adapter.weight"] and report.balanced()

    # a Swin key with no place is reported under its full name, not the stripped one
    odd = dict(ref, **{"vision_encoder.layers.0.extra.weight": torch.zeros(1)})
    _, report = convert_reference_checkpoint(odd, model)
    assert report.unmapped == ["vision_encoder.layers.0.extra.weight"] and report.balanced()


def test_tied_pair_that_differs_is_reported_not_overwritten() -> None:
    cfg = get_config("xvlm-debug")
    ckpt, _, _ = reference_checkpoint(cfg, seed=2)
    sd = dict(ckpt["model"])
    canonical = sd["text_encoder.cls.predictions.bias"]
    sd["text_encoder.cls.predictions.decoder.bias"] = canonical + 1.0  # the released files tie them: equal
    out, report = convert_reference_checkpoint(sd, XVLM(cfg))
    assert out["mlm_head.predictions.bias"].equal(canonical)  # the canonical tensor, whatever the key order
    assert report.conflicts == ["text_encoder.cls.predictions.decoder.bias != text_encoder.cls.predictions.bias"]
    assert "text_encoder.cls.predictions.decoder.bias" in report.unmapped and report.balanced()
    # the decoder weight is tied to the word embeddings the same way
    sd = dict(ckpt["model"])
    sd["text_encoder.cls.predictions.decoder.weight"] = torch.zeros_like(sd["text_encoder.cls.predictions.decoder.weight"])
    _, report = convert_reference_checkpoint(sd, XVLM(cfg))
    assert report.conflicts == ["text_encoder.cls.predictions.decoder.weight != "
                                "text_encoder.bert.embeddings.word_embeddings.weight"]


def test_reference_checkpoint_into_a_larger_window() -> None:
    cfg = get_config("xvlm-debug").replace(vision={"depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4)})
    ckpt, swin, _ = reference_checkpoint(cfg, seed=5)
    big = XVLM(cfg.replace(vision={"img_size": 160, "window_size": 5}))
    sd, report = convert_reference_checkpoint(ckpt["model"], big)
    big.load_state_dict(sd, strict=True)
    assert report.unmapped == [] and len(report.resized) == 8  # 4 stages x 2 blocks
    k = "layers.0.blocks.1.attn.relative_position_bias_table"
    torch.testing.assert_close(big.vision_encoder.state_dict()[k], resize_rel_pos_table(swin.state_dict()[k], 5))
