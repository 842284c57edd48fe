"""Bytes an operator keeps between products (cached batches, retained graphs, per-sample gradients).

Device-agnostic: graphs are measured by the tensors autograd saves while they are built (a
``saved_tensors_hooks`` pair that only looks), not by allocator statistics, so the same estimate holds on
CPU and accelerators. Storages are counted once however many tensors view them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves


class StorageBytes:
    """A set of distinct storages and their total size in bytes, minus those of ``exclude``."""

    def __init__(self, exclude: Iterable[Tensor] = ()):
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self._seen: dict[int, int] = {}

    def add(self, obj: object) -> None:
        """Count every tensor in ``obj`` (any nesting of tuples, lists and dicts)."""
        for t in tree_leaves(obj):
            if isinstance(t, Tensor):
                storage = t.untyped_storage()
                ptr = storage.data_ptr()
                if ptr not in self._excluded:
                    self._seen[ptr] = storage.nbytes()

    @property
    def total(self) -> int:
        return sum(self._seen.values())


@contextlib.contextmanager
def saved_by_autograd(counter: StorageBytes) -> Iterator[StorageBytes]:
    """Count the tensors autograd saves for backward (forward, and backward with ``create_graph``)."""
    def pack(t: Tensor) -> Tensor:
        counter.add(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counter
