"""The history re-rank baseline: each user's own lower-level history, ranked by how often each item converts.

What a practitioner tries first on a multi-behaviour log, where most held-out purchases are items the user already
viewed or carted: for user u,

    score(u, i) = offset * [u saw i at a level below the target] + log conv_i
    conv_i      = (n_i^target + smoothing * p) / (n_i + smoothing)

n_i = the training pairs in which item i was seen below the target level (viewed or carted), n_i^target = those of
them that also reached the target level (bought), p = the same share over all items (the smoothing prior). So the
user's history comes first, ordered by the item's conversion rate, then every other item by the same rate. Nothing is
learned by gradient: the one "epoch" counts (as PopularityModule does). Levels are read as the data's event sets
(`FeedbackData.event_matrix`): non-nested releases keep "viewed" apart from "bought".

It scores through the user's history, which no fixed-size embedding holds, so it is evaluated like any recipe but
exports no bundle (the error says so).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from fbrec._checks import check_positive
from fbrec.errors import ConfigError
from fbrec.models.base import RankingModule

HISTORY_OFFSET = 1e3   # above any |log conv| (conv >= smoothing * p / (n + smoothing) > e^-1000)


class HistoryRerankModule(RankingModule):
    """Args:
        target_level: the level to predict (default: the data's highest, e.g. buy).
        smoothing: pseudo-count of the conversion rate's prior (the global rate)."""

    def __init__(self, num_users: int = 0, num_items: int = 0, target_level: str | None = None,
                 smoothing: float = 5.0, ks: Sequence[int] = (10, 20, 50), auc: bool = True):
        super().__init__(ks=ks, auc=auc)
        if num_items < 1:
            raise ConfigError(f"num_items={num_items}", rule="the catalogue size is needed",
                              fix="train through `fbrec train`, which links it from the data")
        check_positive("smoothing", smoothing)
        self.num_users, self.num_items = num_users, num_items
        self.target_level, self.smoothing = target_level, smoothing
        self.register_buffer("log_conversion", torch.zeros(num_items))
        self.automatic_optimization = False
        self._history: sp.csr_matrix | None = None
        self.save_hyperparameters()

    def history_and_target(self, datamodule) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(U, I) 0/1 matrices: the pairs seen below the target level, and the pairs that reached it."""
        names = datamodule.declared_levels()
        if not names:
            raise ConfigError("the history re-rank needs feedback levels", rule="it ranks what a user saw below the "
                              "target level", fix="use a dataset with levels (e.g. tmall-mbcgcn)")
        target = self.target_level or names[-1]
        if target not in names or names.index(target) == 0:
            raise ConfigError(f"target_level={target!r}", rule=f"a level above the lowest of {names}",
                              fix=f"set model.init_args.target_level to one of {names[1:]}")
        below = names[:names.index(target)]
        history = sum(datamodule.event_matrix(level) for level in below)
        history = (history > 0).astype(np.float32).tocsr()
        return history, datamodule.event_matrix(target)

    def setup(self, stage: str) -> None:
        history, target = self.history_and_target(self.trainer.datamodule)
        self._history = history
        if stage == "fit":
            self.trainer.limit_train_batches = 1   # counting reads the matrices, not the batches
            seen = np.asarray(history.sum(0)).ravel()
            converted = np.asarray(history.multiply(target).sum(0)).ravel()
            prior = converted.sum() / max(1.0, seen.sum())
            rate = (converted + self.smoothing * prior) / (seen + self.smoothing)
            self.log_conversion.copy_(torch.from_numpy(np.log(np.maximum(rate, 1e-300))))

    def training_step(self, batch, batch_idx: int) -> None:
        return None   # the rates were counted in setup

    def configure_optimizers(self):
        return None

    def score_users(self, users: torch.Tensor, item_embeddings: torch.Tensor, level: int | None = None
                    ) -> torch.Tensor:
        rows = torch.from_numpy(self._history[users.cpu().numpy()].toarray()).to(self.log_conversion)   # (B, I)
        return HISTORY_OFFSET * rows + self.log_conversion                                              # (B, I)

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(users), 1, device=self.log_conversion.device)

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self.log_conversion[items][:, None]

    exports_embeddings = False   # fbrec.train logs its metrics and reports, no embeddings, model or bundle

    def export_embeddings(self, num_users: int, num_items: int):
        raise ConfigError("the history re-rank baseline has no embeddings to export",
                          rule="it ranks through each user's own history, which no fixed-size vector holds",
                          fix="export an embedding model (e.g. wmf_als_tmall_levels)")
