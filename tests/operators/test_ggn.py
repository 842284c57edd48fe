"""GGN products against dense J^T H_L J from torch.func (float64, relative error < 1e-10)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.operators import GGN

from .references import RTOL, WithUnused, assert_products_match, dense_ggn, relative_error, uneven

CE = nn.CrossEntropyLoss()
MSE = nn.MSELoss()
F64 = torch.float64


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_ggn_equals_dense_jacobian_sandwich_and_is_psd(mlp, classification, method):
    x, y = classification
    dense = dense_ggn(mlp, CE, x, y)
    G = GGN(mlp, CE, (x, y), dtype=F64, method=method)
    assert_products_match(G, dense)
    eigenvalues = torch.linalg.eigvalsh(G.to_dense())
    assert eigenvalues[0] >= -1e-12 * eigenvalues[-1]


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_ggn_matches_dense_on_batchnorm_cnn_in_eval_mode(cnn_problem, method):
    model, x, y = cnn_problem
    assert_products_match(GGN(model, CE, (x, y), dtype=F64, method=method), dense_ggn(model, CE, x, y))


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_ggn_of_squared_error_with_vector_outputs(mlp, classification, method):
    x = classification[0]
    y = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    G = GGN(mlp, MSE, (x, y), dtype=F64, method=method)
    assert_products_match(G, dense_ggn(mlp, MSE, x, y))


@pytest.mark.parametrize("cache_bytes", [2 ** 30, 0])
def test_uneven_batches_give_the_full_data_ggn(mlp, classification, cache_bytes):
    x, y = classification
    several = GGN(mlp, CE, uneven(x, y, (7, 14)), dtype=F64, cache_bytes=cache_bytes)
    assert_products_match(several, dense_ggn(mlp, CE, x, y))


def test_unused_parameter_gives_zero_rows_in_the_ggn(classification):
    torch.manual_seed(0)
    model = WithUnused()
    x, y = classification[0][:, :4], classification[1]
    for method in ("reverse", "forward"):
        D = GGN(model, CE, (x, y), dtype=F64, method=method).to_dense()
        assert torch.all(D[:2] == 0) and torch.all(D[:, :2] == 0)
        assert relative_error(D[2:, 2:], dense_ggn(model.body, CE, x, y)) < RTOL
