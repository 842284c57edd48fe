"""Normalising the ``data`` argument every instrument takes.

A data argument is either one batch ``(inputs, targets)`` of tensors with the same first dimension, or
a re-iterable collection of such batches (a list, a ``torch.utils.data.DataLoader``, ...). Instruments
iterate over it several times (every matvec is a pass over the data), so one-shot iterators are rejected.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


class Batches:
    """A re-iterable view of a data argument as ``(inputs, targets)`` batches.

    ``len(batches)`` is the number of batches when known; ``num_samples`` is the total number of samples
    (computed once, by one pass, for loaders).
    """

    def __init__(self, data: Any):
        self._single: Batch | None = None
        if _is_batch(data):
            self._single = _checked(data, 0)
            self._source: Iterable = (self._single,)
        else:
            if isinstance(data, Iterator):
                raise TypeError(
                    "data is a one-shot iterator (e.g. a generator); curvature needs several passes over the "
                    "data: pass a list of (inputs, targets) batches or a DataLoader instead")
            if not isinstance(data, Iterable):
                raise TypeError(
                    f"data must be an (inputs, targets) pair of tensors or an iterable of such batches, "
                    f"got {type(data).__name__}")
            self._source = data
        self._num_samples: int | None = None

    @property
    def is_single_batch(self) -> bool:
        """True when the data is one ``(inputs, targets)`` batch (its graph can be built once and reused)."""
        return self._single is not None

    def __iter__(self) -> Iterator[Batch]:
        empty = True
        for i, batch in enumerate(self._source):
            empty = False
            yield _checked(batch, i)
        if empty:
            raise ValueError("data is empty: it yielded no batches")

    def __len__(self) -> int:
        return len(self._source)  # type: ignore[arg-type]

    @property
    def num_samples(self) -> int:
        """Total number of samples over all batches."""
        if self._num_samples is None:
            self._num_samples = sum(int(x.shape[0]) for x, _ in self)
        return self._num_samples


def as_batches(data: Any) -> Batches:
    """Return ``data`` as :class:`Batches` (idempotent)."""
    return data if isinstance(data, Batches) else Batches(data)


def chunked(x: Tensor, y: Tensor, size: int) -> list[Batch]:
    """``(x, y)`` cut into consecutive batches of at most ``size`` samples (views, no copies)."""
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def to_device(batch: Batch, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Batch:
    """Move a batch to ``device``; floating-point inputs are cast to ``dtype`` when given (targets keep theirs
    unless they are floating point too, as for regression)."""
    x, y = batch
    x = x.to(device=device, dtype=dtype if (dtype is not None and x.is_floating_point()) else None)
    y = y.to(device=device, dtype=dtype if (dtype is not None and y.is_floating_point()) else None)
    return x, y


def _is_batch(data: Any) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and isinstance(data[0], Tensor) and isinstance(data[1], Tensor))


def _checked(batch: Any, index: int) -> Batch:
    if not _is_batch(batch):
        raise TypeError(f"batch {index} is not an (inputs, targets) pair of tensors: got {type(batch).__name__}")
    x, y = batch
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"batch {index}: inputs and targets need a batch dimension, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"batch {index}: inputs have {x.shape[0]} samples but targets have {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError(f"batch {index} is empty (0 samples)")
    return x, y
