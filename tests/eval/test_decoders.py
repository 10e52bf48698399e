"""Decoders built from X-VLM layers: causality, initialisation from the cross layers, shared NLVR2 K/V."""

from __future__ import annotations

import pytest
import torch

from xvlm.models.decoders import XVLMForCaptioning, XVLMForVQA, copy_model
from xvlm.models.nlvr import XVLMForNLVR2
from xvlm.models.xvlm import build_model


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return build_model("xvlm-debug").eval()


def test_caption_decoder_is_causal(base) -> None:
    cap = XVLMForCaptioning(copy_model(base)).eval()
    img = torch.randn(1, 3, 96, 96)
    vis, vatts = cap.encode_image(img)
    ids = torch.tensor([[101, 1037, 3861, 1997, 2417, 4418, 102]])
    other = ids.clone()
    other[0, 5:] = torch.tensor([2630, 2000])
    a = cap.logits(ids, torch.ones_like(ids), vis, vatts)
    b = cap.logits(other, torch.ones_like(other), vis, vatts)
    torch.testing.assert_close(a[:, :5], b[:, :5])      # earlier positions never see later tokens
    assert not torch.allclose(a[:, 5:], b[:, 5:])



def test_caption_loss_scores_only_caption_tokens(base) -> None:
    """The loss runs the vocabulary head on target positions only; it must equal the full-sequence
    cross-entropy with the prompt and padding ignored (written out here by hand)."""
    import torch.nn.functional as F

    cap = XVLMForCaptioning(copy_model(base)).eval()
    imgs = torch.randn(2, 3, 96, 96)
    ids = torch.tensor([[101, 1037, 3861, 1997, 2417, 4418, 102, 0],
                        [101, 1037, 3861, 1997, 2630, 2675, 1998, 102]])
    atts = (ids != 0).long()
    index, prompt_len = torch.tensor([0, 1]), 4
    vis, vatts = cap.encode_image(imgs)
    logits = cap.logits(ids, atts, vis, vatts)
    targets = ids.masked_fill(atts == 0, -100)
    targets[:, :prompt_len] = -100
    want = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten(), ignore_index=-100,
                           label_smoothing=0.1)
    got = cap.loss(imgs, index, ids, atts, prompt_len, 0.1)
    torch.testing.assert_close(got, want)
    assert int((targets[:, 1:] != -100).sum()) == 3 + 4          # "red circle [SEP]", "blue square and [SEP]"

def test_answer_decoder_initialised_from_cross_layers(base) -> None:
    vqa = XVLMForVQA(copy_model(base))
    src, dst = base.cross_encoder.layer[1], vqa.answer_decoder.layer[1]
    torch.testing.assert_close(dst.attention.self.query.weight, src.attention.self.query.weight)
    torch.testing.assert_close(dst.crossattention.self.query.weight, src.crossattention.self.query.weight)
    torch.testing.assert_close(dst.output.dense.weight, src.output.dense.weight)
    h = base.cfg.text.hidden_size
    assert dst.crossattention.self.key.weight.shape == (h, h)       # K/V read question states, re-initialised
    assert len(vqa.answer_decoder.layer) == base.cfg.text.num_cross_layers
    assert all(".crossattention.self.key." in n or ".crossattention.self.value." in n for n in vqa.new_params)
    assert vqa.answer_decoder.embeddings.word_embeddings.weight.data_ptr() != \
        vqa.text_encoder.embeddings.word_embeddings.weight.data_ptr()


def test_vqa_loss_weights_and_ranking(base) -> None:
    torch.manual_seed(0)
    vqa = XVLMForVQA(copy_model(base)).eval()
    img = torch.randn(1, 3, 96, 96)
    q = torch.tensor([[101, 2054, 3609, 2003, 1996, 4418, 102]])
    a = torch.tensor([[101, 2417, 102], [101, 2630, 102]])
    aa = torch.ones_like(a)
    args = (img, torch.tensor([0]), q, torch.ones_like(q), a, aa, torch.tensor([0, 0]))
    l_red, l_blue = vqa.loss(*args, torch.tensor([1.0, 0.0])), vqa.loss(*args, torch.tensor([0.0, 1.0]))
    mixed = vqa.loss(*args, torch.tensor([0.7, 0.3]))
    torch.testing.assert_close(mixed, 0.7 * l_red + 0.3 * l_blue)
    best, ll = vqa.rank_answers(img, torch.tensor([0]), q, torch.ones_like(q), a, aa, k=2)
    assert int(best) == int(torch.stack([l_red, l_blue]).argmin()) and float(ll) == pytest.approx(-min(l_red, l_blue).item(), rel=1e-4)


@pytest.mark.parametrize("design", ["interleaved", "pair"])
def test_nlvr2_model(base, design: str) -> None:
    m = XVLMForNLVR2(copy_model(base), design)  # type: ignore[arg-type]
    left, right = torch.randn(2, 3, 96, 96), torch.randn(2, 3, 96, 96)
    ids = torch.tensor([[101, 1996, 2187, 102]] * 2)
    out = m.eval()(left, right, ids, torch.ones_like(ids))
    assert out.shape == (2, 2)
    assert not torch.allclose(out, m(right, left, ids, torch.ones_like(ids)))  # the two sides are not symmetric
    if design == "interleaved":
        assert len(m.cross_layers) == 2 * base.cfg.text.num_cross_layers
        a, b = m.cross_layers[0].crossattention.self, m.cross_layers[1].crossattention.self
        assert a.key is b.key and a.value is b.value and a.query is not b.query
        torch.testing.assert_close(a.query.weight, base.cross_encoder.layer[0].crossattention.self.query.weight)
