"""Fisher products against dense per-sample-gradient references (float64)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.operators import GGN, Fisher

from .references import assert_products_match, per_sample_gradients, relative_error, uneven

CE = nn.CrossEntropyLoss()
MSE = nn.MSELoss()
F64 = torch.float64


@pytest.mark.parametrize("cache_bytes", [2 ** 30, 0])
def test_empirical_fisher_equals_mean_outer_product_of_per_sample_gradients(mlp, classification, cache_bytes):
    x, y = classification
    g = per_sample_gradients(mlp, CE, x, y)
    F_emp = Fisher(mlp, CE, uneven(x, y, (6, 13)), dtype=F64, cache_bytes=cache_bytes)
    assert (F_emp.cached_bytes > 0) == (cache_bytes > 0)
    assert_products_match(F_emp, g.T @ g / x.shape[0])


def test_empirical_fisher_of_batchnorm_cnn_in_eval_mode(cnn_problem):
    model, x, y = cnn_problem
    g = per_sample_gradients(model, CE, x, y)
    assert_products_match(Fisher(model, CE, (x, y), dtype=F64), g.T @ g / x.shape[0])


def test_empirical_fisher_of_squared_error_uses_the_per_sample_mean(mlp, classification):
    x = classification[0]
    y = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    g = per_sample_gradients(mlp, MSE, x, y)
    assert_products_match(Fisher(mlp, MSE, (x, y), dtype=F64), g.T @ g / x.shape[0])


def test_true_fisher_is_one_fixed_matrix_whatever_the_caching(mlp, classification):
    x, y = classification
    cached = Fisher(mlp, CE, uneven(x, y, (9,)), dtype=F64, kind="true", samples=2, seed=3)
    fresh = Fisher(mlp, CE, uneven(x, y, (9,)), dtype=F64, kind="true", samples=2, seed=3, cache_bytes=0)
    V = torch.randn(cached.shape[0], 4, dtype=F64)
    first = cached.matmat(V)
    assert torch.equal(first, cached.matmat(V))
    assert torch.equal(fresh.matmat(V), fresh.matmat(V))
    assert relative_error(fresh.matmat(V), first) < 1e-12
    other_seed = Fisher(mlp, CE, uneven(x, y, (9,)), dtype=F64, kind="true", samples=2, seed=4)
    assert relative_error(other_seed.matmat(V), first) > 1e-3


@pytest.mark.parametrize("loss_fn", [CE, F.mse_loss], ids=["categorical", "gaussian"])
def test_true_fisher_approaches_the_ggn_with_many_samples(mlp, classification, loss_fn):
    x, y = classification
    if loss_fn is F.mse_loss:
        y = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    ggn = GGN(mlp, loss_fn, (x, y), dtype=F64, method="reverse").to_dense()
    errors = [relative_error(Fisher(mlp, loss_fn, (x, y), dtype=F64, kind="true", samples=s).to_dense(), ggn)
              for s in (20, 2000)]
    # Monte Carlo error ~ 1/sqrt(samples): 2000 draws per input give ~2% in the Frobenius norm
    assert errors[1] < 0.05 and errors[1] < errors[0] / 4


def test_true_fisher_needs_a_likelihood(mlp, classification):
    with pytest.raises(TypeError, match="negative log-likelihood"):
        Fisher(mlp, nn.L1Loss(), classification, kind="true")
    with pytest.raises(ValueError, match="label smoothing"):
        Fisher(mlp, nn.CrossEntropyLoss(label_smoothing=0.1), classification, kind="true")


def test_fisher_refuses_batch_statistics(classification):
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).train()
    with pytest.raises(ValueError, match="per-sample"):
        Fisher(model, CE, classification, allow_batch_statistics=True)


def test_masked_fisher_keeps_the_surviving_coordinates(mlp, classification):
    x, y = classification
    mask = (torch.rand(3, 6, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    keep = torch.cat([torch.ones(36, dtype=torch.bool), mask.reshape(-1) > 0, torch.ones(3, dtype=torch.bool)])
    g = per_sample_gradients(mlp, CE, x, y)[:, keep]
    assert_products_match(Fisher(mlp, CE, (x, y), dtype=F64, masks={"2.weight": mask}), g.T @ g / x.shape[0])
