"""FeedbackData: a prepared dataset, its splits, evaluation sets and propensities — numpy, scipy and polars only.

FeedbackDataModule (fbrec.data.datamodule) adds the torch loaders on top; commands that only read a run's data
(export, evaluate, the service's tools) use this class and never import torch or Lightning."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import polars as pl

from fbrec._checks import check_positive
from fbrec.data.datasets import RawDataset, data_dir, get_spec, load_pair_propensities, load_raw
from fbrec.data.evalset import EvalSet
from fbrec.data.features import FeatureSet, FeatureSpec, build_features
from fbrec.data.feedback_views import EvaluationViews, LevelViews
from fbrec.data.io import read_log, read_side_table
from fbrec.data.levels import check_level_order
from fbrec.data.prepare import PrepareConfig, PreparedDataset, prepare_raw
from fbrec.data.propensities import attach_pair_propensities, read_pair_propensities
from fbrec.data.specs import Evaluation, Exposure, Features, Sampling, Source, resolve_specs
from fbrec.data.transforms import inject_noise
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.propensity import PopularityPropensity
from fbrec.types import ITEM_INDEX, LEVEL, USER_INDEX, WEIGHT

PROPENSITIES = (None, "popularity", "dataset", "file")


class FeedbackData(LevelViews, EvaluationViews):
    """A prepared dataset and everything evaluation needs from it, without torch or Lightning (`fbrec export`,
    `fbrec evaluate` and the Python API read it directly; FeedbackDataModule adds the loaders).

    Args (fbrec.data.specs; each also accepted as a dict of its fields, as YAML and logged runs give them):
        source: where the clicks come from (a registered dataset, a prepared folder, or your own log and how it is
            read); a string is a registered dataset's name: FeedbackData("movielens-100k").
        preparation: how the source becomes train/val/test (fbrec.data.prepare.PrepareConfig; None fields fall
            back to the dataset's defaults, see `fbrec data describe NAME`).
        propensity: where exposure probabilities come from, carried in every batch (losses) and divided by in the
            SNIPS metrics: PopularityExposure (estimated on the training split), DatasetExposure (Coat's pair
            propensities), FileExposure(path) (your table); None = 1 everywhere.
        sampling: negatives per positive, batch size, PLD's positive pool, injected noise, labels ("binary" or
            ordinal "level"), and the refit's merge of validation into training.
        evaluation: the protocol (candidates "all" | "test_items"), validation's bounds (val_users,
            sampled_metrics: named in the metric keys; the test always ranks every item for every user), the
            ranking chunk size, and the head / cold slices.
        features: side features of the item and user towers (fbrec.data.features.FeatureSpec).
        seed: seed of the split, negative sampling and shuffling. None (the default) = the run's `seed_everything`,
            so one seed drives initialisation and the data stream; set it to vary the data stream alone.
        **flat: the flat keys of earlier releases (batch_size=..., propensity="popularity", ...), rewritten into
            the specs with a one-line deprecation note naming each new key.
    """

    def __init__(self, source: Source | None = None, preparation: PrepareConfig | None = None,
                 propensity: Exposure | None = None, sampling: Sampling | None = None,
                 evaluation: Evaluation | None = None, features: Features | None = None, seed: int | None = None,
                 **flat):
        src, prep, exposure, samp, ev, feats, seed = resolve_specs(
            source, preparation, propensity, sampling, evaluation, features, seed, flat)
        # the constructor's arguments as plain data (fbrec.train(data=...) writes them into a run's config)
        self.init_args = {"source": asdict(src), "preparation": asdict(prep),
                          "propensity": exposure.as_config() if isinstance(exposure, Exposure) else exposure,
                          "sampling": asdict(samp), "evaluation": asdict(ev),
                          "features": {k: [asdict(f) if hasattr(f, "__dataclass_fields__") else f for f in v]
                                       if v else None for k, v in asdict(feats).items()}, "seed": seed}
        super().__init__()
        check_positive("num_negatives", samp.num_negatives)
        check_positive("batch_size", samp.batch_size)
        check_positive("evaluation.batch_size", ev.batch_size)
        check_positive("cold_max_interactions", ev.cold_max_interactions, strict=False)
        if hasattr(self, "save_hyperparameters"):   # as a LightningDataModule: hparams in checkpoints (plain data)
            self.save_hyperparameters(self.init_args)
        # seed_everything (LightningCLI runs it before building this module) exports PL_GLOBAL_SEED
        seed = seed if seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        self.dataset_name, self.data_dir, self.dataset_options = src.dataset, src.data_dir, dict(src.options or {})
        self.prepared_dir = src.prepared_dir
        self.log_path, self.columns, self.levels = src.log, dict(src.columns or {}), src.levels
        self.read_options = {"separator": src.separator, "timestamp_format": src.timestamp_format,
                             "timestamp_unit": src.timestamp_unit, "integer_ids": src.integer_ids}
        self.items_path, self.users_path = src.items, src.users
        if (src.items or src.users) and not src.log:
            raise ConfigError(f"source.items={src.items!r}, source.users={src.users!r} without source.log",
                              rule="side tables accompany your own click log; registered datasets bring theirs",
                              fix="set source.log, or drop source.items / source.users")
        self.prepare_config = replace(prep, seed=seed)
        self.num_negatives, self.batch_size, self.eval_batch_size = samp.num_negatives, samp.batch_size, ev.batch_size
        self.head_fraction, self.cold_max_interactions, self.seed = ev.head_fraction, ev.cold_max_interactions, seed
        self.item_feature_specs = [s if isinstance(s, FeatureSpec) else FeatureSpec(**s) for s in feats.item or ()]
        self.user_feature_specs = [s if isinstance(s, FeatureSpec) else FeatureSpec(**s) for s in feats.user or ()]
        self._feature_sets: dict[str, FeatureSet] = {}
        if exposure is not None and not isinstance(exposure, Exposure):
            raise UnknownNameError("propensity source", str(exposure), [p for p in PROPENSITIES if p])
        name = exposure.name if exposure is not None else None
        check_positive("positive_pool", samp.positive_pool, strict=False)
        if not 0 <= samp.noise_rate < 1:   # checked before any data is read (inject_noise checks it again)
            raise ConfigError(f"noise_rate={samp.noise_rate}", rule="the share of noisy pairs added per user lies in "
                              "[0, 1)", fix="use e.g. sampling.noise_rate: 0.3")
        if samp.noise_rate and name in ("dataset", "file"):
            raise ConfigError(f"noise_rate={samp.noise_rate} with propensity {name!r}",
                              rule="injected noise pairs have no logged propensity",
                              fix="use PopularityExposure (or no propensity) with noise_rate")
        if ev.candidates not in ("all", "test_items"):
            raise UnknownNameError("eval_candidates value", ev.candidates, ["all", "test_items"])
        if samp.label not in ("binary", "level"):
            raise UnknownNameError("label kind", samp.label, ["binary", "level"])
        self.propensity_name, self.eval_candidates, self.label = name, ev.candidates, samp.label
        self.propensity = (PopularityPropensity(exposure.eta, exposure.min_propensity, exposure.normalise,
                                                relevance_rate=getattr(exposure, "relevance_rate", None))
                           if name == "popularity" else None)
        self.propensity_path = getattr(exposure, "path", None)
        self.noise_rate, self.positive_pool = samp.noise_rate, samp.positive_pool
        self.merge_validation = samp.merge_validation
        self.mask_level = ev.mask_level
        if ev.val_users is not None:
            check_positive("val_users", ev.val_users)
        self.val_users = ev.val_users
        if ev.sampled_metrics is not None:
            check_positive("sampled_metrics", ev.sampled_metrics)
        self.sampled_metrics = ev.sampled_metrics
        self._noise: tuple[np.ndarray, np.ndarray] | None = None
        self._batch_fields: set[str] = set()
        self._pairs: pl.DataFrame | None = None
        self._data: PreparedDataset | None = None
        self._train = None   # the loaders' sampler (FeedbackDataModule.setup)
        self._eval_sets: dict[tuple[str, int | None], EvalSet] = {}

    @property
    def data(self) -> PreparedDataset:
        if self._data is None:
            if self.prepared_dir:
                data = PreparedDataset.load(Path(self.prepared_dir))
            else:
                data = self._prepared()
            if self.merge_validation:   # the refit: validation pairs become training pairs
                data = replace(data, train=pl.concat([data.train, data.val.select(data.train.columns)]),
                               val=data.val.head(0))
            self._data = data   # only once every check passed
        return self._data

    def _prepared(self) -> PreparedDataset:
        """Read and prepare the source, or take the cached result of the same source and options (fbrec.data.cache)."""
        from fbrec.data import cache

        key = cache.cache_key({"dataset": self.dataset_name, "data_dir": str(data_dir(self.data_dir).resolve()),
                               "dataset_options": self.dataset_options, "prepare": asdict(self.prepare_config),
                               "log_path": str(Path(self.log_path).resolve()) if self.log_path else None,
                               "items_path": self.items_path, "users_path": self.users_path, "columns": self.columns,
                               "levels": self.levels, "read": self.read_options})
        data = cache.load_cached(key)
        if data is None:
            if self.log_path:
                sides = {side: read_side_table(path, side[:-1], columns=self.columns)
                         for side, path in (("items", self.items_path), ("users", self.users_path)) if path}
                raw = RawDataset(read_log(self.log_path, columns=self.columns, levels=self.levels,
                                          **self.read_options),
                                 files=tuple(Path(p) for p in (self.log_path, self.items_path, self.users_path) if p),
                                 **sides)
                name, config = Path(self.log_path).stem, self.prepare_config
            else:
                raw = load_raw(self.dataset_name, self.data_dir, self.dataset_options)
                name = self.dataset_name
                config = self.prepare_config.resolved(get_spec(name).prepare)
            sources = cache.file_checksums(raw.files or ())
            data = prepare_raw(raw, name, config, None if self.log_path else self.dataset_options)
            cache.store(key, data, sources)
        if not self.log_path and self.levels is not None:   # a recipe's levels must follow the dataset's order
            declared = data.train.schema[LEVEL].categories.to_list() if LEVEL in data.train.columns else []
            check_level_order(declared, self.levels)
        return data

    @property
    def num_users(self) -> int:
        return self.data.num_users

    @property
    def num_items(self) -> int:
        return self.data.num_items

    def request_batch_fields(self, fields: set[str]) -> None:
        """The optional batch fields a model's loss reads (EmbeddingModule.setup asks); others stay None."""
        self._batch_fields = set(fields)
        if self._train is not None:
            self._train.negative_ips_wanted = "negative_ips" in self._batch_fields

    def noise_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The injected noisy training pairs (user_index, item_index) for noise_rate > 0 (empty otherwise), drawn
        once from the data seed among items the user has in no split."""
        if self._noise is None:
            d = self.data
            if not self.noise_rate:
                self._noise = (np.zeros(0, np.int64), np.zeros(0, np.int64))
            else:
                seen = np.concatenate([f[USER_INDEX].to_numpy().astype(np.int64) * d.num_items
                                       + f[ITEM_INDEX].to_numpy() for f in (d.train, d.val, d.test)])
                self._noise = inject_noise(d.train[USER_INDEX].to_numpy(), d.train[ITEM_INDEX].to_numpy(),
                                           d.num_users, d.num_items, self.noise_rate, self.seed, interacted=seen)
        return self._noise

    def item_features(self) -> FeatureSet:
        """The item tower's features as bags over item_index (built once; errors name missing rows or values)."""
        return self._side_features("item")

    def user_features(self) -> FeatureSet:
        return self._side_features("user")

    def _side_features(self, side: str) -> FeatureSet:
        if side not in self._feature_sets:
            item = side == "item"
            self._feature_sets[side] = build_features(
                self.data.items if item else self.data.users,
                self.item_feature_specs if item else self.user_feature_specs,
                self.num_items if item else self.num_users,
                index_column=ITEM_INDEX if item else USER_INDEX, row_name=side)
        return self._feature_sets[side]

    def train_item_counts(self) -> np.ndarray:
        return np.bincount(self.data.train[ITEM_INDEX].to_numpy(), minlength=self.num_items)

    def item_propensity(self) -> np.ndarray | None:
        """The fitted (I,) exposure probabilities, or None when no estimator is configured."""
        if self.propensity is None:
            return None
        if getattr(self.propensity, "item_propensity_", None) is None:
            self.train_arrays()
        return self.propensity.item_propensity_

    def pair_propensities(self) -> pl.DataFrame:
        """The (user, item, propensity) table of propensity: dataset | file (raw ids), read once."""
        if self._pairs is None:
            if self.propensity_name == "file":
                self._pairs = read_pair_propensities(self.propensity_path, columns=self.columns)
            else:
                self._pairs = load_pair_propensities(self.dataset_name, self.data_dir)
        return self._pairs

    def train_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training (users, items, weights, propensities, levels), injected noise included; the popularity
        propensity is fitted here, on the training split only."""
        d = self.data
        weight = d.train[WEIGHT].to_numpy() if WEIGHT in d.train.columns else np.ones(d.train.height, np.float32)
        users, items = d.train[USER_INDEX].to_numpy(), d.train[ITEM_INDEX].to_numpy()
        levels = self._levels(d.train)
        noise_users, noise_items = self.noise_pairs()
        if len(noise_users):   # noisy pairs look like any training positive
            users, items = np.concatenate([users, noise_users]), np.concatenate([items, noise_items])
            weight = np.concatenate([weight, np.ones(len(noise_users), weight.dtype)])
            levels = np.concatenate([levels, np.ones(len(noise_users), levels.dtype)])
        theta = np.ones(len(items))
        if self.propensity is not None:
            self.propensity.num_users = d.num_users
            theta = self.propensity.fit(items, d.num_items).item_propensity_[items]
        elif self.propensity_name is not None:
            theta = attach_pair_propensities(d.train, self.pair_propensities(), what="training")
        return users, items, weight, theta, levels
