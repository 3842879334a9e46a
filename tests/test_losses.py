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
from fbrec.losses import local_losses, make_loss, relmf, relmf_pointwise, ubpr, wmf  # noqa: E402


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
    assert relmf(pos, neg, propensity=torch.ones(2), unlabeled="sampled").item() == pytest.approx(expected.mean().item(), rel=1e-5)


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
    batch = InteractionBatch(None, None, None, torch.ones(1), torch.tensor([0.5]), torch.ones(1, dtype=torch.long),
                             torch.ones(1))
    loss = make_loss("relmf", clip=0.2, kind="square")
    assert torch.isfinite(loss(torch.tensor([0.1]), torch.tensor([[0.2]]), batch))
    with pytest.raises(ConfigError, match="loss 'relmf' has no option 'clipp'"):
        make_loss("relmf", clipp=0.1)
    with pytest.raises(UnknownNameError, match="did you mean 'relmf'"):
        make_loss("relmff")
    with pytest.raises(ConfigError, match=r"clip=0.0 is out of range"):
        make_loss("relmf", clip=0.0)(torch.tensor([0.1]), torch.tensor([[0.2]]), batch)


def _constant_score_minimiser(unlabeled, num_negatives, gamma=0.3, theta=0.05, users=400, items=300, seed=0):
    """argmin over a constant predicted probability p of the expected sampled Rel-MF loss, on planted gamma and
    theta: clicks Y ~ Bernoulli(gamma theta) on every cell, each click with `num_negatives` uniform draws."""
    g = torch.Generator().manual_seed(seed)
    clicks = torch.rand(users, items, generator=g) < gamma * theta
    u, i = clicks.nonzero(as_tuple=True)
    c_u = clicks.sum(1).clamp_min(1).float()
    negatives = torch.randint(0, items, (len(u), num_negatives), generator=g)
    grid = torch.linspace(0.01, 0.99, 99)
    losses = []
    for p in grid:
        logit = torch.logit(p)
        pos, neg = torch.full((len(u),), float(logit)), torch.full(negatives.shape, float(logit))
        losses.append(relmf(pos, neg, propensity=torch.full((len(u),), theta), kind="log", unlabeled=unlabeled,
                            unlabeled_weight=items / (num_negatives * c_u[u])).item())
    return float(grid[int(np.argmin(losses))])


@pytest.mark.parametrize("num_negatives", [4, 66])
def test_reweighted_relmf_minimiser_is_the_ideal_ones_whatever_the_number_of_negatives(num_negatives):
    # the ideal loss gamma delta1 + (1 - gamma) delta0 is minimised at p = gamma = 0.3
    assert _constant_score_minimiser("reweighted", num_negatives) == pytest.approx(0.3, abs=0.05)


def test_sampled_relmf_with_few_negatives_runs_to_one_the_bias_the_reweighting_removes():
    assert _constant_score_minimiser("sampled", 4) > 0.9          # the minimal case: argmin at the clamp
    assert _constant_score_minimiser("sampled", 66) < 0.5


def test_ubpr_by_hand_and_its_negative_weight_on_clicked_draws():
    pos, neg = torch.tensor([1.0]), torch.tensor([[0.0, 0.0]])
    bpr_term = torch.nn.functional.softplus(torch.tensor(-1.0)).item()
    # theta_i = 0.5; draw 0 unclicked (Y/theta = 0), draw 1 another click with theta 0.25 (Y/theta = 4)
    loss = ubpr(pos, neg, propensity=torch.tensor([0.5]), negative_ips=torch.tensor([[0.0, 4.0]]))
    assert loss.item() == pytest.approx(2 * bpr_term * (1 + (1 - 4)) / 2)
    assert ubpr(pos, neg, propensity=torch.tensor([0.5]), negative_ips=torch.tensor([[0.0, 4.0]]), beta=0.0
                ).item() == pytest.approx(2 * bpr_term / 2)                  # non-negative variant clips at 0
    assert ubpr(pos, neg, propensity=torch.ones(1)).item() == pytest.approx(bpr_term)   # = BPR at theta = 1


def test_a_loss_whose_batch_field_is_missing_says_how_to_get_it():
    from fbrec.types import InteractionBatch
    batch = InteractionBatch(None, None, None, torch.ones(1), torch.tensor([0.5]), torch.ones(1, dtype=torch.long),
                             torch.ones(1))
    with pytest.raises(ConfigError, match=r"loss 'ubpr' needs the batch field 'negative_ips'.*request_batch_fields"):
        make_loss("ubpr")(torch.tensor([0.1]), torch.tensor([[0.2]]), batch)
