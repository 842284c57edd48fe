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

Verification pass. ``mu`` is estimated by a second Lanczos run from a fresh random start, deflated against
``Y`` (Lanczos on ``B``): its extreme Ritz value ``nu`` lies inside ``B``'s spectrum (so ``mu >= nu`` at the top,
certain), and ``nu + rho`` (``rho`` its residual) is taken as the upper estimate of ``mu`` (Zhou & Li 2011,
"Bounding the spectrum of large Hermitian matrices", LAA 435), after at least :data:`MIN_STEPS` steps.
If ``nu`` goes beyond ``theta_k`` so far that the bound cannot hold, an eigenvalue was missed for certain, and
its Ritz vector is handed back to be merged (:func:`landscape.linalg.eigs` then refines the union).

Probability model. The pass fails to see an eigenvalue of ``B`` beyond ``nu + rho`` only if the random start
(Gaussian, so uniform in direction) is nearly orthogonal to its eigenvector: in exact arithmetic the Krylov
space of a start with a nonzero component along an eigenvector of a distinct eigenvalue finds it as the run
grows, and the component ``c`` of a uniform unit start along a fixed unit vector has
``P(|c| < delta / sqrt(n)) ~= delta sqrt(2 / pi)`` (``0.08`` for ``delta = 0.1``). Within the steps the pass takes,
a missed eigenvalue close to ``nu`` whose start component is small can stay hidden; the start is independent
of the first run's, so both must be unlucky at once. Rounding (``~eps_dtype``) plays the role of ``delta`` in
floating point. The certificate is therefore probabilistic, as every randomised Krylov certificate is; the
planted-spectrum tests (multiplicity 2-5, clusters within 5%, null spaces) exercise it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.linalg.lanczos import ThickRestartLanczos
from landscape.linalg.operator import Counted

MIN_STEPS = 6   # steps before the verification pass trusts nu + rho as a bound on mu (Zhou & Li 2011)
SETTLED = 0.25   # ... and only once rho is at most this fraction of nu's distance to the wanted values


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


def verify(A: Counted, Y: Tensor, theta: np.ndarray, sides: np.ndarray, eps: float, target: float,
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
        nu_top, rho_top = (values[-1], r[-1]) if top else (nan, 0.0)
        nu_bottom, rho_bottom = (values[0], r[0]) if bottom else (nan, 0.0)
        certain = gap_bounds(theta, sides, eps, nu_top, nu_bottom) + floor   # mu is at least this extreme
        if run.exhausted:   # the basis spans the whole complement: nu is mu
            rho_top = rho_bottom = 0.0
        estimated = gap_bounds(theta, sides, eps, nu_top + rho_top, nu_bottom - rho_bottom) + floor
        # nu -+ rho bounds mu once the extreme Ritz vector has settled: its residual small against the
        # distance from nu to the wanted values (or within the target), after MIN_STEPS steps
        distance = min(_distance(theta, sides, 1, nu_top), _distance(theta, sides, -1, nu_bottom))
        settled = run.exhausted or (run.j >= min(MIN_STEPS, room)
                                    and max(rho_top, rho_bottom) <= max(target, SETTLED * distance))
        spent = A.matvecs - start >= max_matvecs
        if settled and np.all(estimated <= target):
            return Verification(True, estimated, nu_top + rho_top, nu_bottom - rho_bottom, Y[:0],
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
            return Verification(False, certain, nu_top + rho_top, nu_bottom - rho_bottom, missed,
                                values[beyond], A.matvecs - start, reason)
        if np.any(certain > target) and settled and not beyond.size:
            # the residuals, not a missed eigenvalue, keep the bounds above target: refining the pairs helps
            return Verification(False, certain, nu_top + rho_top, nu_bottom - rho_bottom, Y[:0], np.zeros(0),
                                A.matvecs - start, f"the block residual norm {eps:.3g} is too large to certify "
                                f"the values within {target:.3g}")
        if run.j == ncv:
            each = max(1, (ncv // 3) // wanted)
            ends = ([np.arange(each)] if bottom else []) + ([values.size - 1 - np.arange(each)] if top else [])
            keep = np.unique(np.concatenate(ends))
            run.restart(values[keep], S[:, keep])


def _distance(theta: np.ndarray, sides: np.ndarray, side: int, nu: float) -> float:
    """How far the deflated run's extreme Ritz value ``nu`` at end ``side`` is inside the wanted values there
    (``inf`` for an end not wanted, negative when ``nu`` is beyond them)."""
    if not (sides == side).any():
        return math.inf
    return float(side * (theta[sides == side] - nu).min())


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
