"""Sampled softmax over in-batch candidates with the logQ correction (Yi et al., RecSys 2019), the contrastive SSL
loss and the spread-out regulariser (Yao et al., CIKM 2021's baselines), and the streaming item-frequency estimator.

In-batch negatives are the other rows' positives, so popular items are negatives far more often than under
uniform sampling and the model learns to push them down. Subtracting log q_j, the log of the expected number of
times item j is among the candidates, from every column (the positive's included) makes the softmax an estimate of
the full-catalogue softmax again. A constant q changes nothing: the softmax is invariant to a shift of all columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fbrec._checks import check_positive


def accidental_hits(positive_ids: torch.Tensor, candidate_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the pairs where candidate j != i holds row i's positive item; found through a sort of the
    candidates, O((B + C) log C), instead of a dense (B, C) comparison."""
    order = torch.argsort(candidate_ids)
    ordered = candidate_ids[order]
    lo = torch.searchsorted(ordered, positive_ids, side="left")
    counts = torch.searchsorted(ordered, positive_ids, side="right") - lo                # (B,)
    total = int(counts.sum())
    rows = torch.repeat_interleave(torch.arange(len(positive_ids), device=counts.device), counts, output_size=total)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(total, device=counts.device) + torch.repeat_interleave(lo - first, counts, output_size=total)
    cols = order[slot]
    keep = rows != cols
    return rows[keep], cols[keep]


def in_batch_softmax(logits: torch.Tensor, log_q: torch.Tensor | None, positive_ids: torch.Tensor,
                     candidate_ids: torch.Tensor, weight: torch.Tensor | None = None,
                     mask_accidental_hits: bool = True) -> torch.Tensor:
    """logits (B, C): row i's positive is column i (the first B candidates are the batch's positives; any further
    columns are extra negatives). log_q (C,) is subtracted from every column. An accidental hit, a column j != i
    holding row i's positive item, is removed from row i's softmax. weight (B,) weights the rows (mean)."""
    B = logits.shape[0]
    if log_q is not None:
        logits = logits - log_q[None, :]
    if mask_accidental_hits:
        rows, cols = accidental_hits(positive_ids, candidate_ids)
        if len(rows):
            # in place only on the copy made above: the caller's logits stay untouched
            put = logits.index_put_ if log_q is not None else logits.index_put
            logits = put((rows, cols), torch.tensor(float("-inf"), device=logits.device, dtype=logits.dtype))
    target = torch.arange(B, device=logits.device)
    per_row = F.cross_entropy(logits, target, reduction="none")                     # (B,)
    if weight is None:
        return per_row.mean()
    return (per_row * weight).sum() / weight.sum().clamp_min(1e-12)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive loss of two views (N, D) each: row i of z1 must pick row i of z2 among all of z2 (eq. 3 of Yao
    et al.); the embeddings are expected L2-normalised, so the logits are cosines / temperature."""
    check_positive("ssl_temperature", temperature)
    logits = z1 @ z2.T / temperature                                               # (N, D) x (D, N) -> (N, N)
    return F.cross_entropy(logits, torch.arange(len(z1), device=z1.device))


def spread_out(embeddings: torch.Tensor) -> torch.Tensor:
    """Global orthogonal regulariser of Zhang et al. (2017): pairs of unit vectors should look like random ones,
    M1^2 + max(0, M2 - 1/d) with M1, M2 the mean and mean square of the off-diagonal inner products."""
    n, d = embeddings.shape
    gram = embeddings @ embeddings.T                                               # (N, N)
    off = ~torch.eye(n, dtype=torch.bool, device=embeddings.device)
    pairs = gram[off]
    return pairs.mean() ** 2 + torch.clamp(pairs.pow(2).mean() - 1.0 / d, min=0.0)


class StreamingFrequencyEstimator(nn.Module):
    """Yi et al.'s streaming estimate of how often an item occurs in training batches, without global counts.

    Per hash bucket: A = the last step the bucket was seen, B = a moving average of the gap between sightings:
    B <- (1 - alpha) B + alpha (t - A). The estimate is 1 / B, the expected occurrences per batch; with several
    hash functions the largest B (the least collided bucket) wins. A bucket's first sighting sets B = t, the gap
    since step 0. State lives in buffers, so it is checkpointed."""

    def __init__(self, num_buckets: int = 1 << 20, num_hashes: int = 2, alpha: float = 0.01, seed: int = 0):
        super().__init__()
        check_positive("num_buckets", num_buckets)
        check_positive("num_hashes", num_hashes)
        check_positive("alpha", alpha)
        self.num_buckets, self.alpha = num_buckets, alpha
        g = torch.Generator().manual_seed(seed)
        # universal hashing h(x) = ((a x + b) mod p) mod num_buckets with the Mersenne prime p = 2^31 - 1
        self.register_buffer("hash_a", torch.randint(1, 2**31 - 1, (num_hashes,), generator=g))
        self.register_buffer("hash_b", torch.randint(0, 2**31 - 1, (num_hashes,), generator=g))
        self.register_buffer("last_seen", torch.zeros(num_hashes, num_buckets))
        self.register_buffer("gap", torch.zeros(num_hashes, num_buckets))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def _buckets(self, items: torch.Tensor) -> torch.Tensor:
        x = items.long()[None, :]
        return ((self.hash_a[:, None] * x + self.hash_b[:, None]) % (2**31 - 1)) % self.num_buckets   # (H, N)

    @torch.no_grad()
    def update(self, items: torch.Tensor) -> None:
        """One training step's items (each distinct item counts once per step)."""
        self.step += 1
        t = self.step.float()
        buckets = self._buckets(torch.unique(items))                                # (H, n)
        for h in range(buckets.shape[0]):
            b = torch.unique(buckets[h])
            first = self.last_seen[h, b] == 0
            moved = (1 - self.alpha) * self.gap[h, b] + self.alpha * (t - self.last_seen[h, b])
            self.gap[h, b] = torch.where(first, t, moved)
            self.last_seen[h, b] = t

    def probability(self, items: torch.Tensor) -> torch.Tensor:
        """(N,) estimated occurrences per batch, in (0, 1]; 1 for items never seen."""
        buckets = self._buckets(items)
        gap = torch.gather(self.gap, 1, buckets).max(dim=0).values
        return 1.0 / gap.clamp_min(1.0)
