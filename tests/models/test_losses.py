"""ITC / ITM / MLM / bbox losses against hand computations, torchvision, and sampling statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare
from torchvision.ops import box_convert, generalized_box_iou

from tests.models.conftest import make_batch
from xvlm.models.config import get_config
from xvlm.models.losses import bbox_loss, itc_loss, itm_loss, mlm_loss, sample_hard_negatives, text_group_keys
from xvlm.models.objective import LOSS_KEYS, pretrain_losses
from xvlm.models.xvlm import XVLM

IMG = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
TXT = [[0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [0.8, 0.0, 0.6]]


def _hand_ce(logits: list[list[float]], targets: list[list[float]]) -> list[float]:
    out = []
    for row, t in zip(logits, targets, strict=True):
        lse = math.log(sum(math.exp(v) for v in row))
        out.append(-sum(ti * (v - lse) for v, ti in zip(row, t, strict=True)))
    return out


def _hand_itc(logits: list[list[float]], targets: list[list[float]]) -> float:
    """Symmetric ITC by hand: mean over i2t rows and t2i columns of the soft-target cross-entropy. The
    positive relation is symmetric, so text j's targets (over images) are row j of ``targets`` too."""
    cols = [list(c) for c in zip(*logits, strict=True)]
    return (sum(_hand_ce(logits, targets)) + sum(_hand_ce(cols, targets))) / (2 * len(logits))


def test_itc_equals_hand_computation_on_3x3() -> None:
    temp = 0.5
    logits = [[sum(a * b for a, b in zip(i, t, strict=True)) / temp for t in TXT] for i in IMG]
    eye = [[float(r == c) for c in range(3)] for r in range(3)]
    expected = _hand_itc(logits, eye)
    got = itc_loss(torch.tensor(IMG), torch.tensor(TXT), torch.tensor(temp))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # symmetric: swapping the towers gives the same loss
    assert itc_loss(torch.tensor(TXT), torch.tensor(IMG), temp).item() == pytest.approx(expected, rel=1e-6)


def test_itc_soft_targets_for_shared_image_ids_and_padding_mask() -> None:
    temp = 0.25
    img, txt = torch.tensor(IMG), torch.tensor(TXT)
    ids = torch.tensor([4, 4, 9])
    logits = (img @ txt.T / temp).tolist()
    t = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    expected = _hand_itc(logits, t)
    assert itc_loss(img, txt, temp, image_ids=ids).item() == pytest.approx(expected, rel=1e-6)
    # a padded third row changes nothing for the first two = the 2x2 problem
    valid = torch.tensor([True, True, False])
    two = itc_loss(img[:2], txt[:2], temp)
    assert itc_loss(img, txt, temp, valid=valid).item() == pytest.approx(two.item(), rel=1e-6)


def test_text_group_keys_equal_exactly_for_identical_attended_tokens() -> None:
    ids = torch.tensor([[101, 5, 6, 0, 0],   # "5 6"
                        [101, 5, 6, 9, 3],   # "5 6" + padding holding junk ids (masked out)
                        [101, 5, 6, 0, 0],   # "5 6 [PAD]": the attended 0 makes it a different text
                        [101, 6, 5, 0, 0],   # same tokens, other order
                        [101, 5, 6, 0, 0]])  # "5 6" again
    atts = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]])
    k = text_group_keys(ids, atts)
    same = (k[:, None] == k[None, :]).tolist()
    assert same == [[r in (0, 1, 4) and c in (0, 1, 4) or r == c for c in range(5)] for r in range(5)]
    assert int(k.max()) < 2**52  # exact through the float64 gather


def test_itc_identical_texts_are_positives_of_each_other() -> None:
    """False negatives (docs/training.md): pairs 0 and 2 carry the same text, so text 2 is a positive of
    concept 0 and vice versa; the targets spread over both, like image-id targets."""
    temp = 0.5
    img, txt = torch.tensor(IMG), torch.tensor(TXT)
    keys = torch.tensor([11, 22, 11])
    logits = (img @ txt.T / temp).tolist()
    t = [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    expected = _hand_itc(logits, t)
    assert itc_loss(img, txt, temp, text_keys=keys).item() == pytest.approx(expected, rel=1e-6)
    # distinct keys = the plain diagonal targets
    plain = itc_loss(img, txt, temp).item()
    assert itc_loss(img, txt, temp, text_keys=torch.tensor([1, 2, 3])).item() == pytest.approx(plain, rel=1e-6)
    # both groupings at once: the per-pair union (ids join 0-1, keys join 0-2; 1-2 stay negatives)
    got = itc_loss(img, txt, temp, image_ids=torch.tensor([4, 4, 9]), text_keys=keys).item()
    t = [[1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5]]
    expected = _hand_itc(logits, t)
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("mode", ["hard", "uniform"])
def test_itm_negative_sampling_mode(debug_batch, spy_negatives, mode: str) -> None:
    """"hard" (reference) draws ITM negatives from softmax(ITC similarity); "uniform" hands the sampler equal
    logits, so every allowed column is equally likely whatever the features (docs/training.md)."""
    import xvlm.models.objective as objective

    calls = spy_negatives(objective)
    torch.manual_seed(0)
    model = XVLM(get_config("xvlm-debug").replace(itm_negatives=mode))
    objective.pretrain_losses(model, debug_batch)
    seen = [sim for sim, _ in calls]
    assert len(seen) == 2 and seen[0].shape == seen[1].shape == (len(debug_batch.text_ids),) * 2
    if mode == "uniform":
        assert all(bool((s == 0).all()) for s in seen)
    else:  # the text-side call gets the transpose of the concept-side similarity, scaled by 1 / temp
        assert torch.equal(seen[0], seen[1].T) and seen[1].std().item() > 1e-3


def test_pretrain_losses_treat_identical_texts_as_positives(spy_negatives) -> None:
    """In the pre-training objective: ITC targets spread over identical texts and the ITM sampler gets
    weight 0 for identical texts and for the same image (exact masks on a hand-made batch)."""
    import xvlm.models.objective as objective

    batch = make_batch()  # image_index [0, 0, 1, 1, 2, 2]
    batch.text_ids[3] = batch.text_ids[1]  # samples 1 (image 0) and 3 (image 1): the same text
    batch.text_atts[3] = batch.text_atts[1]
    batch.mlm_ids = batch.text_ids.clone()
    seen = spy_negatives(objective)
    torch.manual_seed(0)
    model = XVLM(get_config("xvlm-debug")).eval()
    with torch.no_grad():
        got = pretrain_losses(model, batch, torch.Generator().manual_seed(0))["itc"]
        patches, _ = model.encode_image(batch.images)
        concepts = model.concepts(patches, batch.image_index, batch.boxes)
        img = model.image_feat(concepts.embeds[:, 0])
        txt = model.text_feat(model.encode_text(batch.text_ids, batch.text_atts))
    logits = (img @ txt.T / model.temperature()).tolist()
    t = [[float(r == c or {r, c} == {1, 3}) for c in range(6)] for r in range(6)]
    t = [[v / sum(row) for v in row] for row in t]
    expected = _hand_itc(logits, t)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    image = [0, 0, 1, 1, 2, 2]
    want = [[image[r] == image[c] or {r, c} == {1, 3} for c in range(6)] for r in range(6)]
    assert len(seen) == 2 and all(same.tolist() == want for _, same in seen)


def test_itm_negatives_never_positive_or_same_image() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 0, 1, 2, 2, 3])
    same = ids[:, None] == ids[None, :]
    for _ in range(200):
        sim = torch.randn(6, 6, generator=g) * 5
        sim.diagonal().add_(50.0)  # positives dominate the softmax: still never drawn
        idx, valid = sample_hard_negatives(sim, same, g)
        assert valid.all()
        assert not same[torch.arange(6), idx].any()


def test_itm_row_without_any_negative_is_flagged_invalid() -> None:
    ids = torch.tensor([7, 7, 7, 8])
    idx, valid = sample_hard_negatives(torch.zeros(4, 4), ids[:, None] == ids[None, :])
    assert valid.tolist() == [True, True, True, True]
    assert idx[:3].tolist() == [3, 3, 3]  # the only other image
    ids = torch.tensor([7, 7, 7])
    _, valid = sample_hard_negatives(torch.zeros(3, 3), ids[:, None] == ids[None, :])
    assert valid.tolist() == [False, False, False]


def test_itm_sampling_follows_softmax_weights() -> None:
    g = torch.Generator().manual_seed(1)
    sim = torch.tensor([[3.0, 1.0, 0.0, -1.0, 0.5]])
    same = torch.tensor([[True, False, False, False, False]])
    draws = 40000
    idx, _ = sample_hard_negatives(sim.expand(draws, 5), same.expand(draws, 5), g)
    counts = torch.bincount(idx, minlength=5).double()
    w = F.softmax(sim[0].double(), 0) + 1e-5
    w[0] = 0.0
    expected = w / w.sum() * draws
    assert counts[0] == 0
    assert chisquare(counts[1:].numpy(), expected[1:].numpy()).pvalue > 1e-3


def test_bbox_loss_equals_torchvision_l1_plus_giou() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(7, 4, generator=g) * 0.5 + 0.2
    target = torch.rand(7, 4, generator=g) * 0.5 + 0.2
    mask = torch.tensor([True, False, True, True, False, True, True])
    l1, giou = bbox_loss(pred, target, mask)
    p, t = pred[mask], target[mask]
    assert l1.item() == pytest.approx(((p - t).abs().sum(1)).mean().item(), rel=1e-6)
    exp_giou = (1 - torch.diag(generalized_box_iou(box_convert(p, "cxcywh", "xyxy"),
                                                   box_convert(t, "cxcywh", "xyxy")))).mean()
    assert giou.item() == pytest.approx(exp_giou.item(), rel=1e-5)


def test_bbox_loss_hand_case() -> None:
    # boxes [.4,.4,.6,.6] and [.5,.4,.7,.6]: IoU = .02/.06, hull area = union -> GIoU = 1/3
    l1, giou = bbox_loss(torch.tensor([[0.5, 0.5, 0.2, 0.2]]), torch.tensor([[0.6, 0.5, 0.2, 0.2]]))
    assert l1.item() == pytest.approx(0.1, abs=1e-6)
    assert giou.item() == pytest.approx(2 / 3, abs=1e-5)


def test_zero_boxes_and_zero_masks_give_zero_not_nan() -> None:
    pred = torch.rand(3, 4, requires_grad=True)
    l1, giou = bbox_loss(pred, torch.rand(3, 4), torch.zeros(3, dtype=torch.bool))
    assert l1.item() == 0.0 and giou.item() == 0.0
    (l1 + giou).backward()
    assert torch.equal(pred.grad, torch.zeros(3, 4))
    logits = torch.randn(2, 3, 10, requires_grad=True)
    assert mlm_loss(logits, torch.full((2, 3), -100)).item() == 0.0
    assert itm_loss(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_bbox_loss_rejects_degenerate_targets() -> None:
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        bbox_loss(torch.rand(2, 4), torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.0, 0.2]]))


def test_mlm_loss_is_cross_entropy_over_masked_positions_only() -> None:
    logits = torch.randn(2, 3, 10)
    labels = torch.tensor([[1, -100, 4], [-100, -100, 9]])
    keep = labels != -100
    expected = F.cross_entropy(logits[keep], labels[keep])
    assert mlm_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_combined_step_reaches_every_trainable_parameter() -> None:
    torch.manual_seed(0)
    model = XVLM(get_config("xvlm-debug"))
    losses = pretrain_losses(model, make_batch())
    assert set(losses) == set(LOSS_KEYS)
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_combined_step_learns_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = XVLM(get_config("xvlm-debug"))
    batch = make_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(30):
        losses = pretrain_losses(model, batch, torch.Generator().manual_seed(0))
        loss = losses["itc"] + losses["mlm"] + losses["bbox_l1"] + losses["bbox_giou"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_reference_switches_reproduce_the_reference_rules(spy_negatives) -> None:
    """``itm_exclusion="diagonal"`` + ``text_positives="diagonal"``: the reference's pre-training rules exactly
    (ITM weights softmax + 1e-5 with only the diagonal zeroed; ITC targets the diagonal), on hand-made cases."""
    import torch.nn.functional as F

    import xvlm.models.objective as objective
    from xvlm.models.losses import itm_exclusion_mask, negative_weights

    sim = torch.tensor([[3.0, 2.5, 0.1, 1.0], [2.0, 4.0, 0.5, 3.9], [0.2, 0.3, 2.0, 1.5], [1.0, 3.8, 1.2, 4.1]])
    ids, keys = torch.tensor([0, 0, 1, 1]), torch.tensor([10, 11, 12, 11])  # texts 1 and 3 are identical
    reference = F.softmax(sim, dim=1) + 1e-5  # the reference's xvlm.py, pre-training: no image ids
    reference.fill_diagonal_(0)
    assert torch.equal(negative_weights(sim, itm_exclusion_mask(ids, None, "diagonal")), reference)
    ours = negative_weights(sim, itm_exclusion_mask(ids, keys, "image"))
    assert ours[0, 1] == ours[1, 0] == ours[1, 3] == ours[3, 1] == 0 and ours[0, 2] == reference[0, 2]
    assert reference[0, 1] > 0 and reference[1, 3] > 0  # the reference may draw same-image / identical texts

    batch = make_batch()  # image_index [0, 0, 1, 1, 2, 2]
    batch.text_ids[3], batch.text_atts[3] = batch.text_ids[1], batch.text_atts[1]
    seen = spy_negatives(objective)
    torch.manual_seed(0)
    model = XVLM(get_config("xvlm-debug").replace(itm_exclusion="diagonal", text_positives="diagonal")).eval()
    with torch.no_grad():
        got = pretrain_losses(model, batch, torch.Generator().manual_seed(0))["itc"]
        patches, _ = model.encode_image(batch.images)
        img = model.image_feat(model.concepts(patches, batch.image_index, batch.boxes).embeds[:, 0])
        txt = model.text_feat(model.encode_text(batch.text_ids, batch.text_atts))
    logits = img @ txt.T / model.temperature()
    target = torch.arange(6)
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2  # the reference's ITC
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert len(seen) == 2 and all(torch.equal(same, torch.eye(6, dtype=torch.bool)) for _, same in seen)
