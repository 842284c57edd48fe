"""Memory-bounded solvers: the Lanczos basis in a lower precision, or rewritten chunk by chunk."""
import numpy as np
import pytest
import torch

import landscape.linalg.basis as basis
from landscape.linalg import density, eigs
from landscape.linalg.lanczos import ThickRestartLanczos
from landscape.linalg.operator import Counted


def _true_residuals(op, res):
    V, lam = res.eigenvectors, res.eigenvalues
    return torch.linalg.vector_norm(op.A @ V - V * lam, dim=0)


@pytest.mark.parametrize("dtype, tol, which", [(torch.float32, 1e-5, "largest"), (torch.float32, 1e-5, "smallest"),
                                               (torch.bfloat16, 1e-2, "largest")])
def test_low_precision_basis_meets_tolerance_with_certified_residuals(hessian_op, hessian_spectrum, dtype, tol,
                                                                     which):
    res = eigs(hessian_op, k=3, which=which, tol=tol, basis_dtype=dtype)
    exact = hessian_spectrum[::-1][:3] if which == "largest" else hessian_spectrum[:3]
    lam_max = np.abs(hessian_spectrum).max()
    assert res.converged and res.eigenvalues.dtype == torch.float64
    assert res.matvecs == hessian_op.matvecs   # the certifying products included
    err = np.abs(res.eigenvalues.numpy() - exact)
    assert np.all(err <= tol * lam_max) and np.all(err <= res.error_bounds.numpy())
    assert torch.allclose(_true_residuals(hessian_op, res), res.residuals, rtol=1e-8, atol=1e-12 * lam_max)
    assert bool((res.residuals <= tol * res.scale).all())
    V = res.eigenvectors
    assert torch.allclose(V.T @ V, torch.eye(3, dtype=V.dtype), atol=10 * torch.finfo(dtype).eps)


def test_basis_is_stored_in_the_requested_dtype_and_device(hessian_op):
    A = Counted(hessian_op)
    run = ThickRestartLanczos(A, 20, A.generator(0), basis_dtype=torch.bfloat16, basis_device="cpu")
    assert run.V.dtype == torch.bfloat16 and run.V.shape == (21, 300) and run.V.device.type == "cpu"
    assert run.layout.work_dtype == torch.float64


def test_tolerance_below_the_basis_precision_is_refused(hessian_op):
    with pytest.raises(ValueError, match="basis"):
        eigs(hessian_op, k=2, tol=1e-4, basis_dtype=torch.bfloat16)
    eigs(hessian_op, k=2, tol=1e-4, basis_dtype=torch.bfloat16, criterion="eigenvalue", max_matvecs=60)


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_chunked_basis_arithmetic_gives_the_same_run(hessian_op, monkeypatch, which):
    whole = eigs(hessian_op, k=4, which=which, tol=1e-8, ncv=10)
    monkeypatch.setattr(basis, "CHUNK_ELEMENTS", 97)   # many chunks, of uneven widths
    chunked = eigs(hessian_op, k=4, which=which, tol=1e-8, ncv=10)
    assert chunked.matvecs == whole.matvecs > 10   # restarted
    assert np.allclose(chunked.eigenvalues.numpy(), whole.eigenvalues.numpy(), rtol=0, atol=1e-12)


def test_chunked_low_precision_orthogonalisation_matches_the_upcast_one(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(50, 6, generator=gen, dtype=torch.float64))[0].T.to(torch.bfloat16)
    w = torch.randn(50, generator=gen, dtype=torch.float64)
    reference = basis.cgs2(Q.double(), w)
    monkeypatch.setattr(basis, "CHUNK_ELEMENTS", 13)
    chunked = basis.cgs2(Q, w)
    for a, b in zip(chunked, reference):
        assert torch.allclose(a, b, atol=1e-13)
    # orthogonal to the stored rows to eps_b^2 (they are orthonormal to eps_b only)
    eps = torch.finfo(torch.bfloat16).eps
    assert float((Q.double() @ chunked[0]).abs().max()) < eps ** 2 * float(w.norm())


def test_density_with_a_bfloat16_basis_is_close_to_the_exact_one(hessian_op, hessian_spectrum):
    exact = density(hessian_op, steps=40, runs=4)
    low = density(hessian_op, steps=40, runs=4, basis_dtype=torch.bfloat16)
    lam_max = np.abs(hessian_spectrum).max()
    assert abs(low.negative_fraction().value - exact.negative_fraction().value) < 0.02
    assert abs(low.spectral_sum(lambda x: x).value - exact.spectral_sum(lambda x: x).value) < 1e-2 * lam_max * 300
    assert torch.allclose(low.weights.sum(dim=1), torch.ones(4, dtype=torch.float64), atol=1e-2)
