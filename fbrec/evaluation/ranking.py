"""Full-ranking top-K evaluation over the whole catalogue, batched over users so memory stays bounded.

Definitions (per user u with relevant test items R_u, |R_u| >= 1; users with no test items are skipped):
  the candidate set is every item except u's excluded items (training, and validation items at test time);
  hits_r = 1 if the item at rank r (1-based) of the candidates' top-K is in R_u.
  HitRate@K   = 1[sum_{r<=K} hits_r > 0]
  Precision@K = sum_{r<=K} hits_r / K
  Recall@K    = sum_{r<=K} hits_r / |R_u|
  DCG@K       = sum_{r<=K} hits_r / log2(r + 1)   (un-normalised, as Saito et al. report on MCAR tests)
  NDCG@K      = DCG@K / IDCG@K,  DCG@K = sum_{r<=K} hits_r / log2(r + 1),  IDCG@K = sum_{r<=min(K,|R_u|)} 1/log2(r+1)
  MAP@K       = sum_{r<=K} hits_r * Precision@r / min(K, |R_u|)
  MRR@K       = 1 / (rank of the first hit) if it is <= K, else 0
  AUC         = P(score(pos) > score(neg)) over u's positives x non-excluded negatives, ties count 1/2
Summaries average over users (macro); GAUC weights each user's AUC by |R_u|.

Saito et al.'s protocol metrics (WSDM 2020 / ICTIR 2020 code), reported under their own names when the eval set asks
for them (`EvalSet.saito`, set for MCAR candidate evaluation and propensity-weighted validation), so nobody reads them
as the standard ones above: the rank-r discount is 1 / max(1, log2 r) (ranks 1 and 2 both count 1), and every metric
is divided by |R_u|:
  saito_dcg@K    = sum_{r<=K} hits_r / max(1, log2 r) / |R_u|
  saito_recall@K = sum_{r<=K} hits_r / |R_u|
  saito_map@K    = sum_{r<=K} 1[hit_r] * (sum_{j<=r} hits_j) / r / |R_u|
and their summary is the mean over every user of the protocol (`EvalSet.protocol_users`: for MCAR candidates every
user with a test item, relevant or not), a user without a relevant item counting 0. Tied scores are ranked by item
index (the lower index first; `topk_by_index`), so a metric@K never depends on which other K are requested and
a constant scorer ranks items 0, 1, 2, ... of the candidates. A slice (e.g. tail items) restricts R_u to the slice's items while
ranking still runs over the whole catalogue; users with no relevant item in the slice are skipped for it.

Sampled metrics (an explicit option, `EvalSet.candidates`, e.g. `data.sampled_metrics: 100`, named
`val_sampled100/...`): each user's relevant items are ranked among n sampled items instead of the whole catalogue.
They are cheap and not consistent with full ranking (Krichene & Rendle, KDD 2020: they can order models
differently), so fbrec uses them only when asked, only for validation, and the test always ranks the whole catalogue.

Unbiased (SNIPS) variants on MNAR test data, reported as the slice "snips" when inverse propensities w_i = 1/theta_i
are given: each hit counts w_i * |R_u| / sum_{j in R_u} w_j instead of 1 (Saito et al.'s self-normalised IPS), so
  snips Recall@K = sum_{i in top-K and R_u} w_i / sum_{i in R_u} w_i,  snips DCG@K = sum_r hit'_r / log2(r + 1),
and every metric equals its plain version when all propensities are equal. The slice "ips" uses the raw weights
(hit'_r = w_i): unbiased for the full-information metric under the exposure model, but unbounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from fbrec._checks import check_ks
from fbrec.data.evalset import EvalSet
from fbrec.errors import ConfigError
from fbrec.evaluation.auc import _aucs
from fbrec.evaluation.topk import _member, topk_by_index

RANK_METRICS = ("hit_rate", "precision", "recall", "dcg", "ndcg", "map", "mrr")
SAITO_METRICS = ("saito_dcg", "saito_recall", "saito_map")


def metric_name(metric: str, k: int | None = None) -> str:
    """MLflow-safe names: ndcg_at_10 (MLflow rejects '@')."""
    return metric if k is None else f"{metric}_at_{k}"


def _coords(m: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Nonzeros of the given CSR rows as (local row, column) long tensors, in (row, column) order, so that
    row * num_items + column is ascending."""
    sub = m[rows]
    sub.sort_indices()
    sub = sub.tocoo()
    return (torch.from_numpy(sub.row.astype(np.int64)).to(device), torch.from_numpy(sub.col.astype(np.int64)).to(device))


def _rank_metrics(hits: torch.Tensor, n_rel: torch.Tensor, ks: Sequence[int], *, saito: bool = False
                  ) -> dict[str, torch.Tensor]:
    """hits (B, Kmax) of the top-Kmax list (0/1, or hit weights), n_rel (B,) -> per-user metric vectors; with
    `saito` also Saito et al.'s protocol metrics (see the module docstring)."""
    kmax = hits.shape[1]
    ranks = torch.arange(1, kmax + 1, dtype=torch.float32, device=hits.device)
    discount = 1.0 / torch.log2(ranks + 1)                                     # (Kmax,)
    cum_hits = hits.cumsum(1)                                                  # (B, Kmax)
    ideal = discount.cumsum(0)                                                 # IDCG for min(K, |R|) = 1..Kmax
    first = torch.where(hits.any(1), hits.argmax(1).float() + 1, torch.full_like(n_rel, float("inf")))
    out = {}
    for k in ks:
        h = hits[:, :k]
        nh = cum_hits[:, k - 1]
        denom = torch.clamp(torch.minimum(n_rel, torch.tensor(float(k))), min=1)
        out[metric_name("hit_rate", k)] = (nh > 0).float()
        out[metric_name("precision", k)] = nh / k
        out[metric_name("recall", k)] = nh / n_rel
        dcg = (h * discount[:k]).sum(1)
        out[metric_name("dcg", k)] = dcg
        out[metric_name("ndcg", k)] = dcg / ideal[denom.long() - 1]
        out[metric_name("map", k)] = (h * cum_hits[:, :k] / ranks[:k]).sum(1) / denom
        out[metric_name("mrr", k)] = torch.where(first <= k, 1.0 / first, torch.zeros_like(first))
        if saito:
            saito_discount = 1.0 / torch.log2(ranks[:k]).clamp_min(1.0)
            out[metric_name("saito_dcg", k)] = (h * saito_discount).sum(1) / n_rel
            out[metric_name("saito_recall", k)] = nh / n_rel
            out[metric_name("saito_map", k)] = ((h > 0) * cum_hits[:, :k] / ranks[:k]).sum(1) / n_rel
    return out


class RankingEvaluator:
    """Accumulate per-user metrics from (users, scores) chunks; `frame()` and `summary()` at the end."""

    def __init__(self, eval_set: EvalSet, ks: Sequence[int] = (10, 20, 50), *, auc: bool = True):
        self.eval_set, self.ks, self.auc = eval_set, check_ks(ks), auc
        if max(self.ks) > eval_set.num_items:
            raise ConfigError(f"k={max(self.ks)} exceeds the catalogue of {eval_set.num_items} items",
                              rule="k <= num_items", fix="lower the largest k")
        self._rows: list[pl.DataFrame] = []

    def update(self, users: np.ndarray | torch.Tensor, scores: torch.Tensor, *, owned: bool = False) -> None:
        """users (B,) indices, scores (B, I) for all items; excluded items are masked here. `owned`: the caller
        hands the tensor over (it is masked in place, saving a copy of a (B, I) matrix)."""
        users = users.cpu().numpy() if isinstance(users, torch.Tensor) else np.asarray(users)
        keep = np.diff(self.eval_set.truth.indptr)[users] > 0
        if not keep.any():
            return
        if keep.all():
            scores = scores.float() if owned or scores.dtype != torch.float32 else scores.clone()
        else:   # boolean indexing copies, so masking below never touches the caller's tensor
            users, scores = users[keep], scores[torch.from_numpy(keep).to(scores.device)].float()
        B, I = scores.shape
        dev = scores.device
        if self.eval_set.candidates is not None:   # sampled metrics: only the user's candidates keep their scores
            c_r, c_c = _coords(self.eval_set.candidates, users, dev)
            kept = scores[c_r, c_c]
            scores.fill_(float("-inf"))
            scores[c_r, c_c] = kept
        ex_r, ex_c = _coords(self.eval_set.exclude, users, dev)
        scores.index_put_((ex_r, ex_c), torch.tensor(float("-inf"), device=dev))
        n_excluded = (torch.bincount(ex_r, minlength=B) if self.eval_set.candidates is None
                      else torch.isneginf(scores).sum(1))   # every item outside the candidates, and seen ones
        top = topk_by_index(scores, max(self.ks))                               # (B, Kmax)
        self._record(users, top, ex_r, ex_c, n_excluded, scores if self.auc else None)

    def update_top(self, users: np.ndarray | torch.Tensor, top: np.ndarray | torch.Tensor) -> None:
        """users (B,) with their ranked top items (B, >= max k), excluded items already left out, ties by the lower
        index, -1 where a user has fewer candidates (e.g. from `fbrec.retrieval.masked_topk`): the same metrics
        as `update` without a (B, I) score matrix; AUC needs every score, so an AUC evaluator refuses it."""
        if self.auc or self.eval_set.candidates is not None:
            raise ConfigError("update_top on an evaluator with auc=True or sampled candidates",
                              rule="AUC needs every item's score; sampled metrics rank the candidates' scores",
                              fix="use update(users, scores)")
        users = users.cpu().numpy() if isinstance(users, torch.Tensor) else np.asarray(users)
        top = torch.as_tensor(top)[:, :max(self.ks)].long()
        keep = np.diff(self.eval_set.truth.indptr)[users] > 0
        if not keep.any():
            return
        users, top = users[keep], top[torch.from_numpy(keep)]
        ex_r, ex_c = _coords(self.eval_set.exclude, users, top.device)
        self._record(users, top, ex_r, ex_c, None, None)

    def _record(self, users: np.ndarray, top: torch.Tensor, ex_r: torch.Tensor, ex_c: torch.Tensor,
                n_excluded: torch.Tensor | None, scores: torch.Tensor | None) -> None:
        """Per-user metrics of the ranked top (B, Kmax) for every slice; AUC from the masked scores when given."""
        es = self.eval_set
        B, I, dev = len(users), es.num_items, top.device
        tr_r, tr_c = _coords(es.truth, users, dev)
        ex_keys, tr_keys = ex_r * I + ex_c, tr_r * I + tr_c                      # (row, item) as one int64
        relevant = ~_member(ex_keys, tr_keys)                                    # a seen item is never a target
        tr_r, tr_c, tr_keys = tr_r[relevant], tr_c[relevant], tr_keys[relevant]
        top_keys = torch.where(top >= 0, torch.arange(B, device=dev)[:, None] * I + top, -1)
        if scores is not None:   # every slice's AUC from one pass over the items
            in_slice = {name: torch.from_numpy(mask).to(dev)[tr_c] for name, mask in es.item_slices.items()}
            aucs = _aucs(scores, tr_r, tr_c, {"all": torch.ones_like(tr_r, dtype=torch.bool), **in_slice},
                         n_excluded)
        for name, item_mask in {"all": None, **es.item_slices}.items():
            sel = slice(None) if item_mask is None else torch.from_numpy(item_mask).to(dev)[tr_c]
            n_rel = torch.bincount(tr_r[sel], minlength=B).float()
            rows = n_rel > 0
            if not rows.any():
                continue
            hits = _member(tr_keys[sel], top_keys).float()                      # (B, Kmax)
            metrics = _rank_metrics(hits[rows], n_rel[rows], self.ks, saito=es.saito)
            if name == "all" and es.item_weights is not None:
                w_target = self._target_weights(users, tr_r, tr_c, tr_keys, I)
                for normalise in (True, False):
                    self._add_weighted(users, rows, hits, top_keys, tr_r, tr_keys, w_target, n_rel,
                                       normalise=normalise)
            data = {"user": users[rows.cpu().numpy()], "slice": name, "n_relevant": n_rel[rows].cpu().numpy()}
            data.update({k: v.cpu().numpy() for k, v in metrics.items()})
            if scores is not None:   # other slices' targets are neither positive nor negative
                data["auc"] = aucs[name][rows].cpu().numpy()
            self._rows.append(pl.DataFrame(data))

    def _target_weights(self, users: np.ndarray, tr_r: torch.Tensor, tr_c: torch.Tensor, tr_keys: torch.Tensor,
                        num_items: int) -> torch.Tensor:
        """1/theta of every target (T,): from item weights (I,), dense pair weights (U, I), or sparse pair
        weights holding a value at every relevant pair."""
        w = self.eval_set.item_weights
        dev = tr_keys.device
        if sp.issparse(w):
            sub = w.tocsr()[users]
            sub.sort_indices()
            coo = sub.tocoo()
            keys = torch.from_numpy(coo.row.astype(np.int64) * num_items + coo.col.astype(np.int64)).to(dev)
            vals = torch.from_numpy(coo.data.astype(np.float32)).to(dev)
            if keys.numel() == 0:
                raise ConfigError("no pair weights for this chunk's relevant pairs",
                                  rule="sparse pair weights hold 1/theta at every relevant pair", fix="rebuild them")
            idx = torch.searchsorted(keys, tr_keys).clamp(max=keys.numel() - 1)
            found = keys[idx] == tr_keys
            if not bool(found.all()):
                raise ConfigError(f"{int((~found).sum())} relevant pairs have no weight",
                                  rule="sparse pair weights hold 1/theta at every relevant pair",
                                  fix="build them from the same relevant pairs as the truth")
            return vals[idx]
        w = torch.as_tensor(w, dtype=torch.float32, device=dev)
        if w.ndim == 2:
            return w[torch.as_tensor(users, device=dev)][tr_r, tr_c]
        return w[tr_c]

    def _add_weighted(self, users, rows, hits, top_keys, tr_r, tr_keys, w_target, n_rel, *, normalise: bool) -> None:
        """The "snips" (self-normalised per user) or "ips" (raw 1/theta weights) slice."""
        if normalise:
            w_sum = torch.zeros_like(n_rel).index_add_(0, tr_r, w_target)       # (B,) sum of w over R_u
            scale = n_rel / w_sum.clamp_min(1e-12)
        else:
            scale = torch.ones_like(n_rel)
        at = torch.searchsorted(tr_keys, top_keys).clamp(max=max(0, tr_keys.numel() - 1))   # the hit's target
        w_top = torch.where(hits > 0, w_target[at], torch.zeros((), device=hits.device))
        weighted = hits * w_top * scale[:, None]                                 # hit'_r, (B, Kmax)
        metrics = _rank_metrics(weighted[rows], n_rel[rows], self.ks, saito=self.eval_set.saito)
        name = "snips" if normalise else "ips"
        data = {"user": users[rows.cpu().numpy()], "slice": name, "n_relevant": n_rel[rows].cpu().numpy()}
        data.update({k: v.cpu().numpy() for k, v in metrics.items()})
        if self.auc:
            data["auc"] = np.full(int(rows.sum()), np.nan, dtype=np.float32)
        self._rows.append(pl.DataFrame(data))

    def rows(self) -> list[pl.DataFrame]:
        """The per-user result chunks so far (to gather them across processes)."""
        return list(self._rows)

    def replace_rows(self, rows: list[pl.DataFrame]) -> None:
        self._rows = list(rows)

    def frame(self) -> pl.DataFrame:
        """One row per (user, slice) with every metric: the input for paired tests and CIs."""
        if not self._rows:
            raise ConfigError("no user had a relevant test item", rule="evaluation needs users with test items",
                              fix="check the split and binarizing threshold")
        frame = pl.concat(self._rows)
        if self.eval_set.user_activity is not None:
            frame = frame.with_columns(pl.Series("n_train", self.eval_set.user_activity[frame["user"].to_numpy()]))
        return frame

    def summary(self, frame: pl.DataFrame | None = None) -> dict[str, float]:
        """Flat dict: "ndcg_at_10" for all items, "tail/ndcg_at_10" for a slice, plus gauc."""
        frame = self.frame() if frame is None else frame
        metric_cols = [c for c in frame.columns if c not in ("user", "slice", "n_relevant", "n_train")]
        out: dict[str, float] = {}
        for (name,), part in frame.group_by("slice", maintain_order=True):
            prefix = "" if name == "all" else f"{name}/"
            for col in metric_cols:
                vals = part[col].drop_nans()
                out[prefix + col] = float(vals.mean()) if vals.len() else float("nan")
                if col.startswith("saito_") and vals.len():   # the protocol's users without a relevant item add 0
                    out[prefix + col] = float(vals.sum()) / max(self.eval_set.protocol_users or 0, vals.len())
            if "auc" in metric_cols:
                valid = part.filter(pl.col("auc").is_not_nan())
                w = valid["n_relevant"]
                out[prefix + "gauc"] = float((valid["auc"] * w).sum() / w.sum()) if valid.height else float("nan")
            out[prefix + "num_users"] = float(part.height)
        return {k: v for k, v in out.items() if not np.isnan(v)}   # e.g. AUC is not defined for "snips"


def evaluate_scores(score_fn: Callable[[np.ndarray], torch.Tensor], eval_set: EvalSet,
                    ks: Sequence[int] = (10, 20, 50), *, batch_size: int | None = None, auc: bool = True,
                    memory_budget_bytes: int = 256 * 2**20) -> RankingEvaluator:
    """Run `score_fn(users) -> (B, I)` over eval_set's users in chunks sized to the memory budget."""
    evaluator = RankingEvaluator(eval_set, ks, auc=auc)
    users = eval_set.users
    bytes_per_row = eval_set.num_items * (28 if auc else 8)   # scores + topk scratch; AUC sorts and masks
    b = batch_size or max(1, min(4096, memory_budget_bytes // max(1, bytes_per_row)))
    for start in range(0, len(users), b):
        chunk = users[start:start + b]
        evaluator.update(chunk, score_fn(chunk), owned=isinstance(score_fn, EmbeddingScorer))
    return evaluator


class EmbeddingScorer:
    """Inner-product scores: (B, D) x (D, I) -> (B, I), a fresh tensor per call (the evaluator masks it in place)."""

    def __init__(self, user_embeddings: np.ndarray | torch.Tensor, item_embeddings: np.ndarray | torch.Tensor):
        self.user_embeddings = torch.as_tensor(user_embeddings, dtype=torch.float32)
        self.item_embeddings = torch.as_tensor(item_embeddings, dtype=torch.float32)

    def __call__(self, users: np.ndarray) -> torch.Tensor:
        return self.user_embeddings[torch.as_tensor(users, dtype=torch.long)] @ self.item_embeddings.T


def embedding_scorer(user_embeddings: np.ndarray | torch.Tensor, item_embeddings: np.ndarray | torch.Tensor
                     ) -> EmbeddingScorer:
    return EmbeddingScorer(user_embeddings, item_embeddings)


