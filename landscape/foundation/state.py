"""Leaving the user's objects as they were: train/eval mode, ``.grad`` and random-number state.

Every instrument that touches a model runs inside these context managers, so that attaching an
instrument to a training loop never changes the training itself.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def model_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Put every submodule in train (``training=True``) or eval mode, and restore each one's own mode after."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def preserved_grads(model: nn.Module) -> Iterator[None]:
    """Restore every parameter's ``.grad`` (the same tensor object, with its values) on exit."""
    saved = {}
    for p in model.parameters():
        saved[p] = None if p.grad is None else (p.grad, p.grad.detach().clone())
    try:
        yield
    finally:
        for p, entry in saved.items():
            if entry is None:
                p.grad = None
            else:
                grad, values = entry
                with torch.no_grad():
                    grad.copy_(values)
                p.grad = grad


@contextlib.contextmanager
def preserved_rng(devices: list[torch.device] | None = None) -> Iterator[None]:
    """Restore the Python, NumPy, torch CPU (and CUDA, for the devices given or all visible) RNG states."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def untouched(model: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """Run with the model in the given mode, then restore its modes, gradients and all RNG states."""
    with preserved_rng(), preserved_grads(model), model_mode(model, training):
        yield model
