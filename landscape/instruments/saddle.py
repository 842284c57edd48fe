"""The saddle index: how many eigenvalues of the Hessian are negative (Dauphin et al. 2014, arXiv 1406.2572).

"Negative" means below ``-threshold`` with ``threshold = tol * |lambda|_max``: trained networks have a large
bulk of eigenvalues within rounding-scale distance of zero, and the index depends strongly on where that
bulk is cut, so every result states its ``tol`` and ``threshold``.

Methods (``method=``):

* ``"deflated-slq"`` (default): the ``k`` most negative eigenpairs, exactly, by the smallest-end Lanczos
  solver, and the ``k`` largest; when fewer than ``k`` of the smallest lie below ``-threshold`` (and the
  solve converged), those are all of them and the count is exact. Otherwise the rest are counted by
  stochastic Lanczos quadrature on the operator with both sets of eigenvectors projected out
  (:class:`~landscape.instruments.deflation.Deflated`): ``count = #{theta_i < -threshold} + n * phi(-inf,
  -threshold)``, ``phi`` the SLQ spectral measure of ``P H P``. Deflation removes the outliers that set
  the scale of the Lanczos nodes, so more nodes fall near the threshold.
* ``"deflated-eigencount"``: the same with the rest counted by a Chebyshev-Jackson filter on ``P H P``
  (:func:`landscape.linalg.eigencount`, Di Napoli, Polizzi & Saad 2016) over ``(-inf, -threshold)``.
* ``"slq"``: the SLQ negative mass of ``H`` itself, as peer libraries report it (Ghorbani et al. 2019).
* ``"eigencount"``: the Chebyshev-Jackson count on ``H`` itself.

The default was chosen by ``analyses/benchmark_instruments.py`` against the exact spectra of trained
MNIST-1D and digits MLPs (1.6k and 2.4k parameters, dense Hessians). Mean absolute error of the fraction
over three seeds (MNIST-1D, digits):

=========  ==============  =====================  ==============  ==============
tol        deflated-slq    deflated-eigencount    slq             eigencount
=========  ==============  =====================  ==============  ==============
1e-2       0.001, 0        0.001, 0               0.003, 0        0.002, 0.0001
1e-3       0.011, 0.002    0.011, 0.001           0.047, 0.005    0.086, 0.155
1e-4       0.068, 0.008    0.042, 0.076           0.014, 0.003    0.067, 0.274
=========  ==============  =====================  ==============  ==============

At ``tol=1e-4`` the threshold lies inside the bulk of near-zero eigenvalues and no method resolves it
reliably (plain SLQ's small errors there are luck of node placement, not resolution).

Errors: ``error``, the ``±`` to read, is the total error of :mod:`landscape.linalg.uncertainty`: the
sampling error across probes (``stderr``, times the 95% Student-t quantile) plus ``quadrature_error``: for the
SLQ methods the Chebyshev-Markov-Stieltjes bound on the quadrature error, for the Chebyshev methods the
estimated smoothing bias (:attr:`landscape.linalg.EigenCount.resolution_error`); at small ``tol`` it dominates.
When it exceeds half the fraction the result says ``reliable=False`` with the ``reason``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from landscape.instruments.deflation import Deflated
from landscape.linalg import Eigenpairs, SymmetricOperator, density, eigencount, eigs
from landscape.linalg.uncertainty import format_estimate, reliability, total_error

METHODS = ("deflated-slq", "deflated-eigencount", "slq", "eigencount")
SCALE_TOL = 1e-2   # relative accuracy of |lambda|_max for the plain methods (it only places the threshold)


@dataclass(frozen=True)
class SaddleIndex:
    """The number and fraction of eigenvalues below ``-threshold``, with their errors.

    Attributes:
        fraction: ``count / dim``, the saddle index of Dauphin et al. (dimensionless).
        count: estimated number of eigenvalues below ``-threshold`` (an integer when ``complete``), clipped to
            ``[exact, dim]``.
        error: the total error of ``fraction``, the ``±`` to read: ``t stderr + quadrature_error``, the
            half-width of an interval meant to hold the exact fraction with probability at least 95% (``t`` the
            Student-t quantile for ``samples - 1`` degrees of freedom; see :mod:`landscape.linalg.uncertainty`),
            at most the distance to the far end of ``[exact / dim, 1]``; 0 when ``complete``.
        stderr: the sampling part alone, the standard error of ``fraction`` across random probes (0 when
            ``complete``).
        quadrature_error: the resolution error of the estimated part in fraction units: for SLQ methods a
            bound on the quadrature error (Chebyshev-Markov-Stieltjes, see
            :meth:`landscape.linalg.SpectralDensity.negative_fraction`), for the Chebyshev methods the estimated
            smoothing bias (:class:`landscape.linalg.EigenCount`); ``None`` when ``complete``.
        reliable: ``error <= 0.5 fraction`` or below one eigenvalue (``1/dim``); when ``False`` do not read
            ``fraction`` as a number. reason: why not (empty when reliable).
        samples: the probes (SLQ runs, Chebyshev probes) behind ``stderr``; 0 when ``complete``.
        tol: the relative tolerance asked; ``threshold = tol * scale`` (eigenvalue units, loss per
            parameter^2), ``scale`` the estimate of ``|lambda|_max``.
        method: one of ``METHODS``.
        exact: eigenvalues below ``-threshold`` found individually by the smallest-end eigen solver.
        complete: all eigenvalues below ``-threshold`` are among those found (the solve converged and fewer
            than the ``k`` asked were below it), so ``count`` is exact up to missed multiplicities.
        eigenvalues: those ``exact`` eigenvalues, ascending.
        dim: dimension of the operator. matvecs: products used by this call. converged: every eigen
            solve met its tolerance.
    """
    fraction: float
    count: float
    error: float
    stderr: float
    quadrature_error: float | None
    reliable: bool
    reason: str
    samples: int
    tol: float
    threshold: float
    scale: float
    method: str
    exact: int
    complete: bool
    eigenvalues: Tensor
    dim: int
    matvecs: int
    converged: bool

    def __str__(self) -> str:
        """``"fraction ± error"``, or with ``" (unreliable: reason)"`` appended."""
        return format_estimate(self.fraction, self.error, self.reliable, self.reason)


def saddle_index(op: SymmetricOperator, tol: float = 1e-3, *, method: str = "deflated-slq", k: int = 20,
                 eig_tol: float | None = None, steps: int = 90, runs: int = 10, degree: int = 300,
                 probes: int = 10, top: Eigenpairs | None = None, bottom: Eigenpairs | None = None,
                 max_matvecs: int | None = None, seed: int = 0) -> SaddleIndex:
    """Fraction and count of eigenvalues of ``op`` below ``-tol * |lambda|_max`` (see the module docstring).

    Args:
        op: a symmetric operator, e.g. :class:`landscape.Hessian`.
        tol: the threshold relative to ``|lambda|_max``.
        method: one of ``METHODS``.
        k: eigenpairs computed at each end by the deflated methods (at most ``(n - 1) // 2``).
        eig_tol: residual tolerance of those eigen solves relative to ``|lambda|_max``; default ``tol / 10``,
            so that a Ritz value is on the right side of the threshold.
        steps, runs: Lanczos steps and independent runs of SLQ.
        degree, probes: polynomial degree and Rademacher probes of the Chebyshev-Jackson count.
        top, bottom: eigenpairs already computed (``which="largest"`` / ``"smallest"``, e.g. by a tracker);
            their matvecs are not counted again. The deflated methods use all the pairs given.
        max_matvecs: budget of each eigen solve (default that of :func:`landscape.linalg.eigs`).
        seed: seeds the probes and the eigen solves' starts.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    n = op.shape[0]
    matvecs = 0
    if method.startswith("deflated"):
        k = min(k, (n - 1) // 2)
        eig_tol = tol / 10 if eig_tol is None else eig_tol
        if top is None:
            top = eigs(op, k=k, which="largest", tol=eig_tol, max_matvecs=max_matvecs, seed=seed)
            matvecs += top.matvecs
        if bottom is None:
            bottom = eigs(op, k=k, which="smallest", tol=eig_tol, max_matvecs=max_matvecs, seed=seed + 1)
            matvecs += bottom.matvecs
    elif top is None or bottom is None:
        both = eigs(op, k=1, which="both", tol=SCALE_TOL, max_matvecs=max_matvecs, seed=seed)
        matvecs += both.matvecs
        top = top if top is not None else _end(both, 0)
        bottom = bottom if bottom is not None else _end(both, 1)
    scale = max(abs(float(top.eigenvalues[0])), abs(float(bottom.eigenvalues[0])))
    threshold = tol * scale
    converged = top.converged and bottom.converged
    if not method.startswith("deflated"):
        estimate = _estimate(op, method, threshold, steps, runs, degree, probes, seed)
        return _result(estimate, 0, torch.zeros(0), tol, threshold, scale, method, n, matvecs, converged)

    below = bottom.eigenvalues[bottom.eigenvalues < -threshold]
    if bottom.converged and below.numel() < bottom.eigenvalues.numel():
        return SaddleIndex(fraction=below.numel() / n, count=float(below.numel()), error=0.0, stderr=0.0,
                           quadrature_error=None, reliable=True, reason="", samples=0, tol=tol,
                           threshold=threshold, scale=scale, method=method, exact=below.numel(), complete=True,
                           eigenvalues=below, dim=n, matvecs=matvecs, converged=converged)
    V, _ = torch.linalg.qr(torch.cat([top.eigenvectors, bottom.eigenvectors], dim=1))
    estimate = _estimate(Deflated(op, V), method.removeprefix("deflated-"), threshold, steps, runs, degree,
                         probes, seed)
    return _result(estimate, below.numel(), below, tol, threshold, scale, method, n, matvecs, converged)


def _end(pairs: Eigenpairs, index: int) -> Eigenpairs:
    """Pair ``index`` of a ``which="both"`` result as a one-pair result."""
    return replace(pairs.pick(slice(index, index + 1)), matvecs=0)


@dataclass(frozen=True)
class _Count:
    """An estimated count of eigenvalues with its sampling stderr (count units), resolution error (fraction
    units) and what shrinks it, probes and cost."""
    value: float
    stderr: float
    quadrature_error: float
    remedy: str
    samples: int
    matvecs: int


def _estimate(op: SymmetricOperator, method: str, threshold: float, steps: int, runs: int, degree: int,
              probes: int, seed: int) -> _Count:
    """Estimated number of eigenvalues of ``op`` below ``-threshold`` by SLQ or Chebyshev-Jackson."""
    n = op.shape[0]
    if method == "slq":
        dens = density(op, steps=steps, runs=runs, seed=seed)
        mass = dens.negative_fraction(threshold)
        return _Count(n * mass.value, n * mass.stderr, mass.quadrature_error,
                      "the threshold falls in a bulk of eigenvalues the Lanczos nodes do not resolve; more steps, "
                      "more deflated eigenpairs (k) or a larger tol resolve it", runs, dens.matvecs)
    count = eigencount(op, (-math.inf, -threshold), degree=degree, probes=probes, seed=seed)
    return _Count(count.value, count.stderr, count.resolution_error / n,
                  "many eigenvalues lie within the Chebyshev filter's resolution of the threshold; a higher degree, "
                  "more deflated eigenpairs (k) or a larger tol resolve it", probes, count.matvecs)


def _result(estimate: _Count, exact: int, eigenvalues: Tensor, tol: float, threshold: float, scale: float,
            method: str, n: int, matvecs: int, converged: bool) -> SaddleIndex:
    count = min(max(exact + estimate.value, float(exact)), float(n))   # clipped to what is possible
    stderr = estimate.stderr / n
    error = total_error(stderr, estimate.samples, estimate.quadrature_error, count / n, (exact / n, 1.0))
    reliable, reason = reliability(count / n, error, estimate.samples, estimate.quadrature_error, resolution=1 / n,
                                   remedy=estimate.remedy)
    return SaddleIndex(fraction=count / n, count=count, error=error, stderr=stderr,
                       quadrature_error=estimate.quadrature_error, reliable=reliable, reason=reason,
                       samples=estimate.samples, tol=tol, threshold=threshold, scale=scale, method=method, exact=exact,
                       complete=False, eigenvalues=eigenvalues, dim=n, matvecs=matvecs + estimate.matvecs,
                       converged=converged)
