"""Synthetic symmetric matrices with controlled spectra, resembling trained-network Hessians.

Test files get the helpers through the fixtures ``spectrum_op`` (a factory) and ``hessian_spectrum``.
"""
import functools

import numpy as np
import pytest
import torch

from landscape.linalg import MatrixOperator


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Dense products on matrices this small are fastest, and steadiest beside other tests, on one thread
    (module-scoped, unlike the top-level ``one_thread``, so that module fixtures run on one thread too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def with_spectrum(eigenvalues: np.ndarray, seed: int = 0, dtype: torch.dtype = torch.float64) -> MatrixOperator:
    """``Q diag(eigenvalues) Q^T`` with ``Q`` a random orthogonal matrix (built in float64, symmetrised)."""
    return MatrixOperator(_matrix(tuple(float(x) for x in eigenvalues), seed).to(dtype, copy=True))


@functools.lru_cache(maxsize=8)
def _matrix(eigenvalues: tuple[float, ...], seed: int) -> torch.Tensor:
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    A = (Q * torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T
    return (A + A.T) / 2


def hessian_like(n: int, seed: int = 0) -> np.ndarray:
    """Eigenvalues (ascending) shaped like a trained network's Hessian: 8 outliers from 50 down to 3, a bulk
    concentrated at 0 (Laplace, scale 0.05, capped at 1.5), 20% of the bulk negative (scale 0.03), and
    five well-separated most negative eigenvalues from -1.0 to -0.6 (so that "the k smallest" is unambiguous
    at the tolerances tested)."""
    rng = np.random.default_rng(seed)
    outliers = 50.0 * np.geomspace(1.0, 0.06, 8)
    tail = np.array([-1.0, -0.9, -0.8, -0.7, -0.6])
    bulk = n - outliers.size - tail.size
    negative = int(0.2 * bulk)
    positive = np.minimum(np.abs(rng.laplace(0.0, 0.05, bulk - negative)), 1.5)
    negatives = -np.minimum(np.abs(rng.laplace(0.0, 0.03, negative)), 0.4)
    return np.sort(np.concatenate([outliers, positive, negatives, tail]))


@pytest.fixture(scope="session")
def spectrum_op():
    """The factory ``with_spectrum(eigenvalues, seed=0, dtype=torch.float64) -> MatrixOperator``."""
    return with_spectrum


@pytest.fixture(scope="session")
def hessian_spectrum() -> np.ndarray:
    """``hessian_like(300)``: eigenvalues, ascending."""
    return hessian_like(300)


@pytest.fixture
def hessian_op(hessian_spectrum) -> MatrixOperator:
    """A dense operator with the ``hessian_spectrum`` eigenvalues."""
    return with_spectrum(hessian_spectrum)
