"""Datasets: a registry of pinned files (`registry`) and loaders (`bbq`)."""

from alignlab.data.registry import REGISTRY, DataFile, DatasetSpec, data_dir, dataset_status, locate

__all__ = ["REGISTRY", "DataFile", "DatasetSpec", "data_dir", "dataset_status", "locate"]
