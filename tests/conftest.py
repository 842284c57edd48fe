"""Shared test fixtures."""
import sys

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads, which only contend when test files run side by side."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class HostSyncs:
    """Counts the reads of a tensor's value into Python made by `landscape` code (``float``, ``int``, ``bool``,
    ``item``, ``tolist``, ``numpy``, ``cpu``): each is a host synchronisation on an accelerator, so a CPU test
    can catch one creeping into a per-step or per-batch loop. ``count`` so far."""

    METHODS = ("__float__", "__int__", "__bool__", "__index__", "item", "tolist", "numpy", "cpu")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.METHODS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(name, getattr(torch.Tensor, name)))

    def _counted(self, name, method):
        def counted(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "/landscape/" in caller and "/tests/" not in caller:
                self.count += 1
            return method(tensor, *args, **kwargs)
        return counted


@pytest.fixture
def host_syncs(monkeypatch):
    """A :class:`HostSyncs` counter, active for the test."""
    return HostSyncs(monkeypatch)
