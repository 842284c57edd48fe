"""How much of the gradient lies in the top Hessian eigenspace (Gur-Ari, Roberts & Dyer 2018, "Gradient
descent happens in a tiny subspace", arXiv 1812.04754).

With ``g`` the full-data gradient and ``V_k`` the ``k`` top eigenvectors of ``H``,

    ``overlap = ||V_k^T g||^2 / ||g||^2``  (dimensionless, in [0, 1]).

Gur-Ari et al. find it near 1 after a short initial phase, with ``k`` the number of classes.

Error: with Ritz vectors of residuals ``r_i``, the Davis-Kahan ``sin Theta`` theorem bounds the largest
principal angle between ``span(V_k)`` and the true top-``k`` eigenspace by ``||R||_F / gap`` (``R`` the
residual block, ``gap`` the distance from ``theta_k`` to the rest of the spectrum, estimated by the
``(k+1)``-th Ritz value less its residual), and ``|overlap - overlap_true| <= sin Theta_max``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.linalg import Eigenpairs, SymmetricOperator, eigs


@dataclass(frozen=True)
class SubspaceOverlap:
    """``||V_k^T g||^2 / ||g||^2`` and its error bound.

    Attributes:
        fraction: the overlap. error: Davis-Kahan bound on its error (``inf`` without a gap estimate).
        k: eigenvectors used. gradient_norm: ``||g||`` (loss per parameter unit).
        eigenvalues, residuals: of the ``k`` top Ritz pairs. matvecs: products used by this call.
    """
    fraction: float
    error: float
    k: int
    gradient_norm: float
    eigenvalues: Tensor
    residuals: Tensor
    matvecs: int


def subspace_overlap(op: SymmetricOperator, k: int = 10, *, gradient: Tensor | None = None, tol: float = 1e-3,
                     top: Eigenpairs | None = None, max_matvecs: int | None = None, seed: int = 0) -> SubspaceOverlap:
    """Fraction of the gradient's squared norm in the span of the top-``k`` eigenvectors of ``op``.

    Args:
        op: symmetric operator; its ``gradient`` attribute (curvature operators have one) is used unless
            ``gradient`` is given.
        k: eigenvectors (at most ``n - 2``).
        tol: residual tolerance of the eigen solve relative to ``|lambda|_max``.
        top: top eigenpairs already computed; with ``k + 1`` or more pairs the gap (and so the error bound)
            comes from the ``(k+1)``-th. Not counted again.
        max_matvecs, seed: of the eigen solve (``k + 1`` pairs, for the gap).
    """
    g = gradient if gradient is not None else getattr(op, "gradient", None)
    if g is None:
        raise ValueError("the operator has no `gradient` attribute: pass gradient=")
    matvecs = 0
    if top is None:
        top = eigs(op, k=k + 1, which="largest", tol=tol, max_matvecs=max_matvecs, seed=seed)
        matvecs = top.matvecs
    if top.eigenvalues.numel() < k:
        raise ValueError(f"top has {top.eigenvalues.numel()} eigenpairs, fewer than k={k}")
    g = g.to(dtype=top.eigenvectors.dtype, device=top.eigenvectors.device)
    norm2 = float(g @ g)
    V = top.eigenvectors[:, :k]
    fraction = float((V.T @ g).pow(2).sum()) / norm2 if norm2 > 0 else 0.0
    error = math.inf
    if top.eigenvalues.numel() > k:
        gap = float(top.eigenvalues[k - 1] - top.eigenvalues[k] - top.residuals[k])
        if gap > 0:
            error = min(1.0, float(torch.linalg.vector_norm(top.residuals[:k])) / gap)
    return SubspaceOverlap(fraction=fraction, error=error, k=k, gradient_norm=math.sqrt(norm2),
                           eigenvalues=top.eigenvalues[:k], residuals=top.residuals[:k], matvecs=matvecs)
