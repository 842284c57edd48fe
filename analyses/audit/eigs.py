"""Edge cases of ``eigs``: is ``converged=True`` ever returned for a set that misses one of the k extreme
eigenvalues? Planted spectra (dense float64, random eigenvectors) and a trained digits MLP against
``torch.linalg.eigvalsh``. A case is right when the result is certified and within ``tol |lambda|_max`` of the
truth (and its error bounds hold), or when it is not certified and says why."""
from __future__ import annotations

import numpy as np
import torch

from audit.common import Case
from landscape import Hessian, build_model, load_dataset
from landscape.linalg import MatrixOperator, eigs

N = 200


def _operator(spectrum: np.ndarray, seed: int = 0) -> MatrixOperator:
    """``Q diag(spectrum) Q^T`` with ``Q`` a random orthogonal matrix, float64."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(spectrum.size, spectrum.size, generator=g, dtype=torch.float64))
    A = (Q * torch.as_tensor(spectrum)) @ Q.T
    return MatrixOperator((A + A.T) / 2)


def _bulk(rng: np.random.Generator, size: int) -> np.ndarray:
    """Eigenvalues concentrated at 0 (Laplace, scale 0.05, capped at 1.5), a fifth of them negative."""
    positive = np.minimum(np.abs(rng.laplace(0.0, 0.05, size - size // 5)), 1.5)
    return np.concatenate([positive, -np.minimum(np.abs(rng.laplace(0.0, 0.004, size // 5)), 0.02)])


def _outliers() -> np.ndarray:
    return 50.0 * np.geomspace(1.0, 0.06, 8)


def _check(spectrum: np.ndarray, which: str, k: int, tol: float, **kwargs) -> str | None:
    """``None`` when ``eigs`` is certified and right, or not certified with a reason; else what went wrong."""
    spectrum = np.sort(spectrum)
    res = eigs(_operator(spectrum), k=k, which=which, tol=tol, **kwargs)
    truth = spectrum[::-1][:k] if which == "largest" else spectrum[:k]
    err = np.abs(res.eigenvalues.numpy() - truth)
    if not res.converged:
        return None if res.reason else "converged=False with no reason"
    if np.any(err > tol * np.abs(spectrum).max()):
        return f"converged=True for {np.round(res.eigenvalues.numpy(), 6).tolist()}, truth {truth.tolist()}"
    reference = spectrum.size * np.finfo(np.float64).eps * np.abs(spectrum).max()   # eigvalsh's own rounding
    if np.any(err > res.error_bounds.numpy() + reference):
        return f"error {err.max():.3g} above the reported bound {res.error_bounds.max():.3g}"
    return None


def multiplicity(m: int, method: str) -> str | None:
    rng = np.random.default_rng(0)
    spectrum = np.concatenate([np.full(m, 50.0), _outliers()[1:], _bulk(rng, N - m - 7)])
    return _check(spectrum, "largest", 5, 1e-6, method=method)


def bottom_cluster() -> str | None:
    """Five most negative within 5% of each other near -5e-4 lambda_max, above a bulk reaching -4e-4."""
    rng = np.random.default_rng(6)   # a bulk where the uncertified solver skipped a member of the cluster
    cluster = -5e-4 * 50.0 * np.linspace(1.0, 0.95, 5)
    return _check(np.concatenate([_outliers(), _bulk(rng, N - 13), cluster]), "smallest", 5, 1e-5)


def null_space() -> str | None:
    rng = np.random.default_rng(2)
    spectrum = np.concatenate([_outliers(), np.abs(_bulk(rng, N - 38)), np.zeros(30)])
    return _check(spectrum, "smallest", 3, 1e-4)


def small_budget() -> str | None:
    """Multiplicity 3 with a budget too small to certify: must say so."""
    rng = np.random.default_rng(0)
    spectrum = np.sort(np.concatenate([np.full(3, 50.0), _outliers()[1:], _bulk(rng, N - 10)]))
    res = eigs(_operator(spectrum), k=5, which="largest", tol=1e-6, max_matvecs=30)
    if res.converged and not np.allclose(res.eigenvalues.numpy(), spectrum[::-1][:5], atol=1e-6 * 50):
        return f"converged=True for {res.eigenvalues.tolist()}"
    return None if res.converged or res.reason else "converged=False with no reason"


def digits_mlp() -> str | None:
    """A ReLU MLP (64-8-10) trained by full-batch Adam to loss ~1e-3 on 400 digits, float64; the three most
    negative Hessian eigenvalues (within 8e-4 lambda_max of 0) at tol=1e-3."""
    data = load_dataset("digits")
    x, y = data.train[0][:400].double(), data.train[1][:400]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", data.input_shape, data.num_classes, widths=(8,)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(800):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    H = Hessian(model, loss_fn, (x, y), dtype=torch.float64)
    D = H.matmat(torch.eye(H.shape[0], dtype=torch.float64))
    D = (D + D.T) / 2
    spectrum = torch.linalg.eigvalsh(D).numpy()
    res = eigs(MatrixOperator(D), k=3, which="smallest", tol=1e-3)
    err = np.abs(res.eigenvalues.numpy() - spectrum[:3])
    if res.converged and np.any(err > 1e-3 * np.abs(spectrum).max()):
        return f"converged=True for {res.eigenvalues.tolist()}, truth {spectrum[:3].tolist()}"
    return None if res.converged or res.reason else "converged=False with no reason"


CASES = [
    Case("eigs: top eigenvalue of multiplicity 3, k=5 (lanczos)", lambda: multiplicity(3, "lanczos")),
    Case("eigs: top eigenvalue of multiplicity 5, k=5 (lanczos)", lambda: multiplicity(5, "lanczos")),
    Case("eigs: top eigenvalue of multiplicity 5, k=5 (block)", lambda: multiplicity(5, "block")),
    Case("eigs: five most negative within 5% near -5e-4 lambda_max, tol=1e-5", bottom_cluster),
    Case("eigs: 30-dimensional null space, smallest 3, tol=1e-4", null_space),
    Case("eigs: budget too small to certify a multiplicity says why", small_budget),
    Case("eigs: trained digits MLP, three most negative, tol=1e-3", digits_mlp),
]
