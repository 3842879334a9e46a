"""Scorers and towers: tensors -> logits / embeddings."""

from fbrec.nn.mf import MatrixFactorization

__all__ = ["MatrixFactorization"]
