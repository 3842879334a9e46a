"""What FeedbackData answers about its feedback levels and its evaluation sets, as mixins (numpy, scipy and polars
only): each reads the prepared splits and settings FeedbackData holds (`data`, `label`, `mask_level`, `seed`, ...)."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from fbrec.data.evalset import EvalSet, popularity_slices, sample_candidates
from fbrec.data.prepare import interactions_csr
from fbrec.data.propensities import attach_pair_propensities
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.types import EVENTS, ITEM_INDEX, LABEL, LEVEL, USER_INDEX


class LevelViews:
    """Ordinal levels: names, each row's label 1..K, cumulative rates, per-behaviour event matrices."""

    def level_names(self) -> list[str]:
        """The ordinal labels 1..K as level names (empty for binary data)."""
        if self.label != "level":
            return []
        train = self.data.train
        if LEVEL not in train.columns:
            raise ConfigError(f"label='level' but dataset {self.data.name!r} has no feedback levels",
                              rule="ordinal labels need a 'level' column", fix="use label='binary'")
        names = train.schema[LEVEL].categories.to_list()
        low = train[LEVEL].to_physical().min()
        return names[low:]

    def _levels(self, frame: pl.DataFrame) -> np.ndarray:
        """1..K for each row (the level counted from the lowest positive level); all ones for binary data."""
        if self.label != "level":
            return np.ones(frame.height, dtype=np.int64)
        names = self.level_names()
        base = self.data.train.schema[LEVEL].categories.to_list().index(names[0])
        return frame[LEVEL].to_physical().to_numpy().astype(np.int64) - base + 1

    def level_rates(self) -> np.ndarray:
        """Cumulative rates P(y >= k), k = 1..K, over the training population the loss sees: each positive and
        its num_negatives sampled negatives (label 0)."""
        y = self._levels(self.data.train)
        K = len(self.level_names()) or 1
        return np.array([(y >= k).sum() for k in range(1, K + 1)]) / (len(y) * (1 + self.num_negatives))

    def declared_levels(self) -> list[str]:
        """Every level of the data, lowest first (empty without levels), whatever min_level kept."""
        train = self.data.train
        return train.schema[LEVEL].categories.to_list() if LEVEL in train.columns else []

    def event_matrix(self, level: str) -> sp.csr_matrix:
        """(U, I) 0/1: the training pairs that saw `level`'s behaviour. With an `events` column (non-nested releases
        such as tmall-mbcgcn) that is the behaviour itself; without one, levels count as nested and every pair at
        `level` or above saw it."""
        d = self.data
        names = self.declared_levels()
        if level not in names:
            raise UnknownNameError("feedback level", level, names or ["(the data has no levels)"])
        k = names.index(level)
        train = d.train
        keep = ((train[EVENTS] & (1 << k)) > 0 if EVENTS in train.columns
                else train[LEVEL].to_physical() >= k)
        return interactions_csr(train.filter(keep), d.num_users, d.num_items)

    def logged_levels(self, stage: str) -> sp.csr_matrix:
        """(U, I) level 1..K of every logged row of the split (val or test), 0 elsewhere: the rows the pooled
        per-level AUC (fbrec.evaluation.pooled) scores."""
        d = self.data
        frame = d.val if stage == "val" else d.test
        return sp.csr_matrix((self._levels(frame), (frame[USER_INDEX].to_numpy(), frame[ITEM_INDEX].to_numpy())),
                             shape=(d.num_users, d.num_items))


class EvaluationViews:
    """The evaluation sets of validation and test (built once each), their extra views, users and metric names."""

    def eval_set(self, stage: str, level: int | None = None) -> EvalSet:
        """val: rank against training items excluded; test: training and validation items excluded.
        level=k keeps only relevant pairs whose ordinal label is >= k (per-level evaluation).
        Built once per (stage, level): the frames never change, and validation asks every epoch."""
        key = (stage, level)
        if key not in self._eval_sets:
            self._eval_sets[key] = self._build_eval_set(stage, level)
        return self._eval_sets[key]

    def masked_training_pairs(self) -> pl.DataFrame:
        """The training pairs evaluation never recommends again: all of them, or with evaluation.mask_level those at
        that level or above (named against the dataset's levels)."""
        train = self.data.train
        if self.mask_level is None:
            return train
        names = train.schema[LEVEL].categories.to_list() if LEVEL in train.columns else []
        if self.mask_level not in names:
            raise UnknownNameError("evaluation.mask_level", self.mask_level, names or ["(the data has no levels)"])
        return train.filter(train[LEVEL].to_physical() >= names.index(self.mask_level))

    def eval_views(self, stage: str) -> dict[str, EvalSet]:
        """Further reported views of a stage's evaluation: with mask_level, the test once more with every training
        pair masked ("unseen")."""
        if stage != "test" or self.mask_level is None:
            return {}
        if ("test_unseen", None) not in self._eval_sets:
            self._eval_sets[("test_unseen", None)] = self._build_eval_set("test", None, mask_all=True)
        return {"unseen": self._eval_sets[("test_unseen", None)]}

    def _build_eval_set(self, stage: str, level: int | None, mask_all: bool = False) -> EvalSet:
        d = self.data

        def at_level(frame: pl.DataFrame) -> pl.DataFrame:
            return frame if level is None else frame.filter(pl.Series(self._levels(frame) >= level))

        train = interactions_csr(d.train, d.num_users, d.num_items)
        activity = np.diff(train.indptr)
        if self.mask_level is not None and not mask_all:
            train = interactions_csr(self.masked_training_pairs(), d.num_users, d.num_items)
        noise_users, noise_items = self.noise_pairs()
        if len(noise_users):   # injected pairs are training pairs: masked like them
            train = (train + sp.csr_matrix((np.ones(len(noise_users), np.float32), (noise_users, noise_items)),
                                           shape=train.shape)).tocsr()
        if stage == "val":
            relevant = at_level(d.val)
            exclude, truth = train, interactions_csr(relevant, d.num_users, d.num_items)
        else:
            test = d.test
            relevant = at_level(test.filter(pl.col(LABEL) > 0) if LABEL in test.columns else test)
            truth = interactions_csr(relevant, d.num_users, d.num_items)
            if self.eval_candidates == "test_items":   # rank only the user's logged test items (MCAR protocol)
                candidates = interactions_csr(test, d.num_users, d.num_items).toarray() > 0
                exclude = sp.csr_matrix(~candidates, dtype=np.float32)
            else:
                exclude = (train + interactions_csr(d.val, d.num_users, d.num_items)).tocsr()
                exclude.data[:] = 1
        slices = popularity_slices(self.train_item_counts(), self.head_fraction, self.cold_max_interactions)
        theta = self.item_propensity()
        weights = None if theta is None else 1.0 / theta
        if self.propensity_name in ("dataset", "file"):   # 1 / theta at every relevant pair of this stage
            inv = 1.0 / attach_pair_propensities(relevant, self.pair_propensities(), what=f"relevant {stage}")
            weights = sp.csr_matrix((inv, (relevant[USER_INDEX].to_numpy(), relevant[ITEM_INDEX].to_numpy())),
                                    shape=(d.num_users, d.num_items))
        # Saito et al.'s protocol metrics where the papers use them: the MCAR candidates (mean over every user with
        # a candidate) and propensity-weighted validation (the unbiased model-selection metric)
        mcar = stage == "test" and self.eval_candidates == "test_items"
        saito = mcar or (stage == "val" and self.propensity_name is not None)
        protocol_users = d.test[USER_INDEX].n_unique() if mcar else None
        candidates = (sample_candidates(exclude, truth, self.sampled_metrics, self.seed)
                      if stage == "val" and self.sampled_metrics else None)
        return EvalSet(exclude, truth, slices, activity, weights, saito=saito,
                       protocol_users=protocol_users, candidates=candidates)

    def eval_users(self, stage: str) -> np.ndarray:
        """The users an evaluation ranks for: every user with a relevant item, or for validation with val_users
        a sample of them drawn once from the data seed (the same users every epoch, sorted)."""
        users = self.eval_set(stage).users
        if stage != "val" or self.val_users is None or self.val_users >= len(users):
            return users
        rng = np.random.default_rng([self.seed, 7])
        return np.sort(rng.choice(users, self.val_users, replace=False))

    def metric_prefix(self, stage: str) -> str:
        """`val`, `test`, or for validation on samples `val_users<N>` (N users), `val_sampled<M>` (M sampled
        candidate items per user), `val_users<N>_sampled<M>` (both)."""
        if stage != "val":
            return stage
        prefix = stage
        if self.val_users is not None and self.val_users < len(self.eval_set("val").users):
            prefix += f"_users{self.val_users}"
        if self.sampled_metrics:
            prefix += f"_sampled{self.sampled_metrics}"
        return prefix
