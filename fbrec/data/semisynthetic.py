"""Saito et al.'s semi-synthetic protocol on MovieLens-100K: known relevance and exposure, MNAR clicks drawn from
them, and an MCAR ground-truth test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from fbrec.data.raw import RawDataset, _load_movielens
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.types import ITEM, RATING, USER

_SEMI_OPTIONS = {"power": 1.0, "epsilon": 5.0, "rank": 20, "test_items": 50, "seed": 0, "min_exposure": 1e-3}


def _low_rank(matrix: np.ndarray, rank: int) -> np.ndarray:
    from scipy.sparse.linalg import svds

    u, sv, vt = svds(matrix.astype(np.float64), k=rank)
    return (u * sv) @ vt


def semisynthetic_truth(root: Path, options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The semi-synthetic MovieLens-100K ground truth: relevance probabilities gamma and exposure probabilities
    theta, (943, 1682) each, row u - 1 / column i - 1 for raw user u and item i (see the loader below)."""
    opt = {**_SEMI_OPTIONS, **(options or {})}
    ratings = _load_movielens(root, {}).log
    U, I = int(ratings[USER].max()), int(ratings[ITEM].max())
    dense = np.zeros((U, I))
    dense[ratings[USER].to_numpy() - 1, ratings[ITEM].to_numpy() - 1] = ratings[RATING].to_numpy()
    observed = dense > 0
    user_mean = dense.sum(1) / observed.sum(1)
    filled = np.where(observed, dense, user_mean[:, None])
    r_hat = np.clip(user_mean[:, None] + _low_rank(filled - user_mean[:, None], int(opt["rank"])), 1, 5)
    gamma = 1 / (1 + np.exp(-(r_hat - opt["epsilon"])))
    floor = float(opt["min_exposure"])
    if not 0 < floor < 1:
        raise ConfigError(f"min_exposure={floor}", rule="the exposure floor lies in (0, 1)",
                          fix="e.g. min_exposure: 1e-4 (benchmarks/RESULTS.md measures the share of cells on it)")
    theta = np.clip(_low_rank(observed.astype(np.float64), int(opt["rank"])), floor, 1) ** opt["power"]
    return gamma, theta


def _load_movielens_semisynthetic(root: Path, options: dict) -> RawDataset:
    """Saito et al.'s semi-synthetic protocol on MovieLens-100K, with known relevance and exposure.

    relevance gamma = sigmoid(R_hat - epsilon), R_hat a rank-`rank` reconstruction of the ratings (user means
    filled in), clipped to [1, 5]; exposure theta = clip(O_hat, min_exposure, 1) ** power, O_hat a rank-`rank`
    reconstruction of the 0/1 rated matrix (larger power = stronger MNAR skew). The reconstruction is negative
    for many never-rated cells, so the floor (default 1e-3) is part of the protocol: about 40% of cells sit on it
    (measured in benchmarks/RESULTS.md, section mnar-propensity-scale). Clicks Y = O * R with
    O ~ Bernoulli(theta), R ~ Bernoulli(gamma) form the training log; the test set is `test_items` uniformly
    random unclicked items per user labelled with their drawn relevance R (an MCAR test with ground truth)."""
    unknown = sorted(set(options) - set(_SEMI_OPTIONS))
    if unknown:
        raise UnknownNameError("semi-synthetic option", unknown[0], _SEMI_OPTIONS)
    opt = {**_SEMI_OPTIONS, **options}
    gamma, theta = semisynthetic_truth(root, opt)
    U, I = gamma.shape
    rng = np.random.default_rng(int(opt["seed"]))
    relevant = rng.random((U, I)) < gamma
    clicks = relevant & (rng.random((U, I)) < theta)
    u, i = np.nonzero(clicks)
    log = pl.DataFrame({USER: u + 1, ITEM: i + 1, RATING: np.ones(len(u))})
    # MCAR test: uniformly random unclicked items per user, with their drawn relevance as the rating (0 or 1)
    keys = rng.random((U, I))
    keys[clicks] = np.inf
    test_items = np.argsort(keys, axis=1)[:, :int(opt["test_items"])]
    tu = np.repeat(np.arange(U), test_items.shape[1])
    ti = test_items.reshape(-1)
    test = pl.DataFrame({USER: tu + 1, ITEM: ti + 1, RATING: relevant[tu, ti].astype(np.float64)})
    return RawDataset(log, test=test, files=(root / "movielens-100k" / "u.data",),
                      catalogue=pl.Series(ITEM, np.arange(1, I + 1, dtype=np.int64)))
