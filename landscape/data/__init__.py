"""Data: normalising data arguments, the built-in data sets, and a seeded mini-batch loader."""
from landscape.data.batches import Batch, Batches, as_batches, chunked, to_device
from landscape.data.loaders import BatchLoader
from landscape.data.registry import (Dataset, dataset_description, dataset_names, load_dataset,
                                     register_dataset)

__all__ = ["Batch", "Batches", "as_batches", "chunked", "to_device", "BatchLoader", "Dataset", "dataset_description",
           "dataset_names", "load_dataset", "register_dataset"]
