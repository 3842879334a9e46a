"""Click-log data layer: schema, readers, id maps, filters, splits, datasets, synthetic generator."""

from fbrec.data.datasets import DATASETS, RawDataset, data_dir, get_spec, load_raw
from fbrec.data.idmap import IdMap
from fbrec.data.io import read_log
from fbrec.data.prepare import PrepareConfig, PreparedDataset, prepare
from fbrec.data.schema import FeedbackLevels, validate_log
from fbrec.data.synthetic import SyntheticConfig, SyntheticData, generate

__all__ = ["DATASETS", "FeedbackLevels", "IdMap", "PrepareConfig", "PreparedDataset", "RawDataset",
           "SyntheticConfig", "SyntheticData", "data_dir", "generate", "get_spec", "load_raw", "prepare",
           "read_log", "validate_log"]
