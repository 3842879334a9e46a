"""The on-disk export a retrieval service reads: embeddings, id maps, a FAISS index and a checksummed manifest.

Layout of a bundle directory:
    manifest.json            fbrec version, model, dims, metric, index factory, recall vs exact, run id, sha256s
    user_embeddings.npy      (U, D) float32        item_embeddings.npy   (I, D) float32
    user_map.parquet         raw <-> index         item_map.parquet      raw <-> index
    seen.parquet             (user_index, item_index) pairs excluded from recommendations
    index.faiss              faiss.write_index of the item index
    items.parquet            optional: item_index + the dataset's item attributes (title, genres, category, ...)
    user_tower.onnx          optional (feature two-tower): the user tower over side features, run by onnxruntime
    user_features.json       its inputs and the encoders of raw feature values
Written into a temp directory beside the target and renamed into place, so a reader never sees half a
bundle. Loading needs numpy, polars and faiss only (no torch).
"""

from fbrec.bundle.load import Bundle, Ranked
from fbrec.bundle.manifest import FORMAT_VERSION, KNOWN_FILES, USER_FEATURES, USER_TOWER, Manifest
from fbrec.bundle.write import write_bundle

__all__ = ["FORMAT_VERSION", "KNOWN_FILES", "USER_FEATURES", "USER_TOWER", "Bundle", "Manifest", "Ranked",
           "write_bundle"]
