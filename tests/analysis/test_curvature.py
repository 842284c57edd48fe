"""The curvature profile (:mod:`landscape.analysis.curvature`) against dense references, on a masked float64 model."""
import math

import pytest
import torch
from torch import nn

from landscape.analysis.curvature import CURVATURE_KEYS, CurvatureSettings, curvature_batches, measure_curvature
from landscape.foundation.params import ParamSpace
from landscape.operators import Hessian

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def masked_problem():
    """A 5-8-3 tanh MLP at initialisation (negative curvature present), half of the first layer's weights
    pruned, cross-entropy on 60 samples in uneven batches."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(60, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=gen)
    mask = (torch.rand(8, 5, generator=gen) < 0.5).double()
    return model, nn.CrossEntropyLoss(), [(x[:25], y[:25]), (x[25:], y[25:])], {"0.weight": mask}


def dense_empirical_fisher_trace(model, loss_fn, data, masks) -> float:
    """``(1/N) sum_i ||P^T grad l_i||^2`` by one backward pass per sample."""
    space = ParamSpace(model, masks=masks)
    total, count = 0.0, 0
    for x, y in data:
        for i in range(len(y)):
            model.zero_grad()
            loss_fn(model(x[i:i + 1]), y[i:i + 1]).backward()
            grad = space.to_flat({name: p.grad for name, p in model.named_parameters()})
            total, count = total + float(grad.pow(2).sum()), count + 1
    model.zero_grad(set_to_none=True)
    return total / count


def test_profile_matches_the_dense_restricted_hessian_and_fisher(masked_problem):
    model, loss_fn, data, masks = masked_problem
    settings = CurvatureSettings(eigenvalues=3, eig_tol=1e-9, max_matvecs=2000, trace_matvecs=60, density_steps=40,
                                 density_runs=4, saddle_tol=1e-3)
    measured, spectrum = measure_curvature(model, loss_fn, data, masks, settings)
    assert set(measured) == set(CURVATURE_KEYS)
    H = Hessian(model, loss_fn, data, masks=masks).to_dense()
    exact = torch.linalg.eigvalsh(H)
    pruned = int((masks["0.weight"] == 0).sum())
    assert measured["weights"] == exact.numel() == spectrum.dim == 8 * 5 + 8 + 8 * 3 + 3 - pruned
    assert measured["top_eigenvalues"] == pytest.approx(exact.flip(0)[:3].tolist(), rel=1e-7)
    assert measured["bottom_eigenvalues"] == pytest.approx(exact[:3].tolist(), rel=1e-7, abs=1e-12)
    assert max(measured["top_residuals"] + measured["bottom_residuals"]) <= 1e-9 * float(exact.abs().max())
    assert measured["trace"] == pytest.approx(float(exact.sum()), abs=4 * measured["trace_stderr"] + 1e-9)
    threshold = 1e-3 * float(exact.abs().max())
    negative = int((exact < -threshold).sum())
    assert measured["saddle_threshold"] == pytest.approx(threshold, rel=1e-6)
    assert abs(measured["saddle_index"] - negative / exact.numel()) <= measured["saddle_index_error"]
    assert measured["saddle_index_reliable"] == (measured["saddle_index_error"] <= 0.5 * measured["saddle_index"]
                                                 or measured["saddle_index_error"] <= 1 / exact.numel())
    assert measured["escape_dimensions"] == min(negative, 3)
    assert measured["escape_eigenvalues"] == pytest.approx(exact[:min(negative, 3)].tolist(), rel=1e-7)
    assert measured["frobenius"] == pytest.approx(float(torch.linalg.norm(H)), abs=4 * measured["frobenius_stderr"])
    positive = exact.clamp(min=0)
    assert measured["effective_dim"] == pytest.approx(float((positive / (positive + 1.0)).sum()),
                                                      abs=4 * measured["effective_dim_stderr"] + 0.05)
    assert measured["occam"] == pytest.approx(float(-0.5 * torch.log(positive + 1e-3).sum()),
                                              abs=4 * measured["occam_stderr"] + 0.05 * exact.numel())
    assert measured["fisher_trace"] == pytest.approx(dense_empirical_fisher_trace(model, loss_fn, data, masks),
                                                     rel=1e-10)
    assert measured["fisher_trace_stderr"] == 0.0 and measured["eigs_converged"] and measured["matvecs"] > 0
    assert all(math.isfinite(measured[k]) for k in ("trace_stderr", "saddle_index_stderr", "occam_stderr"))


def test_curvature_batches_take_the_first_samples_in_order():
    batches = [(torch.arange(10.0)[:, None], torch.arange(10)), (torch.arange(10.0, 16)[:, None], torch.arange(10, 16))]
    chosen = curvature_batches(batches, 13)
    assert torch.equal(torch.cat([y for _, y in chosen]), torch.arange(13))
