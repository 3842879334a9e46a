"""Feature-based two-tower retrieval with the sampling-bias-corrected in-batch softmax (Yi et al., RecSys 2019)
and self-supervised item towers (Yao et al., CIKM 2021).

Main task: scores s(u, i) = <u, v> / temperature of unit-norm tower outputs; each row's positive competes with
the batch's other positives (plus, with mixed_negatives, the batch's uniformly sampled items), every column
corrected by log q: log(B * count_i / total) with logq="counts", Yi et al.'s streaming hash estimate with
logq="streaming", log(M / num_items) for the M uniform columns. Any pointwise/pairwise loss of fbrec.losses
(bce, bpr, relmf with data.propensity, wmf) can replace the softmax, on the datamodule's sampled negatives.

SSL task (ssl="rfm" | "cfm"): a batch of items drawn uniformly from the catalogue (ssl_sampling="uniform"; "batch"
reuses the main batch's items, the ablation the paper warns against) is encoded twice, view one with the features
of a mask hidden behind learned default embeddings and view two with the complementary mask, both after dropping
each value of a multi-valued feature with probability value_dropout; L = L_main + ssl_weight * InfoNCE(view one,
view two; ssl_temperature). CFM draws a seed feature and masks it with its most mutually informative features
(MI computed once on the training interactions); RFM masks a random half.
Baselines of the paper: feature_dropout (each item feature of the main batch masked with that probability, no SSL
loss) and spread_out_weight (Zhang et al.'s regulariser on the uniform item batch's embeddings).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from fbrec._checks import check_positive
from fbrec.data.features import FeatureSet, mutual_information
from fbrec.embeddings import drop_values, gather_bags, keyed_bags
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.losses import (
    LOSSES,
    StreamingFrequencyEstimator,
    in_batch_softmax,
    info_nce,
    make_loss,
    spread_out,
)
from fbrec.models.embedding import EmbeddingModule
from fbrec.nn import TwoTower, correlated_feature_mask, mi_order, random_feature_mask
from fbrec.nn.masking import STRATEGIES, check_num_masked
from fbrec.nn.two_tower import UserFeatureTower
from fbrec.types import InteractionBatch

LOGQ = ("counts", "streaming")
SSL_SAMPLING = ("uniform", "batch")
CFM_MI = ("mutual_information", "normalized")


class TwoTowerModule(EmbeddingModule):
    """Args:
        embedding_dim: dims of every feature table; hidden_dims / output_dim: each tower's MLP.
        temperature: divides the cosine scores of the main task (Yi et al.: normalisation plus a temperature).
        loss: "softmax" (in-batch, corrected) or a loss of fbrec.losses over sampled negatives; loss_options its
            options.
        logq: "counts", "streaming" or None (no correction); mask_accidental_hits; mixed_negatives: add the
            batch's uniformly sampled items (data.num_negatives per row) as shared softmax columns.
        ssl: None, "rfm" or "cfm"; ssl_weight (alpha), ssl_temperature (tau), ssl_batch_size, ssl_sampling,
            mask_features (features masked in view one; default half), value_dropout (second-stage augmentation),
            cfm_mi: "mutual_information" (the paper) or "normalized" (MI / max(H_a, H_b)). With the id among the
            features, MI(id, X) = H(X), so under plain MI every seed's closest partner is the id (or the id's is
            the richest feature); normalising lets side features group with each other.
        feature_dropout, spread_out_weight: the paper's non-SSL baselines.
        alignment: RLMRec profile alignment of the tower outputs, e.g. {profiles: DIR, mode: con}
            (see fbrec.models.alignment).
    Features come from the datamodule (`item_features`, `user_features`); the id is always feature one."""

    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 32,
                 hidden_dims: Sequence[int] = (64,), output_dim: int = 32, temperature: float = 0.05,
                 loss: str = "softmax", loss_options: dict | None = None, logq: str | None = "counts",
                 mask_accidental_hits: bool = True, mixed_negatives: bool = False,
                 ssl: str | None = None, ssl_weight: float = 0.1, ssl_temperature: float = 0.1,
                 ssl_batch_size: int = 256, ssl_sampling: str = "uniform", mask_features: int | None = None,
                 cfm_mi: str = "mutual_information",
                 value_dropout: float = 0.1, feature_dropout: float = 0.0, spread_out_weight: float = 0.0,
                 init_std: float = 0.1, sparse_optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
                 dense_learning_rate: float = 1e-3, weight_decay: float = 0.0, sharding: dict[str, str] | None = None,
                 ks: Sequence[int] = (10, 50, 100), auc: bool = True, alignment: dict | None = None):
        super().__init__(num_users, num_items, embedding_dim, sparse_optimizer, learning_rate, weight_decay,
                         dense_learning_rate, sharding=sharding, ks=ks, auc=auc, alignment=alignment)
        check_positive("temperature", temperature)
        check_positive("ssl_temperature", ssl_temperature)
        check_positive("ssl_batch_size", ssl_batch_size)
        check_positive("output_dim", output_dim)
        if loss != "softmax" and loss not in LOSSES:
            raise UnknownNameError("two-tower loss", loss, ["softmax", *LOSSES])
        if logq is not None and logq not in LOGQ:
            raise UnknownNameError("logq estimator", logq, LOGQ)
        if ssl is not None and ssl not in STRATEGIES:
            raise UnknownNameError("SSL masking strategy", ssl, STRATEGIES)
        if cfm_mi not in CFM_MI:
            raise UnknownNameError("CFM dependence measure", cfm_mi, CFM_MI)
        if ssl_sampling not in SSL_SAMPLING:
            raise UnknownNameError("SSL item sampling", ssl_sampling, SSL_SAMPLING)
        for name, rate in (("value_dropout", value_dropout), ("feature_dropout", feature_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"{name}={rate}", rule="a dropout rate lies in [0, 1)", fix=f"set {name}: 0.1")
        for name, weight in (("ssl_weight", ssl_weight), ("spread_out_weight", spread_out_weight)):
            check_positive(name, weight, strict=False)
        self.hidden_dims, self.output_dim, self.temperature = list(hidden_dims), output_dim, temperature
        self.loss_name, self.loss_options = loss, dict(loss_options or {})
        self._pair_loss = None if loss == "softmax" else make_loss(loss, **self.loss_options)
        self.logq, self.mask_accidental_hits, self.mixed_negatives = logq, mask_accidental_hits, mixed_negatives
        self.ssl, self.ssl_weight, self.ssl_temperature = ssl, ssl_weight, ssl_temperature
        self.ssl_batch_size, self.ssl_sampling, self.mask_features = ssl_batch_size, ssl_sampling, mask_features
        self.cfm_mi = cfm_mi
        self.value_dropout, self.feature_dropout, self.spread_out_weight = value_dropout, feature_dropout, \
            spread_out_weight
        self.init_std = init_std
        self.save_hyperparameters()
        self.feature_names: dict[str, list[str]] = {}
        self.user_encoders: list[dict] = []
        self._vocab_sizes: dict[str, list[int]] = {}
        self._multi_valued: list[bool] = []
        self._num_masked = 0
        self.frequency = StreamingFrequencyEstimator(num_buckets=1 << 18) if logq == "streaming" else None

    @property
    def cf_dim(self) -> int:
        return self.output_dim

    # --- features --------------------------------------------------------------------------------------------
    def prepare_from(self, datamodule) -> None:
        if not self.feature_names:
            self.set_features(datamodule.user_features(), datamodule.item_features(), datamodule.train_item_counts())

    def set_features(self, users: FeatureSet, items: FeatureSet, item_counts) -> None:
        """Keep the feature bags as buffers (checkpointed with the model) and derive what the losses need."""
        self.user_encoders = list(users.encoders)   # how raw user features became ids (exported with the tower)
        for side, fs in (("user", users), ("item", items)):
            self.feature_names[side] = list(fs.names)
            self._vocab_sizes[side] = list(fs.vocab_sizes)
            for f in range(len(fs.names)):
                self.register_buffer(f"{side}_offsets_{f}", torch.as_tensor(fs.offsets[f]))
                self.register_buffer(f"{side}_values_{f}", torch.as_tensor(fs.values[f]))
        self._multi_valued = list(items.multi_valued)
        num_item_features = len(items.names)
        if self.ssl is not None:   # the config's mask_features stays as given; this is what it resolves to
            self._num_masked = check_num_masked(
                num_item_features // 2 if self.mask_features is None else self.mask_features, num_item_features)
        counts = torch.as_tensor(item_counts, dtype=torch.float64)
        self.register_buffer("item_log_frequency", torch.log(counts.clamp_min(1.0) / counts.sum()).float())
        if self.ssl == "cfm":   # MI between item features over the training interactions, computed once
            mi = torch.as_tensor(mutual_information(items, item_counts))
            if self.cfm_mi == "normalized":   # MI / max(H_a, H_b): the id no longer wins every pairing by its entropy
                entropy = mi.diagonal()
                mi = mi / torch.maximum(entropy[:, None], entropy[None, :]).clamp_min(1e-12)
            self.register_buffer("item_mi_order", mi_order(mi))

    def build_scorer(self) -> nn.Module:
        if not self.feature_names:
            raise ConfigError("the two-tower has no features yet", rule="features come from the datamodule in setup",
                              fix="train through `fbrec train` / Trainer.fit, or call prepare_from(datamodule) first")
        return TwoTower(list(zip(self.feature_names["user"], self._vocab_sizes["user"], strict=True)),
                        list(zip(self.feature_names["item"], self._vocab_sizes["item"], strict=True)),
                        self.embedding_dim, self.hidden_dims, self.output_dim, init_std=self.init_std, device="meta")

    def _bags(self, side: str, rows: torch.Tensor, stride: int, dropout_from: int | None = None
              ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Bags of `rows` at the first positions of a stride-long batch (empty bags after them); values of
        multi-valued item features at positions >= dropout_from are dropped with probability value_dropout."""
        out = {}
        for f, name in enumerate(self.feature_names[side]):
            lengths, values = gather_bags(getattr(self, f"{side}_offsets_{f}"), getattr(self, f"{side}_values_{f}"),
                                          rows)
            if dropout_from is not None and side == "item" and self._multi_valued[f] and self.value_dropout > 0:
                keep_n = int(lengths[:dropout_from].sum())
                dl, dv = drop_values(lengths[dropout_from:], values[keep_n:], self.value_dropout)
                lengths, values = torch.cat([lengths[:dropout_from], dl]), torch.cat([values[:keep_n], dv])
            full = torch.zeros(stride, dtype=lengths.dtype, device=lengths.device)
            full[: len(rows)] = lengths
            out[f"{side}_{name}"] = (full, values)
        return out

    def encode(self, users: torch.Tensor, items: torch.Tensor, item_mask: torch.Tensor | None = None,
               dropout_from: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One DMP forward: users (Bu,) -> (Bu, D), items (Bi,) -> (Bi, D), unit norm."""
        stride = max(len(users), len(items))
        bags = {**self._bags("user", users, stride), **self._bags("item", items, stride, dropout_from=dropout_from)}
        if item_mask is not None and len(items) < stride:
            item_mask = torch.cat([item_mask, item_mask.new_zeros(stride - len(items), item_mask.shape[1])])
        u, v = self.model(keyed_bags(bags), item_mask)
        return u[: len(users)], v[: len(items)]

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self.encode(users, users[:0])[0]

    # --- new users: the tower over side features alone ------------------------------------------------------
    @torch.no_grad()
    def user_embeddings_without_id(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, D) through the trained TorchRec path with each user's id bag emptied: what a new user with
        the same side features gets (the reference the exported tower must reproduce)."""
        bags = {**self._bags("user", users, len(users)), **self._bags("item", users[:0], len(users))}
        id_key = f"user_{self.feature_names['user'][0]}"
        bags[id_key] = (torch.zeros_like(bags[id_key][0]), bags[id_key][1][:0])
        return self.model(keyed_bags(bags), None)[0]

    @torch.no_grad()
    def user_feature_tower(self) -> UserFeatureTower | None:
        """The user tower over side features as plain torch (None without side features). Collective when the
        tables are sharded: every rank calls it."""
        names = self.feature_names["user"]
        if len(names) < 2:
            return None
        scorer = self.model.module
        tables = []
        for f in range(1, len(names)):
            vocab = self._vocab_sizes["user"][f]
            rows = torch.arange(vocab, device=self.device)
            bags = {f"user_{n}": (torch.ones(vocab, dtype=torch.long, device=self.device), rows) if g == f else
                    (torch.zeros(vocab, dtype=torch.long, device=self.device), rows[:0]) for g, n in enumerate(names)}
            bags.update({f"item_{n}": (torch.zeros(vocab, dtype=torch.long, device=self.device), rows[:0])
                         for n in self.feature_names["item"]})
            tables.append(scorer.collection(keyed_bags(bags)).to_dict()[f"user_{names[f]}"].cpu())   # (V_f, d)
        return UserFeatureTower(tables, copy.deepcopy(scorer.user_tower).cpu().eval())

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self.encode(items[:0], items)[1]

    # --- training --------------------------------------------------------------------------------------------
    def _view_mask(self) -> torch.Tensor:
        if self.ssl == "cfm":
            return correlated_feature_mask(self.item_mi_order, self._num_masked)
        return random_feature_mask(len(self.feature_names["item"]), self._num_masked)

    def loss(self, batch: InteractionBatch) -> torch.Tensor:
        B, device = len(batch.user), batch.user.device
        F = len(self.feature_names["item"])
        negatives = batch.negatives.reshape(-1) if (self.mixed_negatives or self._pair_loss is not None) \
            else batch.item[:0]
        main = torch.cat([batch.item, negatives])                                   # (B + M,)
        aux = self.ssl is not None or self.spread_out_weight > 0
        S = self.ssl_batch_size if aux else 0
        if aux:
            ssl_items = (torch.randint(0, self.num_items, (S,), device=device) if self.ssl_sampling == "uniform"
                         else batch.item[torch.randint(0, B, (S,), device=device)])
            views = 2 if self.ssl is not None else 1
            items = torch.cat([main, *[ssl_items] * views])
        else:
            items = main
        mask = torch.zeros(len(items), F, dtype=torch.bool, device=device)
        if self.feature_dropout > 0:          # the paper's feature-dropout baseline on the main task
            mask[: len(main)] = torch.rand(len(main), F, device=device) < self.feature_dropout
        if self.ssl is not None:
            view = self._view_mask().to(device)
            mask[len(main): len(main) + S] = view
            mask[len(main) + S:] = ~view
        u, v = self.encode(batch.user, items, mask, dropout_from=len(main) if self.ssl is not None else None)

        total = self.with_alignment(self._main_loss(batch, u, v[: len(main)], main), batch.user, u, main,
                                    v[: len(main)])
        if self.ssl is not None:
            z1, z2 = v[len(main): len(main) + S], v[len(main) + S:]
            ssl_loss = info_nce(z1, z2, self.ssl_temperature)
            self.log("train/ssl_loss", ssl_loss.detach(), on_step=False, on_epoch=True, batch_size=S)
            total = total + self.ssl_weight * ssl_loss
        if self.spread_out_weight > 0:
            total = total + self.spread_out_weight * spread_out(v[len(main): len(main) + S])
        return total

    def _main_loss(self, batch: InteractionBatch, u: torch.Tensor, v: torch.Tensor, main: torch.Tensor
                   ) -> torch.Tensor:
        B = len(batch.user)
        if self._pair_loss is not None:               # sampled negatives of each row, any fbrec loss
            N = batch.negatives.shape[1]
            positive = (u * v[:B]).sum(-1) / self.temperature                                   # (B,)
            negative = (u[:, None, :] * v[B:].view(B, N, -1)).sum(-1) / self.temperature        # (B, N)
            return self._pair_loss(positive, negative, batch)
        logits = (u / self.temperature) @ v.T                                      # (B, D) x (D, B + M) -> (B, B + M)
        return in_batch_softmax(logits, self._log_q(batch.item, len(main) - B), batch.item, main,
                                weight=batch.weight, mask_accidental_hits=self.mask_accidental_hits)

    def _log_q(self, positives: torch.Tensor, num_uniform: int) -> torch.Tensor | None:
        """log of each candidate's expected occurrences among the candidates: in-batch columns, then uniform ones."""
        if self.logq is None:
            return None
        B = len(positives)
        if self.logq == "counts":
            batch = self.item_log_frequency[positives] + math.log(B)
        else:
            self.frequency.update(positives)
            batch = torch.log(self.frequency.probability(positives))
        uniform = torch.full((num_uniform,), math.log(max(num_uniform, 1) / self.num_items), device=batch.device)
        return torch.cat([batch, uniform])
