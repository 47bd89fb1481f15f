"""Datasets with an on-disk cache, deterministic splits and padded batch iteration."""

from jmof.data import coremof
from jmof.data.batching import Batch, Capacity, GraphLoader, pack, padding_report
from jmof.data.cache import cache_root
from jmof.data.dataset import Dataset, Failure, split_of

__all__ = [
    "Batch",
    "Capacity",
    "Dataset",
    "Failure",
    "GraphLoader",
    "cache_root",
    "coremof",
    "pack",
    "padding_report",
    "split_of",
]
