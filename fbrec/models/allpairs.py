"""Matrix factorisation on an exact all-pairs weighted squared loss: WMF / iALS, Rel-MF (squared), plain MF.

The objective (fbrec.losses.allpairs) sums over every user-item pair, each unobserved pair at weight
unobserved_weight and target 0, each training pair at its objective's confidence and target:
    wmf    confidence unobserved_weight + alpha r_ui, target 1     (Hu et al. 2008; r_ui the pair's click weight)
    relmf  confidence 1, target 1 / max(theta_ui, clip)             (Saito et al. 2020, squared locals on raw scores)
    mf     confidence 1, target 1
No negatives are sampled: the unobserved pairs enter through the item Gramian.

Two solvers on the same TorchRec tables:
    als       each epoch is one alternating sweep, every user row then every item row set to its closed-form
              minimiser (exact Cholesky solves, or cg_steps warm-started conjugate-gradient steps as implicit does);
              one process holds the whole tables.
    gradient  the fused sparse optimizer on the same exact loss, batch by batch: each training row carries its
              pair's observed term and 1 / (its user's row count) of that user's all-pairs term p_u^T G p_u, so one
              epoch sums to the loss exactly once; the Gramian is taken over every item row looked up through DMP,
              so it trains sharded across processes like any other recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fbrec._checks import check_fraction, check_positive
from fbrec.embeddings import whole_table
from fbrec.errors import ConfigError
from fbrec.losses.allpairs import ObservedPairs, all_pairs_loss, gramian, observed_pairs, solve_rows
from fbrec.models.embedding import EmbeddingModule
from fbrec.nn import MatrixFactorization
from fbrec.types import InteractionBatch

OBJECTIVES = ("wmf", "relmf", "mf")
SOLVERS = ("als", "gradient")


class AllPairsMFModule(EmbeddingModule):
    """MF on the exact all-pairs squared loss (module docstring).

    Args:
        objective: "wmf", "relmf" (needs data.propensity) or "mf".
        solver: "als" (closed-form alternating sweeps, one per epoch; one process) or "gradient" (the fused sparse
            optimizer, learning_rate, any number of processes).
        alpha: WMF's confidence slope.
        clip: Rel-MF's propensity floor M (theta -> max(theta, M)); None = unclipped.
        unobserved_weight: w0, the weight of every unobserved pair.
        regularization: reg on |P|^2 + |Q|^2 (implicit's `regularization`).
        cg_steps: k conjugate-gradient steps per row and sweep, warm-started (als only; implicit's default 3);
            None = exact solves (a batched Cholesky per row: exact, ~20x slower per sweep).
        init_std: standard deviation of the normal initialisation of both tables.
        level_weights: on ordinal data (data.sampling.label: level), the click weight of a pair by the highest level
            it reached, lowest first (e.g. [1, 3, 10] for view < cart < buy): WMF's confidence per level.
    """

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 64, objective: str = "wmf",
                 solver: str = "als", alpha: float = 1.0, clip: float | None = None, unobserved_weight: float = 1.0,
                 regularization: float = 0.01, cg_steps: int | None = 3, init_std: float = 0.01,
                 sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
                 sharding: dict[str, str] | None = None, ks: Sequence[int] = (10, 20, 50), auc: bool = True,
                 level_weights: list[float] | None = None):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, 0.0,
                         sharding=sharding, ks=ks, auc=auc)
        for name, value, allowed in (("objective", objective, OBJECTIVES), ("solver", solver, SOLVERS)):
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}", rule=f"{name} is one of {', '.join(allowed)}",
                                  fix=f"set model.init_args.{name}")
        check_positive("alpha", alpha, strict=False)
        check_positive("unobserved_weight", unobserved_weight)
        check_positive("regularization", regularization, strict=False)
        if clip is not None:
            check_fraction("clip", clip, high_open=False)
        if cg_steps is not None:
            check_positive("cg_steps", cg_steps)
        self.objective, self.solver, self.alpha, self.clip = objective, solver, alpha, clip
        self.unobserved_weight, self.regularization, self.cg_steps, self.init_std = (
            unobserved_weight, regularization, cg_steps, init_std)
        if level_weights is not None:
            for w in level_weights:
                check_positive("level_weights", w)
        self.level_weights = None if level_weights is None else [float(w) for w in level_weights]
        self.pairs: ObservedPairs | None = None
        self._transposed: ObservedPairs | None = None
        self.save_hyperparameters()

    def build_scorer(self) -> nn.Module:
        return MatrixFactorization(self.num_users, self.num_items, self.embedding_dim, init_std=self.init_std,
                                   device="meta")

    def prepare_from(self, datamodule) -> None:
        users, items, weight, theta, levels = datamodule.train_arrays()
        if self.level_weights is not None:
            names = datamodule.level_names() if hasattr(datamodule, "level_names") else []
            if len(names) != len(self.level_weights):
                raise ConfigError(f"level_weights={self.level_weights} for levels {names or '(none)'}",
                                  rule="one weight per ordinal level, lowest first (data.sampling.label: level)",
                                  fix="list as many weights as levels, or set data.sampling.label: level")
            weight = weight * np.asarray(self.level_weights, dtype=weight.dtype)[levels - 1]
        if self.objective == "relmf" and getattr(datamodule, "propensity_name", None) is None:
            raise ConfigError("objective relmf without a propensity", rule="Rel-MF divides each click by its exposure",
                              fix="set data.propensity (e.g. {class_path: fbrec.data.specs.PopularityExposure})")
        self.pairs, row_to_pair = observed_pairs(users, items, weight, theta, objective=self.objective,
                                                 num_items=self.num_items, alpha=self.alpha, clip=self.clip,
                                                 unobserved_weight=self.unobserved_weight)
        self._pair_rows = torch.from_numpy(np.bincount(row_to_pair, minlength=len(self.pairs.row)))
        self._user_rows = torch.from_numpy(np.bincount(users, minlength=self.num_users)).clamp_min(1)
        self._num_rows = max(1, len(users))
        self._pair_keys = self.pairs.row * self.num_items + self.pairs.col   # sorted: the batch rows' lookup

    # --- als ------------------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        if self.solver != "als":
            return
        if self.trainer.world_size > 1:
            raise ConfigError(f"solver als on {self.trainer.world_size} processes",
                              rule="the alternating solver needs the whole tables in one process",
                              fix="train with solver: gradient to shard, or launch one process")
        users, items = whole_table(self.model, "user"), whole_table(self.model, "item")
        with torch.no_grad():
            users.copy_(solve_rows(users, items, self.pairs, self.regularization, self.cg_steps))
            items.copy_(solve_rows(items, users, self._item_pairs(), self.regularization, self.cg_steps))
            loss = all_pairs_loss(users, items, self.pairs, self.regularization)
        self.log("train/loss", loss / max(1, len(self.pairs.row)), on_step=False, on_epoch=True, batch_size=1)

    def _item_pairs(self) -> ObservedPairs:
        if self._transposed is None:
            self._transposed = self.pairs.transposed()
        return self._transposed

    # --- gradient ---------------------------------------------------------------------------------------------
    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        """This batch's share of the exact loss (one epoch sums to it once), divided by the batch size."""
        B, I = len(batch.user), self.num_items
        every_item = torch.arange(I, device=batch.user.device)
        p, q = self.embed_pairs(torch.cat([batch.user, torch.zeros_like(every_item)]),
                                torch.cat([batch.item, every_item]))
        p, q_rows, q_all = p[:B], q[:B], q[B:]
        pair = torch.searchsorted(self._pair_keys, batch.user * I + batch.item)
        c, t = self.pairs.confidence[pair], self.pairs.target[pair]
        s = (p * q_rows).sum(-1)
        w0, reg = self.pairs.w0, self.regularization
        user_share = 1.0 / self._user_rows[batch.user].float()
        per_row = (user_share * (w0 * (p @ gramian(q_all) * p).sum(-1) + reg * p.pow(2).sum(-1))
                   + (c * (t - s) ** 2 - w0 * s**2) / self._pair_rows[pair].float())
        item_reg = reg * q_all.pow(2).sum() * B / self._num_rows     # the item rows' penalty, once per epoch
        return (per_row.sum() + item_reg) / B

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.solver == "als" and stage == "fit":
            self.trainer.limit_train_batches = 1   # the sweep reads the pairs, not the batches: draw one per epoch

    def training_step(self, batch: InteractionBatch, batch_idx: int):
        if self.solver == "als":
            return None   # the sweep ran at the start of the epoch
        return super().training_step(batch, batch_idx)
