"""Certifying that Ritz values are the ``k`` extreme eigenvalues: error bounds and a verification pass.

A residual bound alone does not say that ``k`` Ritz values are the ``k`` extreme eigenvalues: single-vector
Krylov methods see one copy of a multiple eigenvalue, and a Ritz value in a tight cluster can meet its
residual test while a more extreme eigenvalue is still hidden. This module turns Ritz pairs into a claim
about the ``k`` extreme eigenvalues, counted with multiplicity.

Bounds. Let ``Y`` (``n x k``) hold orthonormal Ritz vectors with ``Y^T A Y = Theta`` diagonal (a Rayleigh-Ritz
projection), ``R = A Y - Y Theta`` (so ``Y^T R = 0``) and ``eps = ||R||_2``; let ``B`` be the compression of
``A`` to the orthogonal complement of ``Y`` and ``mu`` its extreme eigenvalue at a wanted end. In the basis
``[Y, Y_perp]``, ``A = [[Theta, R^T], [R, B]]`` (``R`` written in the complement's basis). Then for the
``i``-th Ritz value ``theta_i`` from the top (``lambda_i`` the ``i``-th largest eigenvalue of ``A``):

* ``theta_i <= lambda_i`` (Cauchy interlacing: Ritz values lie inside the spectrum);
* ``lambda_i - theta_i <= eps + max(0, mu - theta_i)`` (Weyl, against ``diag(Theta, B)``, whose ``i``-th
  largest eigenvalue is at most ``max(theta_i, mu)``);
* when ``mu < theta_i``, with the gap ``eta_i = theta_i - mu``:
  ``lambda_i - theta_i <= 2 eps^2 / (eta_i + sqrt(eta_i^2 + 4 eps^2))`` (Li & Li 2005, "A note on
  eigenvalues of perturbed Hermitian matrices", LAA 395; at most ``min(eps, eps^2 / eta_i)``: quadratic in
  the residual when the wanted values are separated from the rest, Davis-Kahan/Temple style).

The smallest end is the mirror image. These bounds are rigorous given ``mu``; they are the per-value
``error_bounds`` of :class:`landscape.linalg.Eigenpairs` (plus a rounding floor ``sqrt(n) eps_dtype scale``).

Verification pass. ``mu`` is bounded by a second Lanczos run from a fresh random start, deflated against
``Y`` (Lanczos on ``B``). Its extreme Ritz value ``nu`` lies inside ``B``'s spectrum (at the top ``mu >= nu``,
certain), and ``mu`` is taken to lie within ``reach`` beyond ``nu``: the residual ``rho`` of that Ritz pair once
it has converged to the target (``rho <= tol |lambda|_max``, the standard the solver holds its own pairs to,
after at least :data:`MIN_STEPS` steps), or before that the Kuczynski-Wozniakowski reach
``spread (log(1.648 sqrt(n) / P_MISS) / (2 m - 1))^2`` after ``m`` steps. If ``nu`` goes beyond ``theta_k`` so far
that the bounds cannot hold, an eigenvalue was missed for certain, and its Ritz vector is handed back to be
merged (:func:`landscape.linalg.eigs` then refines the union and runs another pass).

Probability model. For a start drawn uniformly on the sphere (a normalised Gaussian), exact arithmetic and
no restart, ``P(mu - nu > eps spread) <= 1.648 sqrt(n) exp(-sqrt(eps) (2 m - 1))`` (Kuczynski & Wozniakowski
1992, theorem 4.2, applied to ``B`` shifted to be positive semi-definite), so the reach holds with
probability at least ``1 - P_MISS`` (0.99). The converged-residual rule is the usual Krylov assumption that a
converged extreme Ritz value is the extreme eigenvalue; it fails only if the start's component along a more
extreme eigenvector is too small to have grown in the steps taken (a Gaussian start has a component below
``delta / sqrt(n)`` along a fixed unit vector with probability about ``0.8 delta``), and the pass's start is
independent of the first run's, so both runs must miss the same eigenvalue. Rounding (``~eps_dtype``) plays
the role of ``delta`` in floating point. Cost: the reach shrinks like ``spread / m^2``, so certifying values
across a gap ``g`` takes about ``5.7 sqrt(spread / g)`` steps at most, and the converged-residual rule is
usually met sooner; the bottom of a Hessian (a bulk edge, no gap, ``spread ~ |lambda|_max``) is the expensive
case. The planted-spectrum tests (multiplicity 2-5, clusters within 5%, null spaces) exercise all of this.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.lanczos import ThickRestartLanczos
from landscape.linalg.operator import Counted

P_MISS = 0.01   # the verification pass may miss an eigenvalue that breaks the bounds with at most this probability
MIN_STEPS = 6   # ... or once its extreme pair has converged after at least this many steps


def gap_bounds(theta: np.ndarray, sides: np.ndarray, eps: float, mu_top: float, mu_bottom: float) -> np.ndarray:
    """Bounds on ``|lambda_i - theta_i|`` for Ritz values ``theta`` at the ends ``sides`` (``+1`` top, ``-1``
    bottom), from the block residual norm ``eps`` and the extreme eigenvalues ``mu_top`` / ``mu_bottom`` of the
    compression to the complement (see the module docstring). ``mu`` estimates that are too optimistic make
    the bounds too small; too pessimistic ones only make them larger."""
    mu = np.where(sides > 0, mu_top, mu_bottom)
    eta = sides * (theta - mu)
    with np.errstate(invalid="ignore", divide="ignore"):
        quadratic = np.where(eps > 0, 2 * eps**2 / (eta + np.sqrt(eta**2 + 4 * eps**2)), 0.0)
    return np.where(eta > 0, quadratic, eps - eta)


@dataclass(frozen=True)
class Verification:
    """Outcome of a verification pass.

    Attributes:
        passed: the bounds with the estimated ``mu`` are all within the target.
        bounds: those bounds, one per wanted Ritz value.
        mu_top, mu_bottom: the estimates of the compression's extreme eigenvalues (``nan`` for an end not
            wanted).
        missed: rows ``(q, n)``: Ritz vectors of the deflated run beyond the wanted Ritz values (at most one
            per wanted value), to merge; empty when nothing was missed.
        missed_values: their Ritz values.
        matvecs: products this pass used.
        reason: why it did not pass ("" when it did).
    """
    passed: bool
    bounds: np.ndarray
    mu_top: float
    mu_bottom: float
    missed: Tensor
    missed_values: np.ndarray
    matvecs: int
    reason: str


def verify(A: Counted, Y: Tensor, theta: np.ndarray, sides: np.ndarray, eps: float, target: float, scale: float,
           generator: torch.Generator, ncv: int, max_matvecs: int, floor: float = 0.0,
           basis_dtype: torch.dtype | None = None, basis_device: torch.device | str | None = None) -> Verification:
    """A Lanczos run on ``A`` deflated against the rows of ``Y`` (``(k, n)``, orthonormal Ritz vectors with
    Ritz values ``theta`` at ends ``sides``), from a fresh random start, until the bounds of
    :func:`gap_bounds` (plus ``floor``) meet ``target`` or cannot, or ``max_matvecs`` products are spent."""
    start = A.matvecs
    top, bottom = bool((sides > 0).any()), bool((sides < 0).any())
    wanted = int(top) + int(bottom)
    room = A.n - Y.shape[0]
    ncv = min(ncv, room)
    run = ThickRestartLanczos(A, ncv, generator, basis_dtype, basis_device, locked=Y)
    run.start(torch.randn(A.n, generator=generator, dtype=A.dtype, device=A.device))
    nan = float("nan")
    while True:
        run.expand()
        values, S, r = run.ritz()
        nu_top = values[-1] if top else nan
        nu_bottom = values[0] if bottom else nan
        certain = gap_bounds(theta, sides, eps, nu_top, nu_bottom) + floor   # mu is at least this extreme
        # mu lies within `reach` of nu: the residual once the extreme pair has converged to the target (the
        # solver's own standard), else the Kuczynski-Wozniakowski reach at confidence 1 - P_MISS
        spread = max(values[-1] + r[-1], theta.max(), scale / 2) - min(values[0] - r[0], theta.min(), -scale / 2)
        reach = 0.0 if run.exhausted else _reach(A.matvecs - start, spread, room)
        steps = A.matvecs - start >= min(MIN_STEPS, room)
        reach_top = r[-1] if steps and r[-1] <= target else reach
        reach_bottom = r[0] if steps and r[0] <= target else reach
        mu_top, mu_bottom = nu_top + reach_top, nu_bottom - reach_bottom
        estimated = gap_bounds(theta, sides, eps, mu_top, mu_bottom) + floor
        spent = A.matvecs - start >= max_matvecs
        if np.all(estimated <= target):
            return Verification(True, estimated, mu_top, mu_bottom, Y[:0],
                                np.zeros(0), A.matvecs - start, "")
        beyond = _beyond(values, theta, sides, top, bottom)
        if (np.any(certain > target) and beyond.size) or spent or run.exhausted:
            if beyond.size:
                reason = (f"a verification pass from a fresh random start found {beyond.size} eigenvalue(s) "
                          f"beyond the k-th Ritz value ({_fmt(values[beyond])})")
            elif np.any(certain > target):
                reason = (f"the block residual norm {eps:.3g} is too large for the gaps to certify the values "
                          f"within {target:.3g}")
            else:
                reason = (f"the verification pass ran out of products ({max_matvecs}) before bounding the rest "
                          "of the spectrum")
            missed = run.vectors(S[:, beyond]) if beyond.size else Y[:0]
            return Verification(False, certain, nu_top, nu_bottom, missed,
                                values[beyond], A.matvecs - start, reason)
        if np.any(certain > target) and not beyond.size:
            # the residuals, not a missed eigenvalue, keep the bounds above target: refining the pairs helps
            return Verification(False, certain, nu_top, nu_bottom, Y[:0], np.zeros(0),
                                A.matvecs - start, f"the block residual norm {eps:.3g} is too large to certify "
                                f"the values within {target:.3g}")
        if run.j == ncv:
            each = max(1, (ncv // 3) // wanted)
            ends = ([np.arange(each)] if bottom else []) + ([values.size - 1 - np.arange(each)] if top else [])
            keep = np.unique(np.concatenate(ends))
            run.restart(values[keep], S[:, keep])


def _reach(steps: int, spread: float, dim: int) -> float:
    """How far beyond the extreme Ritz value of ``steps`` Lanczos steps from a uniformly random start the
    extreme eigenvalue may still lie, with probability at most :data:`P_MISS`, in a spectrum of width
    ``spread`` and dimension ``dim``: ``spread (log(1.648 sqrt(dim) / P_MISS) / (2 steps - 1))^2``, from
    ``P(lambda - nu > eps spread) <= 1.648 sqrt(dim) exp(-sqrt(eps) (2 steps - 1))`` (Kuczynski & Wozniakowski
    1992, "Estimating the largest eigenvalue by the power and Lanczos algorithms with a random start", SIAM J.
    Matrix Anal. Appl. 13(4), theorem 4.2(a), for the compression shifted to be positive semi-definite)."""
    return spread * min(1.0, (math.log(1.648 * math.sqrt(dim) / P_MISS) / (2 * steps - 1)) ** 2)


def _beyond(values: np.ndarray, theta: np.ndarray, sides: np.ndarray, top: bool, bottom: bool) -> np.ndarray:
    """Indices of the deflated run's Ritz values more extreme than the least extreme wanted value at each end
    (at most as many per end as are wanted there)."""
    picks = []
    if top:
        last = theta[sides > 0].min()
        picks.append(np.flatnonzero(values > last)[::-1][: int((sides > 0).sum())])
    if bottom:
        last = theta[sides < 0].max()
        picks.append(np.flatnonzero(values < last)[: int((sides < 0).sum())])
    return np.concatenate(picks).astype(int)


def _fmt(values: np.ndarray) -> str:
    return ", ".join(f"{v:.6g}" for v in values)
