"""An operator with known eigenvectors projected out, so that estimators see only the rest of its spectrum.

With ``V`` an ``(n, m)`` matrix of orthonormal (approximate) eigenvectors of a symmetric ``A`` and
``P = I - V V^T``, the deflated operator is ``P A P``. On ``span(V)`` it is zero; on ``range(P)`` its
eigenvalues are those of ``A`` other than the ``m`` deflated ones when ``V`` spans an invariant subspace
(for Ritz vectors, up to errors of the order of their residuals). Then for any ``f`` with ``f(0) = 0``

    ``tr f(A) = sum_{i <= m} f(theta_i) + tr f(P A P)``

(for ``f(x) = x`` exactly for any Ritz pairs: see :func:`deflated_trace`), and stochastic estimators of
``tr f(P A P)`` (SLQ, Chebyshev counts) no longer see the outliers that dominate their variance and
stretch the interval their polynomials must resolve (the deflation of Hutch++, Meyer et al. 2021, and of
deflated SLQ).
"""
from __future__ import annotations

import torch
from torch import Tensor

from landscape.linalg import Eigenpairs, SymmetricOperator, TraceEstimate, hutchinson


class Deflated:
    """``X -> P A P X`` with ``P = I - V V^T``: a :class:`~landscape.linalg.SymmetricOperator`.

    Args:
        op: the symmetric operator ``A``.
        vectors: ``(n, m)`` orthonormal columns ``V`` (e.g. Ritz vectors from :func:`landscape.linalg.eigs`);
            an ``(n, 0)`` block leaves ``A`` as it is.

    Each product costs one product with ``op`` plus ``4 n m`` flops for the projections; ``matvecs`` counts
    the vectors applied.
    """

    def __init__(self, op: SymmetricOperator, vectors: Tensor):
        n = op.shape[0]
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise ValueError(f"vectors must have shape ({n}, m), got {tuple(vectors.shape)}")
        self.op = op
        self.shape = tuple(op.shape)
        self.dtype = op.dtype
        self.device = torch.device(op.device)
        self.V = vectors.to(dtype=op.dtype, device=self.device)
        self.matvecs = 0

    def project(self, X: Tensor) -> Tensor:
        """``P X``."""
        return X - self.V @ (self.V.T @ X)

    def matmat(self, X: Tensor) -> Tensor:
        """``P A P X`` for ``X`` of shape ``(n, b)``."""
        self.matvecs += X.shape[1]
        return self.project(self.op.matmat(self.project(X)))


def deflated_trace(op: SymmetricOperator, pairs: Eigenpairs, matvecs: int = 20, seed: int = 0) -> TraceEstimate:
    """``tr A`` from eigenpairs already computed plus Hutchinson on the rest (the Hutch++ split, Meyer et al.
    2021, with the sketch replaced by Ritz vectors ``Y`` one has anyway):

        ``tr A = tr(Y^T A Y) + tr(P A P) ~ sum_i theta_i + (1/m) sum_j z_j^T P A P z_j``,

    since ``tr(P A Y Y^T) = 0`` and ``Y^T A Y = diag(theta)`` for Lanczos Ritz pairs. Unbiased given ``Y``;
    the standard error is that of the ``m = matvecs`` Hutchinson terms. Costs ``matvecs`` products only.
    """
    result = hutchinson(Deflated(op, pairs.eigenvectors), matvecs=matvecs, seed=seed)
    return TraceEstimate(value=float(pairs.eigenvalues.sum()) + result.value, stderr=result.stderr,
                         matvecs=result.matvecs, method="deflated-hutchinson")
