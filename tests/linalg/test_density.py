import math

import numpy as np
import pytest
import torch

from landscape.linalg import MatrixOperator, SpectralDensity, density

SEEDS = 12


@pytest.fixture(scope="module")
def densities(spectrum_op, hessian_spectrum):
    """SLQ of the Hessian-like spectrum (60 steps, 10 runs) for seeds 0..11."""
    op = spectrum_op(hessian_spectrum)
    return [density(op, steps=60, seed=s) for s in range(SEEDS)]


def _pooled(densities, estimate):
    """Estimates over seeds: their mean, the standard error of that mean from the reported stderrs, and
    the spread of the estimates next to the mean reported stderr."""
    results = [estimate(d) for d in densities]
    values = np.array([r.value for r in results])
    stderrs = np.array([r.stderr for r in results])
    return values.mean(), math.sqrt((stderrs**2).mean() / len(results)), values.std() / stderrs.mean()


def test_density_of_a_diagonal_matrix_is_exact():
    values = [-2.0, -0.5, 0.0, 1.0, 4.0]
    counts = [3, 5, 10, 7, 5]
    op = MatrixOperator(torch.diag(torch.tensor(np.repeat(values, counts), dtype=torch.float64)))
    dens = density(op, steps=20, runs=4)
    assert dens.nodes.shape == dens.weights.shape == (4, 20)
    assert dens.matvecs == 4 * 5                              # each run stops at its invariant subspace
    assert np.allclose(dens.nodes[:, :5].numpy(), values, atol=1e-12)
    assert np.allclose(dens.weights[:, :5].numpy(), np.array(counts) / 30, atol=1e-12)
    assert float(dens.weights[:, 5:].abs().max()) == 0.0
    negative = dens.negative_fraction(0.1)
    assert negative.value == pytest.approx(8 / 30) and negative.stderr == pytest.approx(0, abs=1e-15)
    cubes = dens.spectral_sum(lambda x: x**3)
    assert cubes.value == pytest.approx(3 * -8 + 5 * -0.125 + 7 + 5 * 64)


@pytest.mark.parametrize("tol", [0.0, 0.01, 0.1])
def test_negative_fraction_matches_exact_fraction_within_reported_errors(densities, hessian_spectrum, tol):
    """Within 3 pooled standard errors plus the quadrature bound (large at tol=0, inside the bulk)."""
    quadrature = np.mean([d.negative_fraction(tol).quadrature for d in densities])
    mean, stderr, spread_ratio = _pooled(densities, lambda d: d.negative_fraction(tol))
    assert abs(mean - np.mean(hessian_spectrum < -tol)) < 3 * stderr + quadrature
    assert 0.5 < spread_ratio < 2.0


@pytest.mark.parametrize("steps", [4, 8, 16])
@pytest.mark.parametrize("tol", [-0.5, 0.0, 0.13, 0.9])
def test_quadrature_bound_brackets_the_exact_fraction(steps, tol):
    """Rademacher probes see a diagonal matrix's uniform spectral measure exactly, leaving the Gauss rule's
    own error, which the Chebyshev-Markov-Stieltjes bound must cover."""
    eigenvalues = np.linspace(-1.0, 1.0, 200) ** 3
    dens = density(MatrixOperator(torch.diag(torch.tensor(eigenvalues))), steps=steps, runs=2)
    estimate = dens.negative_fraction(tol)
    assert estimate.stderr < 1e-12
    assert abs(estimate.value - np.mean(eigenvalues < -tol)) <= estimate.quadrature + 1e-12


@pytest.mark.parametrize("name, f", [("trace", lambda x: x), ("frobenius", lambda x: x**2),
                                     ("nuclear", torch.abs)])
def test_spectral_sums_match_exact_values_within_reported_error(densities, hessian_spectrum, name, f):
    mean, stderr, spread_ratio = _pooled(densities, lambda d: d.spectral_sum(f))
    exact = float(f(torch.tensor(hessian_spectrum)).sum())
    assert abs(mean - exact) < 3 * stderr
    assert 0.5 < spread_ratio < 2.0


def test_smoothed_density_integrates_to_one_and_matches_the_exact_smoothed_density(densities, hessian_spectrum):
    dens = densities[0]
    assert torch.allclose(dens.weights.sum(dim=1), torch.ones(10, dtype=torch.float64))
    grid = torch.linspace(-3.0, 55.0, 5801, dtype=torch.float64)
    sigma = 0.3
    pdf = dens.pdf(grid, sigma)
    exact = torch.exp(-0.5 * ((grid[:, None] - torch.tensor(hessian_spectrum)) / sigma) ** 2).sum(dim=1)
    exact /= len(hessian_spectrum) * sigma * math.sqrt(2 * math.pi)
    step = float(grid[1] - grid[0])
    assert float(pdf.sum()) * step == pytest.approx(1.0, abs=1e-6)
    assert float((pdf - exact).abs().sum()) * step < 0.1            # L1 distance between the densities


def test_runs_in_smaller_blocks_give_the_same_quadrature(hessian_op):
    whole = density(hessian_op, steps=30, runs=6)
    blocks = density(hessian_op, steps=30, runs=6, block=4)
    assert torch.allclose(whole.nodes, blocks.nodes, atol=1e-10)
    assert torch.allclose(whole.weights, blocks.weights, atol=1e-10)
    assert whole.matvecs == blocks.matvecs == 180


def test_seeded_and_global_rng_untouched(hessian_op):
    state = torch.get_rng_state()
    a, b = density(hessian_op, steps=10, runs=3, seed=1), density(hessian_op, steps=10, runs=3, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert isinstance(a, SpectralDensity) and torch.equal(a.nodes, b.nodes)


@pytest.mark.parametrize("call, match", [
    (lambda op: density(op, runs=1), "runs must be at least 2"),
    (lambda op: density(op, steps=0), "steps must be at least 1"),
    (lambda op: density(op, steps=5, block=0), "block must be at least 1"),
    (lambda op: density(op, steps=5, runs=2).pdf(torch.zeros(3), 0.0), "sigma must be positive"),
])
def test_clear_errors(hessian_op, call, match):
    with pytest.raises(ValueError, match=match):
        call(hessian_op)
