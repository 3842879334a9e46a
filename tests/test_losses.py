"""Loss functions as pure functions of logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fbrec.losses import bce_with_negatives, bpr


def test_bpr_equals_minus_log_sigmoid_of_the_margin():
    pos, neg = torch.tensor([2.0]), torch.tensor([[0.5, 1.0]])
    expected = (-math.log(1 / (1 + math.exp(-1.5))) - math.log(1 / (1 + math.exp(-1.0)))) / 2
    assert bpr(pos, neg).item() == pytest.approx(expected, rel=1e-6)


def test_bce_sums_the_positive_and_every_negative_term():
    pos, neg = torch.tensor([0.0]), torch.tensor([[0.0, 0.0]])
    assert bce_with_negatives(pos, neg).item() == pytest.approx(3 * math.log(2), rel=1e-6)


def test_weights_scale_each_example():
    pos, neg = torch.tensor([0.0, 5.0]), torch.tensor([[0.0], [0.0]])
    only_first = bpr(pos, neg, torch.tensor([1.0, 0.0]))
    assert only_first.item() == pytest.approx(math.log(2), rel=1e-6)


def test_losses_decrease_as_positives_outscore_negatives():
    neg = torch.zeros(1, 3)
    for loss in (bpr, bce_with_negatives):
        assert loss(torch.tensor([3.0]), neg) < loss(torch.tensor([0.0]), neg)


# --- missing-not-at-random losses ----------------------------------------------------------------------------

from fbrec.errors import ConfigError, UnknownNameError  # noqa: E402
from fbrec.losses import local_losses, make_loss, relmf, relmf_pointwise, wmf  # noqa: E402


@pytest.mark.parametrize("kind", ["log", "square"])
def test_relmf_estimator_is_unbiased_for_the_ideal_loss_over_click_draws(kind):
    g = torch.Generator().manual_seed(0)
    n = 2000
    gamma = 0.05 + 0.9 * torch.rand(n, generator=g)             # true relevance
    logit = torch.logit(gamma) + 0.5 * torch.randn(n, generator=g)   # a fair model: predictions track relevance
    theta = 0.05 + 0.95 * torch.rand(n, generator=g)            # exposure propensity
    d1, d0 = local_losses(logit, kind)
    ideal = (gamma * d1 + (1 - gamma) * d0).mean()
    draws = 400
    clicks = (torch.rand(draws, n, generator=g) < theta * gamma).float()     # Y = O * R
    unbiased = relmf_pointwise(logit.expand(draws, n), clicks, theta.expand(draws, n), kind=kind).mean()
    naive = relmf_pointwise(logit.expand(draws, n), clicks, torch.ones(draws, n), kind=kind).mean()
    assert unbiased.item() == pytest.approx(ideal.item(), rel=0.02)
    assert abs(naive.item() - ideal.item()) > 5 * abs(unbiased.item() - ideal.item())


def test_relmf_equals_plain_log_loss_when_propensity_is_one():
    pos, neg = torch.tensor([0.3, -1.2]), torch.tensor([[0.5], [2.0]])
    expected = -torch.log(torch.sigmoid(pos)) - torch.log(1 - torch.sigmoid(neg[:, 0]))
    assert relmf(pos, neg, propensity=torch.ones(2)).item() == pytest.approx(expected.mean().item(), rel=1e-5)


def test_clipping_bounds_the_inverse_propensity_weight():
    logit, click = torch.tensor([1.0]), torch.tensor([1.0])
    raw = relmf_pointwise(logit, click, torch.tensor([1e-4]))
    clipped = relmf_pointwise(logit, click, torch.tensor([1e-4]), clip=0.1)
    at_clip = relmf_pointwise(logit, click, torch.tensor([0.1]))
    assert clipped.item() == pytest.approx(at_clip.item()) and abs(raw.item()) > 100 * abs(clipped.item())


def test_log_loss_with_negative_weights_stays_bounded():
    # a clicked pair with small theta weights delta0 negatively; pushing the logit up must not reach -inf
    losses = [relmf_pointwise(torch.tensor([s]), torch.tensor([1.0]), torch.tensor([0.01])).item()
              for s in (0.0, 10.0, 100.0, 1e4)]
    assert np.isfinite(losses).all() and losses[-1] == pytest.approx(losses[-2])


def test_wmf_weights_positives_by_confidence():
    assert wmf(torch.tensor([0.0]), torch.tensor([[0.0]]), alpha=4).item() == pytest.approx(5.0)
    assert wmf(torch.tensor([1.0]), torch.tensor([[2.0]]), alpha=4).item() == pytest.approx(4.0)


def test_make_loss_binds_options_and_rejects_unknown_ones():
    from fbrec.types import InteractionBatch
    batch = InteractionBatch(None, None, None, torch.ones(1), torch.tensor([0.5]), torch.ones(1, dtype=torch.long))
    loss = make_loss("relmf", clip=0.2, kind="square")
    assert torch.isfinite(loss(torch.tensor([0.1]), torch.tensor([[0.2]]), batch))
    with pytest.raises(ConfigError, match="loss 'relmf' has no option 'clipp'"):
        make_loss("relmf", clipp=0.1)
    with pytest.raises(UnknownNameError, match="did you mean 'relmf'"):
        make_loss("relmff")
    with pytest.raises(ConfigError, match=r"clip=0.0 is out of range"):
        make_loss("relmf", clip=0.0)(torch.tensor([0.1]), torch.tensor([[0.2]]), batch)
