"""Ordinal losses (neural OLR, GNOLR): probabilities, thresholds from base rates, the NaN guard, nesting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fbrec.errors import ConfigError
from fbrec.losses.ordinal import (
    category_probabilities,
    check_scales,
    cumulative_probabilities,
    gnolr,
    neural_olr,
    thresholds_from_rates,
)

RATES = torch.tensor([0.2, 0.05, 0.01])     # P(y >= 1), P(y >= 2), P(y >= 3)


def test_thresholds_put_each_level_at_its_base_rate_at_zero_similarity():
    a = thresholds_from_rates(RATES)
    cumulative = cumulative_probabilities(torch.zeros(1, 3), torch.ones(3), a)
    torch.testing.assert_close(cumulative[0], RATES, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rates,pattern", [
    ([0.2, 0.0], r"level 2 has cumulative positive rate 0.0"),
    ([0.2, 0.3], r"increase with the level"),
    ([1.0, 0.1], r"level 1 has cumulative positive rate 1.0"),
])
def test_undefined_thresholds_are_rejected(rates, pattern):
    with pytest.raises(ConfigError, match=pattern):
        thresholds_from_rates(torch.tensor(rates))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3), st.floats(0.05, 0.95))
def test_category_probabilities_sum_to_one_and_stay_positive_within_the_gap(cos, fraction):
    a = thresholds_from_rates(RATES)
    gap = a[1:] - a[:-1]
    scale = torch.cat([torch.tensor([3.0]), fraction * gap])
    check_scales(scale, a)
    probs = category_probabilities(cumulative_probabilities(torch.tensor([cos]), scale, a))
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (probs > 0).all()


def test_scales_beyond_the_threshold_gap_are_rejected_and_would_give_nan():
    a = thresholds_from_rates(RATES)
    gap = (a[1] - a[0]).item()
    scale = torch.tensor([1.0, gap * 1.5, 0.1])
    with pytest.raises(ConfigError, match=r"scale S_2=.* is not below the threshold gap"):
        check_scales(scale, a)
    probs = category_probabilities(cumulative_probabilities(torch.tensor([[0.0, 1.0, 0.0]]), scale, a))
    assert (probs < 0).any(), "without the guard a category probability goes negative (log -> NaN)"
    loss = gnolr(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([1]), scale, a)
    assert torch.isfinite(loss), "the loss clamps instead of returning NaN"


def test_one_level_gnolr_is_binary_cross_entropy():
    a = thresholds_from_rates(torch.tensor([0.3]))
    cos, label = torch.tensor([[0.4], [-0.2]]), torch.tensor([1, 0])
    expected = F.binary_cross_entropy_with_logits(2.0 * cos[:, 0] - a, label.float())
    assert gnolr(cos, label, torch.tensor([2.0]), a).item() == pytest.approx(expected.item(), rel=1e-5)


def test_nested_optimisation_adds_the_truncated_stages():
    a = thresholds_from_rates(RATES)
    cos, label, scale = torch.tensor([[0.3, -0.1, 0.2]]), torch.tensor([2]), torch.tensor([2.0, 0.5, 0.5])
    full = gnolr(cos, label, scale, a, nested_optimization=False)
    nested = gnolr(cos, label, scale, a)
    p = cumulative_probabilities(cos, scale, a)[0]
    stage1 = -math.log(p[0].item())                       # y >= 1 at stage 1
    stage2 = -math.log(p[1].item())                       # y = 2 is the top category at stage 2
    assert nested.item() == pytest.approx(stage1 + stage2 + full.item(), rel=1e-5)


def test_neural_olr_uses_one_similarity_for_every_threshold():
    a = thresholds_from_rates(RATES)
    s = torch.tensor([0.0])
    expected = -math.log(1 - RATES[0].item())            # label 0 at zero similarity: 1 - base rate
    assert neural_olr(s, torch.tensor([0]), a).item() == pytest.approx(expected, rel=1e-5)
