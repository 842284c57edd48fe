"""The Lanczos process with full reorthogonalisation: a restartable single run, and many runs at once.

Both keep an orthonormal Krylov basis ``V`` and reorthogonalise every new vector against all of it by
classical Gram-Schmidt applied twice (CGS2; Giraud, Langou, Rozloznik & van den Eshof 2005, "twice is
enough"), so the basis stays orthonormal to working precision and no spurious copies of converged Ritz
values appear (Parlett 1998, "The Symmetric Eigenvalue Problem", ch. 13).

* :class:`ThickRestartLanczos` (Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric
  eigenvalue problems") holds the decomposition ``A V_j = V_j H_j + beta v_{j+1} e_j^T`` with
  ``H_j = V_j^T A V_j``; a restart keeps chosen Ritz vectors, so ``H_j`` is an arrowhead plus a
  tridiagonal. Used by :func:`landscape.linalg.eigs`.
* :func:`lanczos_tridiagonal` runs ``r`` independent Lanczos processes from the columns of a block, one
  ``matmat`` of ``r`` vectors per step, and returns their tridiagonal matrices. Used by stochastic Lanczos
  quadrature (:func:`landscape.linalg.density`) and for spectrum bounds.

Breakdown: a new vector of norm ``beta <= eps**0.75 * scale`` (``scale`` the largest ``|alpha|``, ``beta`` so
far, ``eps`` the dtype's machine epsilon) means the Krylov space is invariant to working precision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from landscape.linalg.operator import Counted


def breakdown_tol(dtype: torch.dtype) -> float:
    """Relative size ``eps**0.75`` below which a new Lanczos vector counts as zero (invariant subspace)."""
    return float(torch.finfo(dtype).eps) ** 0.75


def orthogonalize(basis: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Project ``w`` (n,) off the rows of ``basis`` (j, n) twice (CGS2): ``w = basis^T h + w_perp``; return
    ``(w_perp, h)``."""
    h = basis @ w
    w = w - basis.T @ h
    h2 = basis @ w
    return w - basis.T @ h2, h + h2


class ThickRestartLanczos:
    """A single Lanczos run with full reorthogonalisation and thick restarts.

    State: the rows ``V[:j]`` of ``V`` (shape ``(ncv + 1, n)``) are an orthonormal basis with projected
    matrix ``H[:j, :j] = V_j^T A V_j`` (symmetric, float64 on the host), and ``V[j]`` is the next vector,
    orthonormal to them, with ``A V_j^T = V_j^T H_j + beta V[j] e_j^T``. So the Ritz pair
    ``(theta, y = V_j^T s)`` of ``H_j`` has residual ``||A y - theta y|| = |beta| |s_j|`` (last component),
    with no extra matvec.

    Memory: ``(ncv + 1) n`` elements for the basis plus ``ncv^2`` host floats.
    """

    def __init__(self, op: Counted, ncv: int, generator: torch.Generator):
        self.op = op
        self.ncv = ncv
        self.generator = generator
        self.V = torch.zeros(ncv + 1, op.n, dtype=op.dtype, device=op.device)
        self.H = np.zeros((ncv, ncv))
        self.j = 0
        self.beta = 0.0
        self.scale = 0.0
        self.exhausted = False
        self._tiny = breakdown_tol(op.dtype)

    def start(self, v: Tensor) -> None:
        """Begin a new run from the direction ``v`` (n,)."""
        norm = torch.linalg.vector_norm(v)
        if not bool(norm > 0):
            raise ValueError("the starting vector is zero")
        self.V[0] = v / norm
        self.H[:] = 0.0
        self.j, self.beta, self.exhausted = 0, 0.0, False

    def expand(self) -> None:
        """One Lanczos step: ``w = A V[j]``, orthogonalised against ``V[:j+1]``; one matvec, one host sync."""
        j = self.j
        w = self.op.matmat(self.V[j][:, None])[:, 0]
        w, h = orthogonalize(self.V[: j + 1], w)
        beta = torch.linalg.vector_norm(w)
        host = torch.cat([h, beta[None]]).cpu().double().numpy()
        if not np.isfinite(host).all():
            raise FloatingPointError("the operator returned non-finite values")
        h, beta = host[:-1], float(host[-1])
        self.H[: j + 1, j] = h
        self.H[j, : j + 1] = h
        self.scale = max(self.scale, abs(h[j]), beta)
        self.j = j + 1
        if beta > self._tiny * self.scale:
            self.beta = beta
            self.V[self.j] = w / beta
        else:
            self.beta = 0.0
            self._fresh_direction()

    def _fresh_direction(self) -> None:
        """After a breakdown, continue with a random vector orthogonal to the basis (zero coupling)."""
        z = torch.randn(self.op.n, generator=self.generator, dtype=self.op.dtype, device=self.op.device)
        before = torch.linalg.vector_norm(z)
        z, _ = orthogonalize(self.V[: self.j], z)
        norm = torch.linalg.vector_norm(z)
        if float(norm) <= self._tiny * float(before):
            self.exhausted = True  # the basis spans the whole space
            return
        self.V[self.j] = z / norm

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), the eigenvectors ``S`` of ``H_j`` (j, j), and residual norms ``|beta S[j-1]|``."""
        theta, S = scipy.linalg.eigh(self.H[: self.j, : self.j])
        return theta, S, abs(self.beta) * np.abs(S[-1])

    def vectors(self, S: np.ndarray) -> Tensor:
        """Ritz vectors ``V_j^T S`` as rows, shape ``(S.shape[1], n)``."""
        return torch.as_tensor(S.T, dtype=self.op.dtype, device=self.op.device) @ self.V[: self.j]

    def restart(self, theta: np.ndarray, S: np.ndarray) -> None:
        """Keep the Ritz pairs ``(theta, V_j^T S)`` and the next vector: ``H`` becomes an arrowhead."""
        keep = S.shape[1]
        coupling = self.beta * S[-1]
        Y = self.vectors(S)
        self.V[keep] = self.V[self.j]
        self.V[:keep] = Y
        self.H[:] = 0.0
        self.H[np.arange(keep), np.arange(keep)] = theta
        self.H[:keep, keep] = coupling
        self.H[keep, :keep] = coupling
        self.j = keep


@dataclass(frozen=True)
class Tridiagonals:
    """The Lanczos tridiagonals of ``r`` runs.

    Run ``i`` has length ``lengths[i]`` (shorter than ``steps`` after a breakdown); its diagonal is
    ``alpha[i, :lengths[i]]``, its off-diagonal ``beta[i, :lengths[i] - 1]``, and ``beta[i, lengths[i] - 1]``
    is the norm of its next residual (0 after a breakdown). Entries past a run's length are 0.
    """
    alpha: np.ndarray      # (r, steps)
    beta: np.ndarray       # (r, steps)
    lengths: np.ndarray    # (r,)

    def ritz(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) of run ``i`` and the unit eigenvectors of its tridiagonal (columns)."""
        m = int(self.lengths[i])
        if m == 1:
            return self.alpha[i, :1].copy(), np.ones((1, 1))
        return scipy.linalg.eigh_tridiagonal(self.alpha[i, :m], self.beta[i, : m - 1])


def lanczos_tridiagonal(op: Counted, V0: Tensor, steps: int) -> Tridiagonals:
    """Run ``r = V0.shape[1]`` independent Lanczos processes of ``steps`` steps from the columns of ``V0``.

    Each step applies one ``matmat`` to the still-active runs' vectors and reorthogonalises each run's new
    vector against that run's whole basis (CGS2). A run that breaks down stops, its later columns are not
    applied. Costs at most ``r * steps`` matvecs; memory ``(steps + 1) n r`` elements.
    """
    n, r = V0.shape
    steps = min(steps, n)
    basis = torch.zeros(r, steps, n, dtype=op.dtype, device=op.device)   # run i's basis is basis[i]
    basis[:, 0] = (V0 / torch.linalg.vector_norm(V0, dim=0)).T
    alpha = np.zeros((r, steps))
    beta = np.zeros((r, steps))
    lengths = np.full(r, steps)
    active = np.ones(r, dtype=bool)
    scale = np.zeros(r)
    tiny = breakdown_tol(op.dtype)
    for j in range(steps):
        cols = torch.as_tensor(np.flatnonzero(active), device=op.device)
        W = torch.zeros(r, n, 1, dtype=op.dtype, device=op.device)
        W[cols, :, 0] = op.matmat(basis[cols, j].T.contiguous()).T
        Q = basis[:, : j + 1]
        c = torch.bmm(Q, W)
        W -= torch.bmm(Q.transpose(1, 2), c)
        c2 = torch.bmm(Q, W)
        W -= torch.bmm(Q.transpose(1, 2), c2)
        norms = torch.linalg.vector_norm(W[:, :, 0], dim=1)
        host = torch.stack([c[:, j, 0] + c2[:, j, 0], norms]).cpu().double().numpy()
        if not np.isfinite(host).all():
            raise FloatingPointError("the operator returned non-finite values")
        alpha[active, j] = host[0, active]
        scale = np.maximum(scale, np.maximum(np.abs(host[0]), host[1]))
        stopped = active & (host[1] <= tiny * scale)
        lengths[stopped] = j + 1
        active &= ~stopped
        beta[active, j] = host[1, active]
        if not active.any():
            break
        if j + 1 < steps:
            keep = torch.as_tensor(np.flatnonzero(active), device=op.device)
            basis[keep, j + 1] = W[keep, :, 0] / norms[keep, None]
    return Tridiagonals(alpha=alpha, beta=beta, lengths=lengths)
