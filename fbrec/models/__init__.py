"""LightningModule recipes: scorer (fbrec.nn) + pure loss (fbrec.losses), one public recipe per file."""

from fbrec.models.allpairs import AllPairsMFModule
from fbrec.models.base import RankingModule
from fbrec.models.cascade import CascadeModule
from fbrec.models.embedding import EmbeddingModule
from fbrec.models.expomf import ExpoMFModule
from fbrec.models.gnolr import GNOLRModule
from fbrec.models.history import HistoryRerankModule
from fbrec.models.lightgcn import LightGCNModule
from fbrec.models.mf import MatrixFactorizationModule
from fbrec.models.nsb import ESMMModule, NSBModule
from fbrec.models.popularity import PopularityModule
from fbrec.models.two_tower import TwoTowerModule

RECIPES = {"mf": MatrixFactorizationModule, "popularity": PopularityModule, "expomf": ExpoMFModule, "gnolr": GNOLRModule, "nsb": NSBModule, "esmm": ESMMModule,
           "two_tower": TwoTowerModule, "lightgcn": LightGCNModule, "allpairs_mf": AllPairsMFModule,
           "history_rerank": HistoryRerankModule, "cascade": CascadeModule}

__all__ = ["RECIPES", "AllPairsMFModule", "CascadeModule", "ESMMModule", "EmbeddingModule", "ExpoMFModule", "GNOLRModule", "HistoryRerankModule", "LightGCNModule", "MatrixFactorizationModule", "NSBModule", "PopularityModule", "RankingModule",
           "TwoTowerModule"]
