"""Scorers and towers: tensors -> logits / embeddings."""

from fbrec.nn.masking import correlated_feature_mask, mi_order, random_feature_mask
from fbrec.nn.mf import MatrixFactorization
from fbrec.nn.two_tower import TwoTower

__all__ = ["MatrixFactorization", "TwoTower", "correlated_feature_mask", "mi_order", "random_feature_mask"]
