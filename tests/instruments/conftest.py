"""Reference problems of the instrument tests: a tanh MLP away from a minimum, and a network widened at a
minimum (a known saddle), both float64 and small enough for dense eigendecompositions."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.data.registry import load_dataset
from landscape.instruments import minimize, widen
from landscape.operators import Hessian


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Products this small are fastest, and steadiest beside other tests, on one thread."""


@pytest.fixture
def tanh_problem() -> tuple[nn.Module, nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A 5-6-3 tanh MLP at its random initialisation (57 parameters), cross-entropy, 40 samples."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    return model, nn.CrossEntropyLoss(), (x, torch.randint(0, 3, (40,), generator=gen))


@pytest.fixture(scope="session")
def regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-student regression: 4 inputs, a tanh teacher with 6 hidden units, 200 samples."""
    x, y = load_dataset("teacher_student", train_size=200, test_size=1, input_dim=4, teacher_width=6,
                        num_classes=None, activation="tanh").train
    return x.double(), y.double()


@pytest.fixture(scope="session")
def narrow_minimum(regression_data) -> nn.Module:
    """A 4-2-1 tanh student polished to a strict minimum (float64, gradient below 1e-8)."""
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 1))
    return minimize(student, nn.MSELoss(), regression_data).model


@pytest.fixture
def split_saddle(narrow_minimum, regression_data):
    """The minimum widened by splitting hidden neuron 1 in half: the same function, a strict saddle."""
    wide = widen(narrow_minimum, {0: 1}, neurons={0: [1]}, ratio=0.5)
    return wide, nn.MSELoss(), regression_data


def hessian(model: nn.Module, loss_fn: nn.Module, data) -> Hessian:
    """The float64 Hessian by double backward (no method timing: these models are tiny)."""
    return Hessian(model, loss_fn, data, dtype=torch.float64, method="reverse")


def dense_spectrum(op: Hessian) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the operator's dense matrix."""
    dense = op.to_dense()
    return torch.linalg.eigh((dense + dense.T) / 2)
