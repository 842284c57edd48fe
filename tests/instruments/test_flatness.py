import math

import pytest
import torch

from landscape.instruments import Flatness, flatness, flatness_at_scales
from landscape.instruments.deflation import deflated_trace
from landscape.linalg import MatrixOperator, eigs, hutchinson

from .conftest import dense_spectrum, hessian

DELTA, Z = 1e-2, 0.1


def exact_measures(eigenvalues: torch.Tensor) -> dict[str, float]:
    positive = eigenvalues.clamp(min=0.0)
    return {"lambda_max": float(eigenvalues.max()), "trace": float(eigenvalues.sum()),
            "frobenius": float(eigenvalues.pow(2).sum().sqrt()),
            "occam": -0.5 * float(torch.log(positive + DELTA).sum()),
            "effective_dim": float((positive / (positive + Z)).sum())}


@pytest.fixture
def problem(tanh_problem):
    H = hessian(*tanh_problem)
    eigenvalues, _ = dense_spectrum(H)
    return MatrixOperator(H.to_dense()), eigenvalues   # the same matrix, cheaper products


def test_each_flatness_measure_matches_its_dense_formula_within_its_reported_error(problem):
    op, eigenvalues = problem
    result = flatness(op, delta=DELTA, z=Z, k=5, steps=25, runs=10)
    assert isinstance(result, Flatness) and result.k == 5 and result.dim == eigenvalues.numel()
    exact = exact_measures(eigenvalues)
    assert abs(result.lambda_max - exact["lambda_max"]) <= result.lambda_max_error + 1e-12
    for name in ("trace", "frobenius", "occam", "effective_dim"):
        stderr = getattr(result, f"{name}_stderr")
        assert 0 < stderr < 0.2 * abs(exact[name]) + 1.0, name
        assert abs(getattr(result, name) - exact[name]) <= 4 * stderr, name


def test_errors_cover_the_truth_at_the_stated_rate_over_seeds(problem):
    """Standard errors that are right cover within 2 stderr in about 95% of seeds."""
    op, eigenvalues = problem
    exact = exact_measures(eigenvalues)
    results = [flatness(op, delta=DELTA, z=Z, k=5, steps=25, runs=6, seed=seed) for seed in range(40)]
    for name in ("trace", "frobenius", "occam", "effective_dim"):
        covered = sum(abs(getattr(r, name) - exact[name]) <= 2 * getattr(r, f"{name}_stderr") for r in results)
        assert covered >= 32, (name, covered)


def test_deflated_trace_is_unbiased_and_cheaper_than_hutchinson_on_an_outlier_spectrum(spectrum):
    op = MatrixOperator(spectrum)
    top = eigs(op, k=5, tol=1e-8)
    exact = float(torch.trace(spectrum))
    results = [deflated_trace(op, top, matvecs=10, seed=seed) for seed in range(60)]
    assert all(r.matvecs == 10 and r.method == "deflated-hutchinson" for r in results)
    mean = sum(r.value for r in results) / len(results)
    assert abs(mean - exact) <= 4 * math.sqrt(sum(r.stderr ** 2 for r in results)) / len(results)
    assert sum(abs(r.value - exact) <= 2 * r.stderr for r in results) >= 50
    assert hutchinson(op, matvecs=10).stderr > 3 * max(r.stderr for r in results)


@pytest.fixture
def spectrum() -> torch.Tensor:
    """A 120 x 120 matrix with five large outliers over a bulk in [-0.5, 1]."""
    gen = torch.Generator().manual_seed(3)
    values = torch.cat([torch.tensor([40.0, 30.0, 20.0, 10.0, 8.0], dtype=torch.float64),
                        torch.rand(115, generator=gen, dtype=torch.float64) * 1.5 - 0.5])
    Q, _ = torch.linalg.qr(torch.randn(120, 120, generator=gen, dtype=torch.float64))
    A = Q @ torch.diag(values) @ Q.T
    return (A + A.T) / 2


def test_clear_errors(problem):
    with pytest.raises(ValueError, match="delta and z must be positive"):
        flatness(problem[0], delta=0.0)


def test_several_scales_from_one_solve_equal_separate_calls_at_the_cost_of_one(problem):
    op, _ = problem
    shared = flatness_at_scales(op, (0.01, Z, 1.0), delta=DELTA, k=5, steps=25, runs=4, seed=3)
    for z, result in zip((0.01, Z, 1.0), shared):
        alone = flatness(op, delta=DELTA, z=z, k=5, steps=25, runs=4, seed=3)
        assert result == alone
    assert shared[0].effective_dim > shared[1].effective_dim > shared[2].effective_dim
    with pytest.raises(ValueError, match="delta and z must be positive"):
        flatness_at_scales(op, (), delta=DELTA)
