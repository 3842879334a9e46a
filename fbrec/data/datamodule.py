"""FeedbackDataModule: the one place polars frames become torch tensors."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from fbrec.data.feedback import PROPENSITIES, FeedbackData
from fbrec.types import InteractionBatch

__all__ = ["PROPENSITIES", "FeedbackData", "FeedbackDataModule"]


class _NegativeSampled(IterableDataset):
    """Shuffled (user, item, uniform negatives) batches; each rank reads a disjoint, equal-length stride.

    Epoch e draws from seed (seed, e), e being the trainer's epoch when one drives it, so a run resumed at epoch e
    draws exactly what the uninterrupted run drew."""

    def __init__(self, user: torch.Tensor, item: torch.Tensor, weight: torch.Tensor, propensity: torch.Tensor,
                 level: torch.Tensor, num_items: int, num_negatives: int, batch_size: int, seed: int,
                 positive_pool: int = 0):
        self.user, self.item, self.weight, self.propensity, self.level = user, item, weight, propensity, level
        self.positive_pool = positive_pool
        self.num_items, self.num_negatives, self.batch_size, self.seed = num_items, num_negatives, batch_size, seed
        self.epoch, self.rank, self.world = 0, 0, 1
        self.trainer = None
        self.negative_ips_wanted = False   # a per-batch lookup (~40% of the sampler's time): only when a loss asks
        # unbiased-estimator inputs (fbrec.losses.unbiased): I / (N c_u) per user, and each training pair's 1 / theta
        clicks = torch.bincount(user, minlength=int(user.max()) + 1 if len(user) else 1).clamp_min(1)
        self.unlabeled_weight = num_items / (num_negatives * clicks.float())              # (U,)
        keys = user * num_items + item
        self.pair_keys, order = keys.sort()
        self.pair_ips = (1.0 / propensity.double()).float()[order]                        # aligned to pair_keys
        # each user's training items, contiguous (pair_keys is sorted by user, then item): PLD's candidate pools
        self.user_items = self.pair_keys % num_items
        self.user_start = torch.searchsorted(self.pair_keys, torch.arange(len(clicks)) * num_items)
        self.user_count = torch.bincount(user, minlength=len(clicks))

    def __len__(self) -> int:
        return (len(self.user) // self.world + self.batch_size - 1) // self.batch_size

    def _negative_ips(self, user: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Y / theta of each drawn item: 1 / theta where (user, item) is a training positive, else 0."""
        keys = user[:, None] * self.num_items + negatives
        idx = torch.searchsorted(self.pair_keys, keys).clamp(max=len(self.pair_keys) - 1)
        return torch.where(self.pair_keys[idx] == keys, self.pair_ips[idx], torch.zeros(()))

    def __iter__(self):
        if self.trainer is not None:
            self.epoch = self.trainer.current_epoch
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        perm = torch.randperm(len(self.user), generator=g)
        per_rank = len(perm) // self.world
        perm = perm[self.rank * per_rank:(self.rank + 1) * per_rank]
        negatives = torch.randint(0, self.num_items, (len(perm), self.num_negatives), generator=g)
        for start in range(0, len(perm), self.batch_size):
            idx = perm[start:start + self.batch_size]
            user, neg = self.user[idx], negatives[start:start + len(idx)]
            yield InteractionBatch(user, self.item[idx], neg, self.weight[idx], self.propensity[idx], self.level[idx],
                                   self.unlabeled_weight[user],
                                   self._negative_ips(user, neg) if self.negative_ips_wanted else None,
                                   self._pool(user, g))

    def _pool(self, user: torch.Tensor, g: torch.Generator) -> torch.Tensor | None:
        """(B, positive_pool) of each user's training items, drawn uniformly with replacement."""
        if not self.positive_pool:
            return None
        draw = (torch.rand(len(user), self.positive_pool, generator=g) * self.user_count[user, None]).long()
        return self.user_items[self.user_start[user, None] + draw]


class FeedbackDataModule(FeedbackData, L.LightningDataModule):
    """FeedbackData (every argument is documented there) plus the loaders: negative-sampled training batches and
    each rank's share of the evaluation users."""

    def setup(self, stage: str | None = None) -> None:
        if self._train is None:
            users, items, weight, theta, levels = self.train_arrays()
            self._train = _NegativeSampled(torch.from_numpy(users.astype(np.int64)),
                                           torch.from_numpy(items.astype(np.int64)),
                                           torch.as_tensor(weight, dtype=torch.float32),
                                           torch.as_tensor(theta, dtype=torch.float32),
                                           torch.as_tensor(levels, dtype=torch.long), self.num_items,
                                           self.num_negatives, self.batch_size, self.seed, self.positive_pool)
            self._train.negative_ips_wanted = "negative_ips" in self._batch_fields
        if self.trainer is not None:
            self._train.rank, self._train.world = self.trainer.global_rank, self.trainer.world_size
            self._train.trainer = self.trainer

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(self._train, batch_size=None)

    def _users_loader(self, stage: str) -> DataLoader:
        """This rank's share of the evaluation users (every world-th, so activity is balanced), padded with -1 to
        the same length on every rank: sharded tables need every rank in every lookup. Padding is scored and
        dropped; the model gathers the ranks' results."""
        users = torch.from_numpy(self.eval_users(stage).copy())
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        mine = users[rank::world]
        padded = torch.full(((len(users) + world - 1) // world,), -1, dtype=users.dtype)
        padded[: len(mine)] = mine
        return DataLoader(list(padded.split(self.eval_batch_size)), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        if self.data.val.height == 0:
            return DataLoader([])
        return self._users_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._users_loader("test")


# LightningCLI documents the data arguments from this class's docstring: the same text as FeedbackData's
FeedbackDataModule.__doc__ = (FeedbackData.__doc__ or "") + """
    FeedbackDataModule adds the loaders: negative-sampled training batches and each rank's share of the evaluation
    users."""
