"""Pure loss functions of tensors (tested alone); recipes in fbrec.models only wire them to scorers."""

from fbrec.losses.pointwise import LOSSES, bce_with_negatives, bpr

__all__ = ["LOSSES", "bce_with_negatives", "bpr"]
