"""Scorers and towers: tensors -> logits / embeddings."""

from fbrec.nn.lightgcn import LightGCNTables, normalized_adjacency, propagate
from fbrec.nn.masking import correlated_feature_mask, mi_order, random_feature_mask
from fbrec.nn.mf import MatrixFactorization
from fbrec.nn.projection import Projection
from fbrec.nn.two_tower import TwoTower

__all__ = ["LightGCNTables", "MatrixFactorization", "Projection", "TwoTower", "normalized_adjacency", "propagate", "correlated_feature_mask", "mi_order", "random_feature_mask"]
