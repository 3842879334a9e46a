"""Exposure-probability estimators (fit on the training split) and their validation."""

from fbrec.propensity.estimators import (
    PopularityPropensity,
    PositionBasedPropensity,
    check_propensity,
    invalid_propensities,
)

__all__ = ["PopularityPropensity", "PositionBasedPropensity", "check_propensity", "invalid_propensities"]
