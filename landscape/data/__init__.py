"""Data: the ``Dataset`` type, normalising data arguments, the built-in data sets (``registry``, ``external``),
noisy and random training labels (``label_noise``), a seeded mini-batch loader, and ``distributed``: process
groups, sharding data over ranks and the collectives the operators use."""
from landscape.data.batches import Batch, Batches, as_batches, chunked, to_device
from landscape.data.dataset import Dataset
from landscape.data.loaders import BatchLoader
from landscape.data.registry import dataset_description, dataset_names, load_dataset, register_dataset

__all__ = ["Batch", "Batches", "as_batches", "chunked", "to_device", "BatchLoader", "Dataset", "dataset_description",
           "dataset_names", "load_dataset", "register_dataset"]
