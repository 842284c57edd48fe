import numpy as np
import pytest
import torch

from landscape.linalg import MatrixOperator
from landscape.linalg.block_lanczos import BlockKrylov, block_norm
from landscape.linalg.lanczos import ThickRestartLanczos, lanczos_tridiagonal
from landscape.linalg.operator import Counted


def _run(op, ncv, steps, restart_keep=None):
    """Expand a thick-restart run ``steps`` times, restarting (keeping the top ``restart_keep``) when full."""
    A = Counted(op)
    run = ThickRestartLanczos(A, ncv, A.generator(0))
    run.start(torch.randn(A.n, generator=torch.Generator().manual_seed(1), dtype=A.dtype))
    for _ in range(steps):
        if run.j == ncv:
            theta, S, _ = run.ritz()
            run.restart(theta[-restart_keep:], S[:, -restart_keep:])
        run.expand()
    return run


def test_thick_restart_basis_stays_orthonormal_and_projects_the_operator(hessian_op):
    run = _run(hessian_op, ncv=20, steps=70, restart_keep=8)
    V = run.V[: run.j + 1]
    assert torch.allclose(V @ V.T, torch.eye(run.j + 1, dtype=V.dtype), atol=1e-12)
    H = V[: run.j] @ hessian_op.A @ V[: run.j].T
    assert np.allclose(run.H[: run.j, : run.j], H.numpy(), atol=1e-12 * 50)


@pytest.mark.parametrize("steps", [15, 55])  # before and after restarts
def test_recurrence_residuals_equal_true_residuals(hessian_op, steps):
    run = _run(hessian_op, ncv=20, steps=steps, restart_keep=8)
    theta, S, r = run.ritz()
    Y = run.vectors(S)                                   # (j, n) Ritz vectors as rows
    true = torch.linalg.vector_norm(Y @ hessian_op.A - torch.as_tensor(theta)[:, None] * Y, dim=1)
    assert np.allclose(r, true.numpy(), rtol=1e-8, atol=1e-11 * 50)


def test_block_of_runs_equals_separate_runs(hessian_op):
    V0 = torch.randn(300, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    block = lanczos_tridiagonal(Counted(hessian_op), V0, 25)
    for i in range(4):
        single = lanczos_tridiagonal(Counted(hessian_op), V0[:, i:i + 1], 25)
        assert np.allclose(block.alpha[i], single.alpha[0], atol=1e-10)
        assert np.allclose(block.beta[i], single.beta[0], atol=1e-10)


def test_full_length_run_recovers_every_eigenvalue_without_ghosts(spectrum_op):
    eigenvalues = np.linspace(-1.0, 3.0, 60) ** 3
    tri = lanczos_tridiagonal(Counted(spectrum_op(eigenvalues)), torch.ones(60, 1, dtype=torch.float64), 60)
    theta, _ = tri.ritz(0)
    assert np.allclose(theta, eigenvalues, atol=1e-10)


def test_run_stops_at_an_invariant_subspace_and_its_vectors_are_not_applied():
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0] * 10, dtype=torch.float64))
    op = Counted(MatrixOperator(A))
    V0 = torch.ones(30, 2, dtype=torch.float64)
    V0[:, 1] = torch.arange(30.0)
    tri = lanczos_tridiagonal(op, V0, 20)
    assert tri.lengths.tolist() == [3, 3]
    assert op.matvecs == 6
    theta, S = tri.ritz(0)
    assert np.allclose(theta, [1.0, 2.0, 3.0]) and np.allclose(S[0] ** 2, [1 / 3] * 3)


def test_thick_restart_continues_past_an_invariant_subspace():
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64))
    op = Counted(MatrixOperator(A))
    run = ThickRestartLanczos(op, 6, op.generator(0))
    run.start(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    for _ in range(6):
        run.expand()
    theta, _, r = run.ritz()
    assert np.allclose(theta, [1, 2, 3, 4, 5, 6]) and np.allclose(r, 0.0)
    assert run.exhausted


def test_locked_rows_deflate_the_run_to_the_compression(hessian_op):
    """Locked rows ``L``: the run is Lanczos on the compression of ``A`` to their complement, so a long enough
    run finds that compression's extreme eigenvalues, and its basis stays orthogonal to ``L``."""
    A = hessian_op.A
    L = torch.linalg.qr(torch.randn(300, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0]
    P = torch.eye(300, dtype=torch.float64) - L @ L.T
    compression = torch.linalg.eigvalsh(P @ A @ P).numpy()   # 4 zeros (the locked directions) and the rest
    op = Counted(hessian_op)
    run = ThickRestartLanczos(op, 80, op.generator(0), locked=L.T)
    run.start(torch.randn(300, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    for _ in range(80):
        run.expand()
    theta, _, _ = run.ritz()
    assert np.allclose([theta[0], theta[-1]], [compression[0], compression[-1]], atol=1e-8)
    assert torch.allclose(run.V[: run.j] @ L, torch.zeros(run.j, 4, dtype=torch.float64), atol=1e-12)


def test_block_krylov_basis_is_orthonormal_and_residuals_are_true(hessian_op):
    op = Counted(hessian_op)
    space = BlockKrylov(op, 40, op.generator(0))
    space.extend(torch.randn(300, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    for _ in range(5):
        theta, S = space.ritz()
        space.extend(space.pairs(S[:, -4:], theta[-4:])[1])
    assert space.m == 24 and op.matvecs == 24
    assert torch.allclose(space.Q.T @ space.Q, torch.eye(24, dtype=torch.float64), atol=1e-12)
    theta, S = space.ritz()
    Y, R = space.pairs(S, theta)
    true = hessian_op.A @ Y - Y * torch.as_tensor(theta)
    assert torch.allclose(R, true, rtol=1e-8, atol=1e-11 * 50)
    assert block_norm(R) == pytest.approx(float(torch.linalg.matrix_norm(R, ord=2)), rel=1e-10)
