"""Exposure-probability estimators (fit on the training split) and their validation."""

from fbrec.propensity.estimators import PopularityPropensity, PositionBasedPropensity, check_propensity

__all__ = ["PopularityPropensity", "PositionBasedPropensity", "check_propensity"]
