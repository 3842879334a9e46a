"""Offline evaluation: full-ranking metrics, slices, per-user frames for paired tests."""

from fbrec.data.evalset import EvalSet, popularity_slices
from fbrec.evaluation.ranking import (
                                      RANK_METRICS,
                                      RankingEvaluator,
                                      embedding_scorer,
                                      evaluate_scores,
                                      metric_name,
)
from fbrec.evaluation.report import report
from fbrec.evaluation.session import Round, num, session_dcg, session_gains, u_measure

__all__ = ["RANK_METRICS", "Round", "num", "session_dcg", "session_gains", "u_measure", "EvalSet", "RankingEvaluator", "embedding_scorer", "evaluate_scores", "metric_name",
           "popularity_slices", "report"]
