"""One vocabulary for the whole package: canonical column names and the batch types."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # keep torch out of torch-free readers (bundle loading, serving)
    import torch

# Canonical click-log columns. Raw ids stay in USER/ITEM; contiguous indices live in *_INDEX.
USER = "user"
ITEM = "item"
TIMESTAMP = "timestamp"
LEVEL = "level"  # ordered feedback level name (impression < click < cart < purchase) or None
RATING = "rating"
POSITION = "position"
SESSION = "session"
WEIGHT = "weight"
EXPOSED = "exposed"
EVENTS = "events"  # bitmask of the levels a (user, item) pair reached (bit k = level k), for non-nested levels
LABEL = "label"  # binary relevance label after binarizing
PROPENSITY = "propensity"
USER_INDEX = "user_index"
ITEM_INDEX = "item_index"

REQUIRED_COLUMNS = (USER, ITEM)
OPTIONAL_COLUMNS = (TIMESTAMP, LEVEL, RATING, POSITION, SESSION, WEIGHT, EXPOSED)


class InteractionBatch(NamedTuple):
    """A training batch of (user, positive item, sampled negative items).

    user: (B,) long, item: (B,) long, negatives: (B, N) long, weight: (B,) float,
    propensity: (B,) float, the exposure probability of each positive (all ones when none was estimated),
    level: (B,) long, the positive's ordinal label 1..K (1 for binary data); sampled negatives are level 0.
    unlabeled_weight: (B,) float, num_items / (num_negatives * the user's training positives): the weight that
        makes the uniformly sampled negatives an unbiased estimate of a sum over all of the user's items;
    negative_ips: (B, N) float, Y / theta of each sampled negative: 1 / propensity where it is one of the user's
        training positives, else 0 (what UBPR needs);
    pool: (B, k) long, k of the user's training items (data.positive_pool > 0), PLD's candidate positives.
    """

    user: torch.Tensor
    item: torch.Tensor
    negatives: torch.Tensor
    weight: torch.Tensor
    propensity: torch.Tensor
    level: torch.Tensor
    unlabeled_weight: torch.Tensor | None = None
    negative_ips: torch.Tensor | None = None
    pool: torch.Tensor | None = None
