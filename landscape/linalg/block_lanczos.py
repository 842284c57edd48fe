"""Block Lanczos in Rayleigh-Ritz form: ``b`` vectors per ``matmat``, multiplicities up to ``b`` seen at once.

The basis ``Q`` (``n x m``, orthonormal columns) and its image ``A Q`` are both kept, and the Ritz pairs come
from ``G = Q^T A Q`` (Rayleigh-Ritz). Each step appends the residuals ``A y - theta y`` of the ``b`` Ritz
vectors nearest the wanted end(s), orthonormalised against ``Q`` (classical Gram-Schmidt twice) and among
themselves, and applies ``A`` to them in one ``matmat``. Started from an ``n x b`` block, the span after
``s`` steps is the block Krylov space ``span{X, A X, ..., A^s X}`` (the ``b`` residuals span the same new
directions as ``A`` applied to the last block, when they are independent), so this is block Lanczos
(Golub & Underwood 1977; Saad 2011, "Numerical Methods for Large Eigenvalue Problems", section 6.3) with
explicit Rayleigh-Ritz instead of the block-tridiagonal recurrence. A single-vector Krylov space holds one
vector per eigenvalue whatever its multiplicity; a block of ``b`` random vectors holds up to ``b``.

Residuals are computed from ``A Q`` (``||A Q s - theta Q s||``), not from a recurrence, so they are the true
residuals to rounding. When the basis reaches ``ncv`` columns it restarts from the Ritz vectors nearest the
wanted end(s) (thick restart: ``Q <- Q S``, ``A Q <- A Q S``, ``G <- diag(theta)``).

Memory: at most ``(4 ncv + 3 b + 2 k) n`` elements of the operator's dtype for ``k`` wanted pairs
(:func:`landscape.linalg.memory.block_bytes`): the basis and its image (``2 ncv n``), all Ritz vectors and
residuals of a step (``2 ncv n``; ``3 m n`` while a step appends, the old and new basis or image side by side),
the wanted vectors and residuals (``2 k n``), a step's block, its orthonormalised copy and its image (``3 b n``).
Host synchronisation: three reads per step whatever the block size: which new columns are kept, the new
rows of ``G``, and (in :func:`landscape.linalg.eigs`) the residual norms its convergence check needs.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.lanczos import breakdown_tol
from landscape.linalg.operator import Counted


class BlockKrylov:
    """A block Krylov basis with its image, growing by ``matmat`` of blocks (see the module docstring)."""

    def __init__(self, op: Counted, ncv: int, generator: torch.Generator):
        self.op = op
        self.ncv = ncv
        self.generator = generator
        self.Q = torch.zeros(op.n, 0, dtype=op.dtype, device=op.device)
        self.AQ = torch.zeros_like(self.Q)
        self.G = np.zeros((0, 0))
        self.exhausted = False
        self._tiny = breakdown_tol(op.dtype)

    @property
    def m(self) -> int:
        return self.Q.shape[1]

    def extend(self, X: Tensor) -> int:
        """Orthonormalise the columns of ``X`` against the basis and each other, apply ``A`` to those left
        (one ``matmat``) and append them; returns how many were appended. Columns in the span already are
        dropped; when all are, random directions replace them (``exhausted`` when the basis is complete).
        Two host reads: which columns are kept, and the new rows and columns of ``G``."""
        room = min(X.shape[1], self.op.n - self.m)
        kept = self._orthonormal(X)[:, :room]
        if kept.shape[1] == 0 and room > 0:
            z = torch.randn(self.op.n, room, generator=self.generator, dtype=self.op.dtype, device=self.op.device)
            kept = self._orthonormal(z)[:, :room]
        if kept.shape[1] == 0:
            self.exhausted = True
            return 0
        AX = self.op.matmat(kept.contiguous())
        new = torch.cat([self.Q, kept], dim=1).T @ AX     # [Q^T A X; X^T A X], one read
        new = new.cpu().double().numpy()
        if not np.isfinite(new).all():
            raise FloatingPointError("the operator returned non-finite values")
        cross, inner = new[: self.m], new[self.m:]
        inner = (inner + inner.T) / 2
        self.G = np.block([[self.G, cross], [cross.T, inner]])
        self.Q = torch.cat([self.Q, kept], dim=1)
        self.AQ = torch.cat([self.AQ, AX], dim=1)
        self.exhausted = self.m == self.op.n
        return kept.shape[1]

    def _orthonormal(self, X: Tensor) -> Tensor:
        """Columns of ``X`` orthogonalised against ``Q`` and the columns kept before them (CGS2), one by one,
        dropping those whose norm falls below the breakdown tolerance of their norm before. A dropped column is
        zeroed on the device, so it changes none of the later ones, and which columns are kept is read once at
        the end (one host read whatever the block size)."""
        before = torch.linalg.vector_norm(X, dim=0)
        out = torch.zeros_like(X)
        keep = torch.zeros(X.shape[1], dtype=torch.bool, device=X.device)
        for i in range(X.shape[1]):
            x, previous = X[:, i], out[:, :i]
            for _ in range(2):
                x = x - self.Q @ (self.Q.T @ x) - previous @ (previous.T @ x)
            norm = torch.linalg.vector_norm(x)
            keep[i] = (norm > self._tiny * before[i]) & (before[i] > 0)
            out[:, i] = torch.where(keep[i], x / torch.where(keep[i], norm, 1.0), 0.0)
        return out[:, np.flatnonzero(keep.cpu().numpy())]

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors ``S`` of ``G`` (``m x m``)."""
        import scipy.linalg   # here, not at the top: it adds most of a second to ``import landscape``
        return scipy.linalg.eigh(self.G)

    def pairs(self, S: np.ndarray, theta: np.ndarray) -> tuple[Tensor, Tensor]:
        """Ritz vectors ``Q S`` (columns) and their residual block ``A Q S - Q S diag(theta)``, on the device."""
        coefficients = torch.as_tensor(S, dtype=self.op.dtype, device=self.op.device)
        Y = self.Q @ coefficients
        R = self.AQ @ coefficients
        return Y, R.addcmul_(Y, torch.as_tensor(theta, dtype=self.op.dtype, device=self.op.device), value=-1)

    def restart(self, S: np.ndarray, theta: np.ndarray) -> None:
        """Keep the Ritz pairs ``(theta, Q S)`` only."""
        coefficients = torch.as_tensor(S, dtype=self.op.dtype, device=self.op.device)
        self.Q = self.Q @ coefficients
        self.AQ = self.AQ @ coefficients
        self.G = np.diag(theta)


def block_norm(R: Tensor) -> float:
    """``||R||_2`` of an ``n x k`` block, from the eigenvalues of its ``k x k`` Gram matrix."""
    if R.shape[1] == 0:
        return 0.0
    return gram_norm((R.T @ R).cpu().double().numpy())


def gram_norm(gram: np.ndarray) -> float:
    """``||R||_2`` from the Gram matrix ``R^T R`` (host, float64)."""
    return float(np.sqrt(max(np.linalg.eigvalsh((gram + gram.T) / 2).max(), 0.0)))
