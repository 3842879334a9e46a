"""RLMRec's alignment losses (Ren et al., WWW 2024): pull each collaborative embedding towards the embedding of its
text profile, contrastively (InfoNCE with cosine logits), in either direction of a learned projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fbrec._checks import check_positive


def alignment_nce(anchors: torch.Tensor, targets: torch.Tensor, temperature: float,
                  negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows i of -log softmax_j(cos(anchor_i, candidate_j) / temperature) at j = i.

    anchors (B, D) and targets (B, D) are paired by row; the candidates are every row's target followed by the
    optional extra negatives (M, D) (RLMRec's full-matrix denominator, sampled). Vectors need not be normalised;
    a row's cosine to a zero vector is 0."""
    check_positive("alignment temperature", temperature)
    candidates = targets if negatives is None else torch.cat([targets, negatives])
    a, c = F.normalize(anchors, dim=-1, eps=1e-8), F.normalize(candidates, dim=-1, eps=1e-8)
    logits = (a / temperature) @ c.T                                          # (B, D) x (D, B + M) -> (B, B + M)
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))
