"""Pure loss functions of tensors (tested alone); recipes in fbrec.models only wire them to scorers.

Every loss has the signature loss(positive (B,), negative (B, N), weight (B,) | None, **batch_and_options);
`make_loss(name, **options)` binds options and returns loss(positive, negative, batch) for a recipe."""

from __future__ import annotations

import functools
import inspect

from fbrec.errors import ConfigError, UnknownNameError
from fbrec.losses.pointwise import bce_with_negatives, bpr
from fbrec.losses.unbiased import local_losses, relmf, relmf_pointwise, wmf

LOSSES = {"bce": bce_with_negatives, "bpr": bpr, "relmf": relmf, "wmf": wmf}
_BATCH_FIELDS = ("propensity",)   # losses that name these receive them from the batch


def make_loss(name: str, **options):
    """Bind options (e.g. clip=0.01, kind="square", alpha=5) and return loss(positive, negative, batch)."""
    if name not in LOSSES:
        raise UnknownNameError("loss", name, LOSSES)
    fn = LOSSES[name]
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if p not in ("positive", "negative", "weight", *_BATCH_FIELDS)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"loss {name!r} has no option {unknown[0]!r}", rule=f"its options: {allowed or 'none'}",
                          fix="fix loss_options in the recipe")
    bound = functools.partial(fn, **options)
    wanted = [f for f in _BATCH_FIELDS if f in params]

    def loss(positive, negative, batch):
        return bound(positive, negative, batch.weight, **{f: getattr(batch, f) for f in wanted})

    return loss


__all__ = ["LOSSES", "bce_with_negatives", "bpr", "local_losses", "make_loss", "relmf", "relmf_pointwise", "wmf"]
