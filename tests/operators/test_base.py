"""What every operator inherits: counting, adapters, the untouched model, and clear errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape.operators import GGN, CurvatureOperator, DeterminismError, Fisher, Hessian

from .references import RTOL, dense_hessian, relative_error

CE = nn.CrossEntropyLoss()
F64 = torch.float64


def test_matvecs_count_every_vector_of_a_matmat(mlp, classification):
    H = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    assert H.matvecs == 0
    H @ torch.randn(H.shape[0], dtype=F64)
    H.matmat(torch.randn(H.shape[0], 5, dtype=F64))
    H @ torch.randn(H.shape[0], 2, dtype=F64)
    assert H.matvecs == 8
    assert H.to_dense(block=16).shape == H.shape and H.matvecs == 8 + H.shape[0]


def test_watch_reports_the_running_count_after_each_product_inside_its_block_only(mlp, classification):
    H = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    seen: list[int] = []
    H @ torch.randn(H.shape[0], dtype=F64)
    with H.watch(seen.append):
        H.matmat(torch.randn(H.shape[0], 3, dtype=F64))
        H @ torch.randn(H.shape[0], dtype=F64)
    H @ torch.randn(H.shape[0], dtype=F64)
    assert seen == [4, 5] and H.matvecs == 6


def test_operator_attributes(mlp, classification):
    H = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    assert isinstance(H, CurvatureOperator)
    assert H.shape == (H.space.dim, H.space.dim) == (57, 57)
    assert H.dtype == F64 and H.device == torch.device("cpu") and H.num_samples == 20
    assert H.gradient.shape == (57,) and H.loss > 0


def test_scipy_adapter_takes_and_returns_float64_numpy(mlp, classification):
    H = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    A = H.to_scipy()
    dense = dense_hessian(mlp, CE, *classification).numpy()
    v = np.random.default_rng(0).standard_normal((57, 3))
    assert A.shape == (57, 57) and A.dtype == np.float64
    assert (A @ v[:, 0]).dtype == np.float64
    assert np.linalg.norm(A @ v[:, 0] - dense @ v[:, 0]) < RTOL * np.linalg.norm(dense @ v[:, 0])
    assert np.linalg.norm(A @ v - dense @ v) < RTOL * np.linalg.norm(dense @ v)


def test_scipy_eigsh_on_the_adapter_finds_the_extreme_eigenvalues(mlp, classification):
    H = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    exact = np.linalg.eigvalsh(dense_hessian(mlp, CE, *classification).numpy())
    found = np.sort(eigsh(H.to_scipy(), k=2, which="BE", tol=1e-12)[0])
    assert np.allclose(found, exact[[0, -1]], rtol=1e-8, atol=1e-12)
    assert exact[0] < 0


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_products_under_no_grad_are_unchanged(mlp, classification, method):
    dense = dense_hessian(mlp, CE, *classification)
    with torch.no_grad():
        H = Hessian(mlp, CE, classification, dtype=F64, method=method, cache_bytes=0)
        v = torch.randn(H.shape[0], dtype=F64)
        assert relative_error(H @ v, dense @ v) < RTOL
        assert torch.linalg.vector_norm(H.gradient) > 0


def test_float32_vectors_are_cast_to_the_operator_dtype(mlp, classification):
    H = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    v = torch.randn(57)
    assert (H @ v).dtype == F64
    with pytest.raises(ValueError, match="shape"):
        H.matmat(torch.randn(56, 2))


@pytest.mark.parametrize("operator", [Hessian, GGN, Fisher])
def test_user_model_is_left_untouched(operator, classification):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3))
    with torch.no_grad():
        model(3 + torch.randn(32, 5))   # running statistics away from their initial values
    model.eval()
    model[2].train()                    # a mixed mode, harmless for the loss
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    grads = [p.grad for p in model.parameters()]
    params = [p.detach().clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    modes = [m.training for m in model.modules()]
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    rng = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())

    op = operator(model, CE, [classification, classification], dtype=F64)
    op.matmat(torch.randn(op.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(0)))

    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad is g and torch.all(g == 7.0) for p, g in zip(model.parameters(), grads))
    assert all(torch.equal(b, c) for b, c in zip(model.buffers(), buffers))
    assert [m.training for m in model.modules()] == modes
    assert random.getstate() == rng[0] and np.array_equal(np.random.get_state()[1], rng[1])
    assert torch.equal(torch.get_rng_state(), rng[2])


def test_operator_keeps_the_modes_it_was_built_with(classification):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.5), nn.Linear(4, 3)).eval()
    H = Hessian(model, CE, classification, dtype=F64, method="forward", cache_bytes=0)
    v = torch.randn(H.shape[0], dtype=F64)
    before = H @ v
    model.train()   # the user goes back to training: the operator still measures the eval-mode loss
    assert torch.equal(H @ v, before) and model.training


def test_active_dropout_is_named_with_the_fix(classification):
    model = nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.5), nn.Linear(4, 3)).train()
    with pytest.raises(DeterminismError, match=r"dropout modules \['1'\].*model.eval\(\)"):
        Hessian(model, CE, classification)
    Hessian(model, CE, classification, check_determinism=False, method="reverse")   # explicit opt-out


def test_batchnorm_in_train_mode_is_named_with_the_fix(classification):
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).train()
    with pytest.raises(ValueError, match=r"BatchNorm modules \['1'\].*model.eval\(\).*allow_batch_statistics"):
        Hessian(model, CE, classification)


def test_shuffling_loader_is_refused_with_the_fix(mlp, classification):
    loader = DataLoader(TensorDataset(*classification), batch_size=6, shuffle=True)
    with pytest.raises(DeterminismError, match="shuffle=False"):
        GGN(mlp, CE, loader)
    fixed = DataLoader(TensorDataset(*classification), batch_size=6, shuffle=False)
    one = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    assert relative_error(Hessian(mlp, CE, fixed, dtype=F64).to_dense(), one.to_dense()) < RTOL


def test_generator_data_is_refused(mlp, classification):
    with pytest.raises(TypeError, match="one-shot iterator"):
        Hessian(mlp, CE, (b for b in [classification]))


def test_non_scalar_loss_is_refused(mlp, classification):
    with pytest.raises(ValueError, match="scalar"):
        Hessian(mlp, nn.CrossEntropyLoss(reduction="none"), classification)


def test_non_finite_loss_is_refused(mlp, classification):
    x, y = classification
    x = x.clone()
    x[3, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="batch 0"):
        Hessian(mlp, CE, (x, y))


def test_model_without_trainable_parameters_is_refused(mlp, classification):
    for p in mlp.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        Hessian(mlp, CE, classification)


class Kink(nn.Module):
    """Adds ``|s|^1.5`` at ``s = 0``: finite loss and gradient, infinite curvature in ``s``."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.s.abs().pow(1.5)


def test_non_finite_product_names_the_parameter(classification):
    x, _ = classification
    model = nn.Sequential(nn.Linear(5, 3), Kink())
    H = Hessian(model, nn.MSELoss(), (x, torch.zeros(20, 3)), dtype=F64, method="reverse")
    with pytest.raises(FloatingPointError, match="parameter '1.s'"):
        H @ torch.ones(H.shape[0], dtype=F64)


def test_cache_beyond_the_budget_falls_back_to_recomputation(mlp, classification):
    batches = [(classification[0][i:i + 5], classification[1][i:i + 5]) for i in range(0, 20, 5)]
    cached = Hessian(mlp, CE, batches, dtype=F64, method="reverse")
    assert cached.cached_bytes > 0
    small = Hessian(mlp, CE, batches, dtype=F64, method="reverse", cache_bytes=cached.cached_bytes // 2)
    assert small.cached_bytes == 0
    V = torch.randn(57, 2, dtype=F64)
    assert relative_error(small.matmat(V), cached.matmat(V)) < RTOL
