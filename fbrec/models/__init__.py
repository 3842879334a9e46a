"""LightningModule recipes: scorer (fbrec.nn) + pure loss (fbrec.losses), one public recipe per file."""

from fbrec.models.base import EmbeddingModule, RankingModule
from fbrec.models.expomf import ExpoMFModule
from fbrec.models.gnolr import GNOLRModule
from fbrec.models.mf import MatrixFactorizationModule
from fbrec.models.popularity import PopularityModule

RECIPES = {"mf": MatrixFactorizationModule, "popularity": PopularityModule, "expomf": ExpoMFModule, "gnolr": GNOLRModule}

__all__ = ["RECIPES", "EmbeddingModule", "ExpoMFModule", "GNOLRModule", "MatrixFactorizationModule", "PopularityModule", "RankingModule"]
