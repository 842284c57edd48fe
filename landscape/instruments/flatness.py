"""Flatness of a minimum from the curvature spectrum, each measure with its error.

For a symmetric operator ``H`` (the Hessian, or a GGN/Fisher) of dimension ``n`` with eigenvalues
``lambda_i`` (units: loss per parameter^2):

* sharpness ``lambda_max`` (Keskar et al. 2017): Lanczos, with the solver's error bound;
* ``tr H``: ``sum_{i <= k} theta_i`` plus Hutchinson on the deflated rest, from the SLQ probes below
  (degree 1, so their quadrature is exact: the Hutch++ split of Meyer et al. 2021 at no extra cost);
* Frobenius norm ``||H||_F = sqrt(tr H^2)``;
* the Laplace/Occam term ``-1/2 sum_i log(lambda_i^+ + delta)`` (MacKay 1992: the log-volume factor of the
  Laplace evidence ``-1/2 log det(H + delta I)`` with prior precision ``delta``; ``lambda^+ = max(lambda, 0)``);
* the effective dimensionality ``N_eff = sum_i lambda_i^+ / (lambda_i^+ + z)`` (Maddox, Benton & Wilson
  2020, "Rethinking parameter counting in deep models: effective dimensionality revisited").

The last three are spectral sums ``tr f(H)``. With the top ``k`` eigenpairs ``(theta_i, v_i)`` projected
out (:class:`~landscape.instruments.deflation.Deflated`) and ``g = f - f(0)``,

    ``tr f(H) = n f(0) + sum_{i <= k} g(theta_i) + tr g(P H P)``,

and the last term comes from stochastic Lanczos quadrature on ``P H P`` (Ubaru, Chen & Saad 2017), whose
spread across runs is the standard error. Deflating the outliers, which dominate ``tr H^2``, removes most
of the variance. For ``f(x) = x`` and ``x^2`` the quadrature is exact (degree below ``2 steps``), so ``tr H``
and ``tr H^2`` are unbiased; for the other two it adds a small bias not in the standard error. Negative
eigenvalues are clipped to zero in the last two measures: an indefinite Hessian has no Laplace volume
along them.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.instruments.deflation import Deflated
from landscape.linalg import Eigenpairs, SymmetricOperator, density, eigs


@dataclass(frozen=True)
class Flatness:
    """Flatness measures, each with its uncertainty (see the module docstring for the formulas).

    Attributes:
        lambda_max, lambda_max_error: the largest eigenvalue and the solver's bound on its error.
        trace, trace_stderr: ``tr H`` and its standard error.
        frobenius, frobenius_stderr: ``||H||_F`` and its standard error (delta method on ``tr H^2``).
        occam, occam_stderr: ``-1/2 sum log(lambda^+ + delta)`` (nats).
        effective_dim, effective_dim_stderr: ``sum lambda^+ / (lambda^+ + z)`` (a number of parameters).
        delta, z: the prior precision and the effective-dimensionality scale (eigenvalue units).
        k: eigenpairs deflated. dim: ``n``. matvecs: products used by this call.
    """
    lambda_max: float
    lambda_max_error: float
    trace: float
    trace_stderr: float
    frobenius: float
    frobenius_stderr: float
    occam: float
    occam_stderr: float
    effective_dim: float
    effective_dim_stderr: float
    delta: float
    z: float
    k: int
    dim: int
    matvecs: int


def flatness(op: SymmetricOperator, *, delta: float = 1e-3, z: float = 1.0, k: int = 10, eig_tol: float = 1e-4,
             steps: int = 90, runs: int = 10, top: Eigenpairs | None = None, seed: int = 0) -> Flatness:
    """Sharpness, trace, Frobenius norm, Occam term and effective dimensionality of ``op``.

    Args:
        op: symmetric operator, e.g. :class:`landscape.Hessian`.
        delta: prior precision of the Occam term (> 0). z: scale of the effective dimensionality (> 0).
        k: top eigenpairs computed and deflated (at most ``n - 1``).
        eig_tol: residual tolerance of that solve, relative to ``|lambda|_max``.
        steps, runs: Lanczos steps and runs of the deflated SLQ.
        top: top eigenpairs already computed (``which="largest"``); not counted again.
        seed: seeds the eigen solve and the SLQ probes.

    Cost: the eigen solve (``~3-6 k`` matvecs) and ``steps * runs``.
    """
    return flatness_at_scales(op, (z,), delta=delta, k=k, eig_tol=eig_tol, steps=steps, runs=runs, top=top,
                              seed=seed)[0]


def flatness_at_scales(op: SymmetricOperator, zs: Sequence[float], *, delta: float = 1e-3, k: int = 10,
                       eig_tol: float = 1e-4, steps: int = 90, runs: int = 10, top: Eigenpairs | None = None,
                       seed: int = 0) -> list[Flatness]:
    """:func:`flatness` at each effective-dimensionality scale in ``zs``, from ONE eigen solve and ONE deflated
    SLQ: the results equal separate :func:`flatness` calls with the same arguments (same seeds), at the cost of
    one. Each result's ``matvecs`` is that shared cost."""
    if not (delta > 0 and len(zs) > 0 and all(z > 0 for z in zs)):
        raise ValueError(f"delta and z must be positive (at least one z), got delta={delta}, z={list(zs)}")
    n = op.shape[0]
    matvecs = 0
    if top is None:
        top = eigs(op, k=min(k, n - 1), which="largest", tol=eig_tol, seed=seed)
        matvecs += top.matvecs
    V, _ = torch.linalg.qr(top.eigenvectors)
    dens = density(Deflated(op, V), steps=steps, runs=runs, seed=seed + 1)
    theta = top.eigenvalues.detach().to("cpu", torch.float64)

    def spectral_sum(g: Callable[[Tensor], Tensor]) -> tuple[float, float]:
        """``sum g(theta) + tr g(P H P)`` and its standard error, for ``g(0) = 0``."""
        rest = dens.spectral_sum(g)
        return float(g(theta).sum()) + rest.value, rest.stderr

    tr, tr_stderr = spectral_sum(lambda x: x)
    squares, squares_stderr = spectral_sum(lambda x: x ** 2)
    frobenius = math.sqrt(max(squares, 0.0))
    log_volume, log_volume_stderr = spectral_sum(lambda x: torch.log1p(x.clamp(min=0.0) / delta))
    results = []
    for z in zs:
        eff, eff_stderr = spectral_sum(lambda x: x.clamp(min=0.0) / (x.clamp(min=0.0) + z))
        results.append(Flatness(
            lambda_max=float(top.eigenvalues[0]), lambda_max_error=float(top.error_bounds[0]),
            trace=tr, trace_stderr=tr_stderr,
            frobenius=frobenius, frobenius_stderr=squares_stderr / (2 * frobenius) if frobenius > 0 else math.inf,
            occam=-0.5 * (n * math.log(delta) + log_volume), occam_stderr=0.5 * log_volume_stderr,
            effective_dim=eff, effective_dim_stderr=eff_stderr, delta=delta, z=z, k=int(theta.numel()), dim=n,
            matvecs=matvecs + dens.matvecs))
    return results
