"""EmbeddingModule: a RankingModule whose user/item embeddings live in a TorchRec collection wrapped by
DistributedModelParallel (built in configure_model, sharded across processes when launched with TorchRecStrategy on
several devices), trained with a fused sparse optimizer; and pair_logits, the dot products of a batch's pairs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from fbrec._checks import check_positive
from fbrec.embeddings import SPARSE_OPTIMIZERS, combined_optimizer, plan_summary, shard
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.models.alignment import ProfileAlignment
from fbrec.models.base import RankingModule
from fbrec.types import InteractionBatch


class EmbeddingModule(RankingModule):
    """Base for recipes whose scorer keeps every id embedding in a TorchRec collection.

    Subclasses implement `build_scorer()` (on the meta device) and `loss(batch)`. Embeddings are updated by the
    fused TorchRec optimizer inside backward; dense parameters (if any) by Adam.
    """

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 64,
                 sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05, weight_decay: float = 0.0,
                 dense_learning_rate: float = 1e-3, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (10, 20, 50), auc: bool = True, alignment: dict | None = None):
        super().__init__(ks=ks, auc=auc)
        if sparse_optimizer not in SPARSE_OPTIMIZERS:
            raise UnknownNameError("sparse optimizer", sparse_optimizer, SPARSE_OPTIMIZERS)
        check_positive("embedding_dim", embedding_dim)
        check_positive("learning_rate", learning_rate)
        check_positive("weight_decay", weight_decay, strict=False)
        self.num_users, self.num_items, self.embedding_dim = num_users, num_items, embedding_dim
        self.sparse_optimizer, self.learning_rate, self.weight_decay = sparse_optimizer, learning_rate, weight_decay
        self.dense_learning_rate, self.sharding = dense_learning_rate, dict(sharding or {})
        self.automatic_optimization = False     # the fused optimizer steps inside backward; we drive the rest
        self.model: nn.Module | None = None
        # RLMRec profile alignment (fbrec.models.alignment), an option of every embedding model
        self.alignment = ProfileAlignment.from_config(alignment)
        self._extra_parameters: list[nn.Parameter] = []
        self._penalty: torch.Tensor | None = None     # this step's L2 penalty (embed_pairs), added in training_step

    def build_scorer(self) -> nn.Module:
        raise NotImplementedError

    def batch_fields(self) -> set[str]:
        """The optional InteractionBatch fields this model's losses read (e.g. negative_ips for UBPR)."""
        losses = (getattr(self, "_loss", None), getattr(self, "_pair_loss", None))
        return {f for loss in losses for f in getattr(loss, "batch_fields", ())}

    def prepare_from(self, datamodule) -> None:
        """Read what the scorer needs from the data before it is built (side features, rates); called in setup."""

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        if hasattr(dm, "request_batch_fields"):   # optional batch fields cost sampler time: only those asked for
            dm.request_batch_fields(self.batch_fields())
        self.prepare_from(dm)
        if self.alignment is not None:
            self.alignment.attach(self.trainer.datamodule.data, self.cf_dim)

    @property
    def cf_dim(self) -> int:
        """Dimension of the user and item vectors that score (what profile alignment aligns)."""
        return self.embedding_dim

    def with_alignment(self, loss: torch.Tensor, users: torch.Tensor, user_vectors: torch.Tensor,
                       items: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        """loss + alignment.weight * the profile-alignment loss of these users' and items' CF vectors (the loss
        unchanged without alignment)."""
        if self.alignment is None or self.alignment.weight == 0:
            return loss
        extra = self.alignment.loss(users, user_vectors, items, item_vectors)
        self.log("train/alignment_loss", extra.detach(), on_step=False, on_epoch=True, batch_size=len(users))
        return loss + self.alignment.weight * extra

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        raise NotImplementedError

    def configure_model(self) -> None:
        if self.model is not None:
            return
        if self.num_users < 1 or self.num_items < 1:
            raise ConfigError(f"num_users={self.num_users}, num_items={self.num_items}",
                              rule="the model needs the catalogue size before training",
                              fix="train through `fbrec train` (links them from the data), or pass them")
        # our world-size-1 process group makes Lightning think every epoch-level log needs syncing
        warnings.filterwarnings("ignore", message="It is recommended to use `self.log")
        device = self.device if self.device.type != "meta" else torch.device("cpu")
        # weight_decay is our L2 penalty on the rows a batch looks up (embed_pairs): fbgemm's fused CPU kernels
        # ignore their own weight_decay (measured: no effect for sgd or rowwise_adagrad), so it is never passed on
        self.model = shard(self.build_scorer(), device=device, sharding=self.sharding,
                           optimizer=self.sparse_optimizer, learning_rate=self.learning_rate)

    def sharding_plan(self) -> dict[str, str]:
        return plan_summary(self.model)

    def configure_optimizers(self):
        extra = {n: p for n, p in self.named_parameters() if not n.startswith("model.") and p.requires_grad}
        self._extra_parameters = list(extra.values())
        return combined_optimizer(self.model, self.dense_learning_rate, extra)

    def _average_extra_gradients(self) -> None:
        """Dense parameters outside the DMP (thresholds, projections) get no DDP hook: average their gradients
        across ranks here, so every rank takes the same Adam step and they stay identical."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world < 2 or not torch.distributed.is_initialized():
            return
        for p in self._extra_parameters:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.distributed.all_reduce(grad)
            p.grad = grad / world

    def training_step(self, batch: InteractionBatch, batch_idx: int) -> torch.Tensor:
        opt = self.optimizers()   # Lightning's wrapper: its step() advances global_step (checkpoints, log steps)
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}; "
                                     "lower learning_rate or check the input weights")
        if self._penalty is not None:
            self.log("train/l2_penalty", self._penalty.detach(), on_step=False, on_epoch=True,
                     batch_size=len(batch.user))
            loss, self._penalty = loss + self._penalty, None
        opt.zero_grad()
        self.manual_backward(loss)
        self._average_extra_gradients()
        opt.step()
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch.user))
        return loss

    def embed_pairs(self, user: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """user (B,), item (B,) or (B, M) -> user and item embeddings, both (B, D) or (B, M, D), through DMP
        (sharded lookups, DDP hooks). In training with weight_decay > 0 it also adds weight_decay x the squared
        norm of the looked-up rows per example to the step's loss (the usual "reg" of MF/BPR code)."""
        p, q = self.model(user, item)
        if self.training and self.weight_decay and torch.is_grad_enabled():   # not for no-grad lookups (PLD)
            penalty = self.weight_decay * (p.pow(2).sum() + q.pow(2).sum()) / len(user)
            self._penalty = penalty if self._penalty is None else self._penalty + penalty
        return p, q

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self.embed_pairs(users, torch.zeros_like(users))[0]

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self.embed_pairs(torch.zeros_like(items), items)[1]


def pair_logits(module: EmbeddingModule, batch: InteractionBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the positives (B,) and of the sampled negatives (B, N) in one lookup."""
    items = torch.cat([batch.item[:, None], batch.negatives], dim=1)           # (B, 1 + N)
    p, q = module.embed_pairs(batch.user, items)                               # (B, 1 + N, D) each
    logits = (p * q).sum(-1)                                                   # (B, 1 + N)
    return logits[:, 0], logits[:, 1:]

