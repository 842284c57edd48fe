"""Data: normalising data arguments, and the built-in data sets."""
from landscape.data.batches import Batch, Batches, as_batches, to_device

__all__ = ["Batch", "Batches", "as_batches", "to_device"]
