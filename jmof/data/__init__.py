"""Datasets with an on-disk cache, deterministic splits and padded batch iteration."""

from jmof.data import coremof
from jmof.data.batching import Batch, Capacity, GraphLoader, pack, padding_report
from jmof.data.cache import cache_root, enable_compilation_cache, save_npz
from jmof.data.dataset import Dataset, Failure, split_of

__all__ = [
    "Batch",
    "Capacity",
    "Dataset",
    "Failure",
    "GraphLoader",
    "cache_root",
    "coremof",
    "enable_compilation_cache",
    "pack",
    "padding_report",
    "save_npz",
    "split_of",
]
