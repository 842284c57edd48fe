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

Both can store the basis in a lower precision or on another device than the operator's
(:mod:`landscape.linalg.basis`), the memory-bounded mode for large models; the thick restart bounds the
basis to ``ncv + 1`` vectors whatever the number of steps.

Breakdown: a new vector of norm ``beta <= eps**0.75 * scale`` (``scale`` the largest ``|alpha|``, ``beta`` so
far, ``eps`` the work dtype's machine epsilon) means the Krylov space is invariant to working precision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.basis import Layout, cgs2, combine
from landscape.linalg.operator import Counted


def breakdown_tol(dtype: torch.dtype) -> float:
    """Relative size ``eps**0.75`` below which a new Lanczos vector counts as zero (invariant subspace)."""
    return float(torch.finfo(dtype).eps) ** 0.75


class ThickRestartLanczos:
    """A single Lanczos run with full reorthogonalisation and thick restarts.

    State: the rows ``V[:j]`` of ``V`` (shape ``(ncv + 1, n)``) are an orthonormal basis with projected
    matrix ``H[:j, :j] = V_j^T A V_j`` (symmetric, float64 on the host), and ``V[j]`` is the next vector,
    orthonormal to them, with ``A V_j^T = V_j^T H_j + beta V[j] e_j^T``. So the Ritz pair
    ``(theta, y = V_j^T s)`` of ``H_j`` has residual ``||A y - theta y|| = |beta| |s_j|`` (last component),
    with no extra matvec.

    ``V`` is stored in ``basis_dtype`` on ``basis_device`` (default: the operator's), see
    :mod:`landscape.linalg.basis`; each step moves one row to the operator and its product back.

    ``locked`` (``(p, n)`` orthonormal rows, e.g. eigenvectors already found) deflates the operator: the start
    and every product are orthogonalised against them first, so the run is Lanczos on ``P A P`` restricted to
    their orthogonal complement (``P = I - L^T L``), whose Ritz pairs are those of the compression of ``A``
    to that complement (a verification pass, :mod:`landscape.linalg.certify`). Memory: ``p n`` more elements
    of the work dtype.

    Memory: ``(ncv + 1) n`` elements of ``basis_dtype`` on ``basis_device`` for the basis, about ``3 n`` of
    the work dtype there for one step's vectors (plus ``n`` on the operator's device when the basis lives
    elsewhere), and ``ncv^2`` host floats. Host synchronisation: one transfer of ``j + 2`` numbers per step.
    """

    def __init__(self, op: Counted, ncv: int, generator: torch.Generator, basis_dtype: torch.dtype | None = None,
                 basis_device: torch.device | str | None = None, locked: Tensor | None = None):
        self.op = op
        self.ncv = ncv
        self.generator = generator
        self.layout = Layout(op.dtype, op.device, basis_dtype, basis_device)
        self.locked = None if locked is None or locked.shape[0] == 0 else self.layout.to_work(locked)
        self.V = self.layout.zeros(ncv + 1, op.n)
        self.H = np.zeros((ncv, ncv))
        self.j = 0
        self.beta = 0.0
        self.scale = 0.0
        self.exhausted = False
        self._tiny = breakdown_tol(self.layout.work_dtype)

    def start(self, v: Tensor) -> None:
        """Begin a new run from the direction ``v`` (n,) (its part orthogonal to the locked rows)."""
        v = self._deflate(self.layout.to_work(v))
        norm = torch.linalg.vector_norm(v)
        if not bool(norm > 0):
            raise ValueError("the starting vector is zero")
        self.V[0] = v / norm
        self.H[:] = 0.0
        self.j, self.beta, self.exhausted = 0, 0.0, False

    def expand(self) -> None:
        """One Lanczos step: ``w = A V[j]``, orthogonalised against ``V[:j+1]``; one matvec, one host sync."""
        j = self.j
        w = self.op.matmat(self.layout.to_op(self.V[j])[:, None])[:, 0]
        w, h = cgs2(self.V[: j + 1], self._deflate(self.layout.to_work(w)))
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
        z = self.layout.to_work(z)
        before = torch.linalg.vector_norm(z)
        z, _ = cgs2(self.V[: self.j], self._deflate(z))
        norm = torch.linalg.vector_norm(z)
        if bool(norm <= self._tiny * before):
            self.exhausted = True  # the basis spans the whole space
            return
        self.V[self.j] = z / norm

    def _deflate(self, w: Tensor) -> Tensor:
        """``w`` less its components along the locked rows (CGS2), or ``w`` itself when none are locked."""
        return w if self.locked is None else cgs2(self.locked, w)[0]

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), the eigenvectors ``S`` of ``H_j`` (j, j), and residual norms ``|beta S[j-1]|``."""
        import scipy.linalg   # here, not at the top: it adds most of a second to ``import landscape``
        theta, S = scipy.linalg.eigh(self.H[: self.j, : self.j])
        return theta, S, abs(self.beta) * np.abs(S[-1])

    def vectors(self, S: np.ndarray) -> Tensor:
        """Ritz vectors ``V_j^T S`` as rows, shape ``(S.shape[1], n)``, in the operator's dtype and device."""
        coefficients = torch.as_tensor(S, dtype=self.layout.work_dtype, device=self.layout.device)
        return self.layout.to_op(combine(coefficients, self.V[: self.j]))

    def restart(self, theta: np.ndarray, S: np.ndarray) -> None:
        """Keep the Ritz pairs ``(theta, V_j^T S)`` and the next vector: ``H`` becomes an arrowhead. The basis
        is rewritten in place, chunk by chunk (no ``keep x n`` temporary)."""
        keep = S.shape[1]
        coupling = self.beta * S[-1]
        coefficients = torch.as_tensor(S, dtype=self.layout.work_dtype, device=self.layout.device)
        combine(coefficients, self.V[: self.j], out=self.V[:keep])
        self.V[keep] = self.V[self.j]
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
        import scipy.linalg
        return scipy.linalg.eigh_tridiagonal(self.alpha[i, :m], self.beta[i, : m - 1])


def lanczos_tridiagonal(op: Counted, V0: Tensor, steps: int, basis_dtype: torch.dtype | None = None,
                        basis_device: torch.device | str | None = None) -> Tridiagonals:
    """Run ``r = V0.shape[1]`` independent Lanczos processes of ``steps`` steps from the columns of ``V0``.

    Each step applies one ``matmat`` to the still-active runs' vectors and reorthogonalises each run's new
    vector against that run's whole basis (CGS2), batched over the runs. A run that breaks down stops, its
    later columns are not applied. The bases are stored in ``basis_dtype`` on ``basis_device`` (default:
    the operator's; see :mod:`landscape.linalg.basis`).

    Costs at most ``r * steps`` matvecs. Memory: ``steps n r`` elements of ``basis_dtype`` on
    ``basis_device`` for the bases, about ``3 n r`` of the work dtype there for one step's vectors, and
    ``2 r steps`` host floats. Host synchronisation: one transfer of ``2 r`` numbers per step (the new
    ``alpha`` and ``beta``, which the breakdown test needs); the tridiagonals are solved afterwards.
    """
    n, r = V0.shape
    steps = min(steps, n)
    layout = Layout(op.dtype, op.device, basis_dtype, basis_device)
    basis = layout.zeros(r, steps, n)   # run i's basis is basis[i]
    start = layout.to_work(V0)
    basis[:, 0] = (start / torch.linalg.vector_norm(start, dim=0)).T
    alpha = np.zeros((r, steps))
    beta = np.zeros((r, steps))
    lengths = np.full(r, steps)
    active = np.ones(r, dtype=bool)
    cols: Tensor | None = None          # indices of the active runs, once some have stopped
    scale = np.zeros(r)
    tiny = breakdown_tol(layout.work_dtype)
    for j in range(steps):
        X = basis[:, j] if cols is None else basis[cols, j]
        AX = layout.to_work(op.matmat(layout.to_op(X).T.contiguous()).T)
        if cols is None:
            W = AX.contiguous()
        else:   # stopped runs get zeros, which orthogonalisation keeps zero
            W = torch.zeros(r, n, dtype=layout.work_dtype, device=layout.device)
            W[cols] = AX
        W, c = cgs2(basis[:, : j + 1], W)
        norms = torch.linalg.vector_norm(W, dim=1)
        host = torch.stack([c[:, j], norms]).cpu().double().numpy()
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
        if stopped.any():
            cols = torch.as_tensor(np.flatnonzero(active), device=layout.device)
        if j + 1 < steps:
            if cols is None:
                basis[:, j + 1] = W / norms[:, None]
            else:
                basis[cols, j + 1] = W[cols] / norms[cols, None]
    return Tridiagonals(alpha=alpha, beta=beta, lengths=lengths)
