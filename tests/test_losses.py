"""Loss functions as pure functions of logits."""

from __future__ import annotations

import math

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
