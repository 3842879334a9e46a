"""Pure loss functions of tensors (tested alone); recipes in fbrec.models only wire them to scorers.

Every loss has the signature loss(positive (B,), negative (B, N), weight (B,) | None, **batch_and_options);
`make_loss(name, **options)` binds options and returns loss(positive, negative, batch) for a recipe."""

from __future__ import annotations

import inspect

from fbrec.errors import ConfigError, UnknownNameError
from fbrec.losses.alignment import alignment_nce
from fbrec.losses.ordinal import (
    category_probabilities,
    check_scales,
    cumulative_probabilities,
    gnolr,
    neural_olr,
    thresholds_from_rates,
)
from fbrec.losses.pointwise import bce_with_negatives, bpr
from fbrec.losses.softmax import StreamingFrequencyEstimator, in_batch_softmax, info_nce, spread_out
from fbrec.losses.unbiased import local_losses, relmf, relmf_pointwise, ubpr, wmf

LOSSES = {"bce": bce_with_negatives, "bpr": bpr, "relmf": relmf, "ubpr": ubpr, "wmf": wmf}
_BATCH_FIELDS = ("propensity", "unlabeled_weight", "negative_ips")   # losses that name these receive them from the batch


class BoundLoss:
    """loss(positive, negative, batch) with its options bound; picklable, so spawn-launched ranks can carry it."""

    def __init__(self, name: str, **options):
        if name not in LOSSES:
            raise UnknownNameError("loss", name, LOSSES)
        params = inspect.signature(LOSSES[name]).parameters
        allowed = [p for p in params if p not in ("positive", "negative", "weight", *_BATCH_FIELDS)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(f"loss {name!r} has no option {unknown[0]!r}", rule=f"its options: {allowed or 'none'}",
                              fix="fix loss_options in the recipe")
        self.name, self.options = name, options
        self.batch_fields = [f for f in _BATCH_FIELDS if f in params]

    def __call__(self, positive, negative, batch):
        extra = {f: getattr(batch, f) for f in self.batch_fields}
        missing = [f for f in self.batch_fields if f != "unlabeled_weight" and extra[f] is None]
        if missing:   # (unlabeled_weight may be absent: relmf's `unlabeled: sampled` does without it)
            raise ConfigError(f"loss {self.name!r} needs the batch field {missing[0]!r}, which the batch lacks",
                              rule="FeedbackDataModule fills optional fields a model asks for in its setup",
                              fix="train through fbrec (EmbeddingModule.setup asks), or call "
                                  "datamodule.request_batch_fields({'" + missing[0] + "'})")
        return LOSSES[self.name](positive, negative, batch.weight, **self.options, **extra)


def make_loss(name: str, **options) -> BoundLoss:
    """Bind options (e.g. clip=0.01, kind="square", alpha=5) and return loss(positive, negative, batch)."""
    return BoundLoss(name, **options)


__all__ = ["LOSSES", "BoundLoss", "alignment_nce", "StreamingFrequencyEstimator", "bce_with_negatives", "bpr", "category_probabilities", "check_scales",
           "cumulative_probabilities", "gnolr", "in_batch_softmax", "info_nce", "local_losses", "make_loss", "neural_olr", "relmf", "relmf_pointwise",
           "spread_out", "thresholds_from_rates", "ubpr", "wmf"]
