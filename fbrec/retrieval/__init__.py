"""Exact top-k and FAISS indexes (the only faiss importer); recall of an index against exact search."""

from fbrec.retrieval.index import (
                                   METRICS,
                                   build_index,
                                   exact_topk,
                                   gpu_available,
                                   index_shape,
                                   read_index,
                                   recall_vs_exact,
                                   search,
                                   set_search_params,
                                   set_search_threads,
                                   to_gpu,
                                   write_index,
)
from fbrec.retrieval.masked import masked_topk

__all__ = ["METRICS", "build_index", "exact_topk", "gpu_available", "index_shape", "masked_topk", "read_index", "recall_vs_exact",
           "search", "set_search_params", "set_search_threads", "to_gpu", "write_index"]
