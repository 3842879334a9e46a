"""Is a model a model? A set of embeddings that scores every item the same for most users (tables collapsed to ~0 by
strong regularisation, say) ranks by the tie-break alone: its metrics describe an arbitrary order, not what it
learned. The check reads the embeddings the run exports, for a seeded sample of users."""

from __future__ import annotations

import numpy as np

FLAT_RANGE = 1e-6    # a user's scores that span less than this (max - min over the catalogue) carry no order
FLAT_SHARE = 0.5     # a model is degenerate when more than this share of the sampled users get such scores


def flat_user_share(user_emb: np.ndarray, item_emb: np.ndarray, *, sample: int = 1000, item_sample: int = 10_000,
                    seed: int = 0) -> float:
    """The share of (up to `sample`, seeded) users whose scores over the items (up to `item_sample` of them, seeded:
    the check stays a few MB on a catalogue of millions) span less than FLAT_RANGE."""
    rng = np.random.default_rng(seed)
    users, items = np.asarray(user_emb), np.asarray(item_emb)
    if len(users) == 0 or len(items) < 2:
        return 0.0
    if len(items) > item_sample:
        items = items[np.sort(rng.choice(len(items), size=item_sample, replace=False))]
    items = items.astype(np.float64)
    rows = rng.choice(len(users), size=min(sample, len(users)), replace=False)
    flat = 0
    for start in range(0, len(rows), 256):
        scores = users[rows[start:start + 256]].astype(np.float64) @ items.T
        flat += int((np.ptp(scores, axis=1) < FLAT_RANGE).sum())
    return flat / len(rows)
