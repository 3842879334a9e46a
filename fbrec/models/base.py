"""Shared LightningModule machinery: RankingModule, any model that scores users x items, whose validation and test
rank the whole catalogue (the TorchRec-backed EmbeddingModule builds on it in fbrec.models.embedding)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from fbrec._checks import check_ks
from fbrec.evaluation import RankingEvaluator
from fbrec.evaluation.pooled import PooledLevelAUC
from fbrec.evaluation.ranking import RANK_METRICS, metric_name

# an evaluation pass extrapolated past this (from its first batch of users) is announced with the setting that bounds
# it; FBREC_EVAL_WARN_SECONDS overrides it
EVAL_WARN_SECONDS = float(os.environ.get("FBREC_EVAL_WARN_SECONDS", 120))


class RankingModule(L.LightningModule):
    """Validation and test rank every item for each evaluation user; metrics go to `val/...` and `test/...`."""

    masked_search_min_items = 32_768   # from this catalogue size on, evaluation without AUC ranks by FAISS search

    def __init__(self, ks: Sequence[int] = (10, 20, 50), auc: bool = True):
        super().__init__()
        self.ks = check_ks(ks)
        self.auc = auc
        self._evaluator: RankingEvaluator | None = None
        self._item_embeddings: torch.Tensor | None = None
        self._level_evaluators: dict[tuple[int, str], RankingEvaluator] = {}
        self._pooled: PooledLevelAUC | None = None
        self._view_evaluators: dict[str, RankingEvaluator] = {}
        self.last_evaluators: dict[str, RankingEvaluator] = {}
        self.eval_users_on_this_rank = 0
        self.eval_seconds: dict[str, float] = {}   # per stage, summed over the run's evaluations
        self._eval_warned: set[str] = set()        # stages whose long evaluation was announced
        self.eval_counts: dict[str, int] = {}
        self.stage_seconds: dict[str, float] = {}
        self._queries: list[tuple[torch.Tensor, torch.Tensor]] | None = None   # the FAISS path's users (_start_eval)

    # --- what subclasses provide -------------------------------------------------------------------------
    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, D)
        raise NotImplementedError

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:  # (I,) -> (I, D)
        raise NotImplementedError

    @torch.no_grad()
    def _all(self, embed: Callable[[torch.Tensor], torch.Tensor], n: int, chunk: int = 65_536) -> torch.Tensor:
        return torch.cat([embed(c) for c in torch.arange(n, device=self.device).split(chunk)])   # (n, D)

    def export_embeddings(self, num_users: int, num_items: int) -> tuple[np.ndarray, np.ndarray]:
        """Every user's and item's embedding as float32 numpy (U, D), (I, D); scores are inner products."""
        users, items = self._all(self.user_embeddings, num_users), self._all(self.item_embeddings, num_items)
        return users.float().cpu().numpy(), items.float().cpu().numpy()

    def user_embeddings_at_level(self, users: torch.Tensor, level: int) -> torch.Tensor:
        """The query that ranks for ordinal level k; one score for every level unless a model overrides it."""
        return self.user_embeddings(users)

    # --- checkpoints: the torch RNG travels with them, so a resumed run draws what the uninterrupted one drew ---
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["fbrec_torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "fbrec_torch_rng_state" in checkpoint and self.trainer.state.fn == "fit":
            torch.set_rng_state(checkpoint["fbrec_torch_rng_state"].to(torch.uint8))

    # --- evaluation --------------------------------------------------------------------------------------
    def _start_eval(self, stage: str) -> None:
        self._eval_started = time.perf_counter()
        dm = self.trainer.datamodule
        self._evaluator = RankingEvaluator(dm.eval_set(stage), self.ks, auc=self.auc)
        # ordinal data: one more evaluator per level >= 2, relevant = pairs that reached that level
        names = dm.level_names() if hasattr(dm, "level_names") else []
        level_sets = {(k, names[k - 1]): dm.eval_set(stage, level=k) for k in range(2, len(names) + 1)}
        self._level_evaluators = {key: RankingEvaluator(es, self.ks, auc=self.auc)
                                  for key, es in level_sets.items() if es.truth.nnz}
        # the ordinal papers' metric: per-level AUC pooled over the split's logged rows (fbrec.evaluation.pooled)
        self._pooled = PooledLevelAUC(dm.logged_levels(stage)) if self._level_evaluators else None
        # further views of the same scores under another mask (evaluation.mask_level: "unseen" masks every pair)
        views = dm.eval_views(stage) if hasattr(dm, "eval_views") else {}
        self._view_evaluators = {name: RankingEvaluator(es, self.ks, auc=self.auc) for name, es in views.items()}
        self._item_embeddings = self._all(self.item_embeddings, dm.num_items)
        # inner-product models without AUC on CPU, large catalogues: the top-k comes from FAISS's blocked search
        # (fbrec.retrieval.masked_topk), never a (B, I) score matrix (benchmarks/evaluation.py: dense rows win below)
        self._queries = (
            [] if (not self.auc and not self._level_evaluators and self.device.type == "cpu"
                   and self._evaluator.eval_set.candidates is None
                   and dm.num_items >= self.masked_search_min_items
                   and type(self).score_users is RankingModule.score_users) else None)

    def score_users(self, users: torch.Tensor, item_embeddings: torch.Tensor, level: int | None = None
                    ) -> torch.Tensor:
        """Scores of every item for each user, (B, I): inner products unless a model ranks otherwise."""
        query = self.user_embeddings(users) if level is None else self.user_embeddings_at_level(users, level)
        return query @ item_embeddings.T                                        # (B, D) x (D, I) -> (B, I)

    def _warn_if_long(self, stage: str, batch_idx: int, step_seconds: float) -> None:
        """After the first batch of users, extrapolate the pass (that batch's time x the batches, plus the setup
        before it); past EVAL_WARN_SECONDS say so once per stage, with the setting that bounds it (a 5M-row log once
        validated for 50 minutes without a word)."""
        if batch_idx != 0 or stage in self._eval_warned or self._trainer is None:
            return
        batches = self.trainer.num_val_batches if stage == "val" else self.trainer.num_test_batches
        total = sum(batches) if isinstance(batches, list) else batches
        setup = time.perf_counter() - self._eval_started - step_seconds
        estimate = setup + step_seconds * max(1, total)
        if estimate < EVAL_WARN_SECONDS or total in (None, float("inf")):
            return
        self._eval_warned.add(stage)
        dm = self.trainer.datamodule
        users, items = len(dm.eval_users(stage)), self._item_embeddings.shape[0]
        bounds = ["--model.init_args.auc false (the same top-k metrics by FAISS's blocked search)"] if self.auc else []
        if stage == "val":
            bounds.insert(0, f"--data.evaluation.val_users {max(1000, min(10_000, users // 4))} (a seeded sample; the "
                             "test still ranks every user)")
        took = f"{estimate:.0f} s" if estimate < 90 else f"{estimate / 60:.0f} min"
        rank_zero_info(f"note: {'validation' if stage == 'val' else 'the test'} ranks {users:,} users x {items:,} items"
                       f"{' with AUC' if self.auc else ''}: about {took} per pass here (extrapolated from its first "
                       "batch)" + (f"; {' or '.join(bounds)} bounds it" if bounds else ""))

    def _eval_step(self, users: torch.Tensor) -> None:
        """users (B,) of this rank's share, -1 where the loader padded it (looked up as user 0, then dropped)."""
        real = users >= 0
        lookup = users.clamp_min(0)
        with torch.no_grad():
            if self._queries is not None:   # ranked at the end, in one blocked search (`_rank_queries`)
                self._queries.append((lookup[real], self.user_embeddings(lookup)[real].float()))
                return
            scores = self.score_users(lookup, self._item_embeddings)[real]
            self._evaluator.update(lookup[real], scores)
            for evaluator in self._view_evaluators.values():
                evaluator.update(lookup[real], scores)
            for (k, _), evaluator in self._level_evaluators.items():
                scores = self.score_users(lookup, self._item_embeddings, k)[real]
                evaluator.update(lookup[real], scores)
                if self._pooled is not None:
                    self._pooled.add(k, lookup[real], scores)

    def _gather(self, evaluator: RankingEvaluator | PooledLevelAUC) -> None:
        """Every rank evaluated its own users: give every rank all the per-user rows (so logged values agree)."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1 and torch.distributed.is_initialized():
            parts: list = [None] * world
            torch.distributed.all_gather_object(parts, evaluator.rows())
            evaluator.replace_rows([row for part in parts for row in part])

    def _rank_queries(self) -> None:
        """The fast path of `_start_eval`: every collected user's top max(k) items by masked FAISS search."""
        from fbrec.retrieval import masked_topk

        users = torch.cat([u for u, _ in self._queries]).cpu().numpy() if self._queries else np.zeros(0, np.int64)
        if len(users):
            queries = torch.cat([q for _, q in self._queries]).cpu().numpy()
            top = masked_topk(queries, self._item_embeddings.float().cpu().numpy(), max(self.ks),
                              self._evaluator.eval_set.exclude[users], threads=torch.get_num_threads())
            for start in range(0, len(users), 65_536):
                self._evaluator.update_top(users[start:start + 65_536], top[start:start + 65_536])
        self._queries = None

    def _end_eval(self, stage: str) -> None:
        if self._queries is not None:
            self._rank_queries()
        self.eval_users_on_this_rank = sum(r.filter(r["slice"] == "all").height for r in self._evaluator.rows())
        for evaluator in (self._evaluator, *self._level_evaluators.values(), *self._view_evaluators.values()):
            self._gather(evaluator)
        summary = self._evaluator.summary()
        self.last_evaluators[stage] = self._evaluator
        for name, evaluator in self._view_evaluators.items():
            # a user whose held-out item this view masks is a miss, not left out: means over every user with a target
            view = (evaluator.summary() if evaluator.rows() else   # every user's target masked: all misses
                    {"num_users": 0.0, **{metric_name(m, k): 0.0 for m in RANK_METRICS for k in self.ks}})
            share = view["num_users"] / max(1, len(evaluator.eval_set.users))
            self.log_dict({f"{stage}_{name}/{k}": v * share for k, v in view.items()
                           if "/" not in k and "num_users" not in k and "auc" not in k}, sync_dist=True)
            self.last_evaluators[f"{stage}_{name}"] = evaluator
        for (_, name), evaluator in self._level_evaluators.items():
            level_summary = evaluator.summary()
            summary.update({f"level_{name}/{k}": v for k, v in level_summary.items() if "/" not in k})
            self.last_evaluators[f"{stage}/level_{name}"] = evaluator
        if self._pooled is not None:
            self._gather(self._pooled)
            aucs = self._pooled.summary()
            pooled = {name: aucs.get(k, float("nan")) for k, name in self._level_evaluators}
            summary.update({f"level_{name}/pooled_auc": v for name, v in pooled.items() if np.isfinite(v)})
            if pooled and all(np.isfinite(v) for v in pooled.values()):
                # the GNOLR paper's model-selection score: the product of the per-level pooled AUCs
                summary["pooled_auc_product"] = float(np.prod(list(pooled.values())))
        # every rank now holds every user's rows, so values agree and sync_dist's mean leaves them unchanged
        seconds = time.perf_counter() - self._eval_started
        self.eval_seconds[stage] = self.eval_seconds.get(stage, 0.0) + seconds
        self.eval_counts[stage] = self.eval_counts.get(stage, 0) + 1
        dm = self.trainer.datamodule
        prefix = dm.metric_prefix(stage) if hasattr(dm, "metric_prefix") else stage   # val_users<N>: a sample
        self.log_dict({f"{prefix}/{k}": v for k, v in summary.items() if "num_users" not in k}, sync_dist=True)
        self.log(f"{prefix}/eval_seconds", seconds, sync_dist=True)   # what evaluation costs, per run and epoch
        users = int(summary.get("num_users", 0))
        where = f"epoch {self.current_epoch}" if stage == "val" else "the selected checkpoint"
        sampled = getattr(dm, "sampled_metrics", None) if self._evaluator.eval_set.candidates is not None else None
        over = (f"their relevant items and {sampled} sampled items each" if sampled else
                f"{self._item_embeddings.shape[0]} items")
        rank_zero_info(f"{stage} of {where}: {users} users ranked over {over} in {seconds:.2f} s "
                       f"({self.trainer.world_size} process(es))")
        self._item_embeddings = None

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")

    def validation_step(self, users: torch.Tensor, batch_idx: int) -> None:
        started = time.perf_counter()
        self._eval_step(users)
        self._warn_if_long("val", batch_idx, time.perf_counter() - started)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")

    def test_step(self, users: torch.Tensor, batch_idx: int) -> None:
        started = time.perf_counter()
        self._eval_step(users)
        self._warn_if_long("test", batch_idx, time.perf_counter() - started)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
