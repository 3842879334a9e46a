"""Offline evaluation: full-ranking metrics, slices, per-user frames for paired tests."""

from fbrec.data.evalset import EvalSet, popularity_slices
from fbrec.evaluation.ranking import (
                                      RANK_METRICS,
                                      RankingEvaluator,
                                      embedding_scorer,
                                      evaluate_scores,
                                      metric_name,
                                      report,
)

__all__ = ["RANK_METRICS", "EvalSet", "RankingEvaluator", "embedding_scorer", "evaluate_scores", "metric_name",
           "popularity_slices", "report"]
