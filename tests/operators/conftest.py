"""Fixtures: the reference problems of the operator tests (models in references.py)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from .references import TinyAttention, bn_cnn, tanh_mlp


@pytest.fixture
def classification() -> tuple[Tensor, Tensor]:
    torch.manual_seed(2)
    return torch.randn(20, 5), torch.randint(0, 3, (20,))


@pytest.fixture
def mlp() -> nn.Module:
    return tanh_mlp()


@pytest.fixture
def cnn_problem() -> tuple[nn.Module, Tensor, Tensor]:
    model = bn_cnn()
    torch.manual_seed(3)
    return model, torch.randn(12, 1, 8), torch.randint(0, 3, (12,))


@pytest.fixture
def attention_problem() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(4)
    return TinyAttention().eval(), torch.randn(10, 4, 6), torch.randint(0, 3, (10,))


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Operator tests use tiny models: one intra-op thread (tests/conftest.py), no contention."""
    yield
