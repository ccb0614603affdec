"""Each SMDL term on hand-computed cases."""

import math

import pytest
import torch

from mmattr.errors import InputError
from mmattr.objective import SMDLObjective, SMDLWeights, target_match


def unit(deg: float) -> torch.Tensor:
    r = math.radians(deg)
    return torch.tensor([math.cos(r), math.sin(r)])


# Three regions at 0°, 90°, 180°: dist = angle/180° → d01 = 0.5, d02 = 1, d12 = 0.5.
REGIONS = torch.stack([unit(0), unit(90), unit(180)])


def objective(**kw) -> SMDLObjective:
    return SMDLObjective(target=unit(0), region_emb=REGIONS, **kw)


@pytest.mark.parametrize("subset, expected", [
    ([0, 0, 0], 0.0), ([1, 0, 0], 0.0), ([1, 1, 0], 1.0), ([1, 0, 1], 2.0), ([1, 1, 1], 1.5)])
def test_effectiveness_hand_computed(subset, expected):
    got = objective().effectiveness(torch.tensor([subset], dtype=torch.float32))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_effectiveness_chunked_equals_whole():
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(40, 8), dim=-1)
    obj = SMDLObjective(target=emb[0], region_emb=emb)
    subsets = (torch.rand(3000, 40) > 0.5).float()  # more than one chunk
    whole = torch.stack([obj.effectiveness(s[None])[0] for s in subsets[:50]])
    torch.testing.assert_close(obj.effectiveness(subsets)[:50], whole)


def test_consistency_and_collaboration_cosine():
    obj = objective(weights=SMDLWeights(0, 0, 1, 1))
    emb_in = torch.stack([unit(60)])  # cos 60° = 0.5
    emb_out = torch.stack([unit(90)])  # cos 90° = 0
    terms = obj.terms(torch.tensor([[1.0, 0, 0]]), emb_in, emb_out)
    assert terms["consistency"].item() == pytest.approx(0.5, abs=1e-6)
    assert terms["collaboration"].item() == pytest.approx(1.0, abs=1e-6)
    assert obj.score(torch.tensor([[1.0, 0, 0]]), emb_in, emb_out).item() == pytest.approx(1.5, abs=1e-6)


def test_probability_mode_is_softmax_over_vocabulary():
    vocab = torch.stack([unit(0), unit(90)])
    obj = objective(mode="probability", vocabulary=vocab, target_index=0, logit_scale=2.0)
    emb = torch.stack([unit(0)])
    expected = math.exp(2.0) / (math.exp(2.0) + math.exp(0.0))
    assert obj.match(emb).item() == pytest.approx(expected, rel=1e-6)
    assert target_match(emb, "cosine", unit(0)).item() == pytest.approx(1.0)


def test_confidence_entropy_and_evidential():
    vocab = torch.stack([unit(0), unit(180)])
    # Halfway (90°) both logits are 0: uniform probabilities → entropy confidence 0;
    # evidential: e = exp(0) = 1 for K = 2 → u = 2 / (2 + 2) = 0.5 → confidence 0.5.
    emb = torch.stack([unit(90)])
    ent = objective(weights=SMDLWeights(1, 0, 0, 0), vocabulary=vocab, target_index=0)
    evi = objective(weights=SMDLWeights(1, 0, 0, 0), vocabulary=vocab, target_index=0,
                    confidence="evidential")
    assert ent.confidence(emb).item() == pytest.approx(0.0, abs=1e-6)
    assert evi.confidence(emb).item() == pytest.approx(0.5, abs=1e-6)
    # Clamp at ±10 before exp: logits ±100 give e = (e^10, e^-10).
    sure = objective(weights=SMDLWeights(1, 0, 0, 0), vocabulary=vocab, target_index=0,
                     confidence="evidential", logit_scale=100.0)
    expected = 1 - 2 / (math.exp(10) + 1 + math.exp(-10) + 1)
    assert sure.confidence(torch.stack([unit(0)])).item() == pytest.approx(expected, rel=1e-6)


def test_probability_needs_a_vocabulary():
    with pytest.raises(InputError, match="vocabulary"):
        objective(mode="probability")
    with pytest.raises(InputError, match="unknown score"):
        objective(mode="softmax")
