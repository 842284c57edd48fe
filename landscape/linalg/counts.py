"""How many eigenvalues lie in an interval: Chebyshev filtering with Jackson damping and random probes."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from landscape.linalg.lanczos import lanczos_tridiagonal
from landscape.linalg.operator import Counted, SymmetricOperator
from landscape.linalg.uncertainty import reliability, total_error

BOUND_STEPS = 30
BAND = 2.0   # half-width of the band around each end of the interval, in units of pi / (degree + 2) of angle


@dataclass(frozen=True)
class EigenCount:
    """An estimate of the number of eigenvalues in ``interval``, with its errors
    (:mod:`landscape.linalg.uncertainty`).

    Attributes:
        value: the estimated count.
        error: the total error, the ``±`` to read: ``t stderr + resolution_error``, ``t`` the 95% Student-t
            quantile for ``probes - 1`` degrees of freedom.
        stderr: the sampling part alone, the standard error across probes.
        resolution_error: the smoothing bias. The damped polynomial is a smoothed indicator (values in
            ``[0, 1]``): eigenvalues within about ``pi sqrt(1 - t^2) (hi - lo) / (2 degree)`` of an end of the
            interval (``t`` that end mapped to ``[-1, 1]``) are counted fractionally. Estimated, from the same
            moments, as the number of eigenvalues in the bands of ``BAND pi / (degree + 2)`` of angle
            (``t = cos(angle)``) on either side of each finite end, plus its own 95% sampling error: an
            estimate of a bound (eigenvalues outside the bands also carry a small bias), not a proof.
        reliable: ``error <= 0.5 |value|`` or ``error <= 1`` (one eigenvalue); when ``False`` do not read
            ``value`` as a number. reason: why not (empty when reliable).
    """
    value: float
    error: float
    stderr: float
    resolution_error: float
    reliable: bool
    reason: str
    matvecs: int
    interval: tuple[float, float]
    degree: int
    probes: int
    spectrum_bounds: tuple[float, float]


def eigencount(op: SymmetricOperator, interval: tuple[float, float], degree: int = 180, probes: int = 10,
               spectrum_bounds: tuple[float, float] | None = None, seed: int = 0) -> EigenCount:
    """Estimate the number of eigenvalues in ``[a, b]`` (Di Napoli, Polizzi & Saad 2016, "Efficient
    estimation of eigenvalue counts in an interval").

    With the spectrum inside ``[lo, hi]``, ``c = (hi + lo)/2``, ``e = (hi - lo)/2`` and ``B = (A - c I)/e``,
    the indicator of ``[a', b'] = ([a, b] - c)/e`` is expanded in Chebyshev polynomials with Jackson damping:

        ``count ~ sum_{j=0}^{p} g_j gamma_j tr T_j(B)``, ``gamma_0 = (arccos a' - arccos b')/pi``,
        ``gamma_j = 2 (sin(j arccos a') - sin(j arccos b')) / (pi j)``,
        ``g_j = [(1 - j/(p+2)) sin(alpha) cos(j alpha) + cos(alpha) sin(j alpha)/(p+2)] / sin(alpha)``,
        ``alpha = pi/(p+2)``,

    and ``tr T_j(B) ~ (1/probes) sum_l z_l^T T_j(B) z_l`` for Rademacher ``z_l``. The moments up to degree
    ``p`` come from ``w_i = T_i(B) z`` for ``i <= ceil(p/2)`` by ``T_{2i} = 2 T_i^2 - T_0`` and
    ``T_{2i+1} = 2 T_{i+1} T_i - T_1`` (Weisse, Wellein, Alvermann & Fehske 2006, "The kernel polynomial
    method"), so a probe costs ``ceil(p/2)`` matvecs.

    Args:
        op: symmetric operator. interval: ``(a, b)``; ``-math.inf``/``math.inf`` for a half-line, e.g.
            ``(-math.inf, -tol)`` counts eigenvalues below ``-tol``.
        degree: polynomial degree ``p``. probes: Rademacher probes (at least 2), applied as one block.
        spectrum_bounds: ``(lo, hi)`` containing every eigenvalue; by default from a Lanczos run of
            30 steps, ``[theta_min - r_min, theta_max + r_max]`` (``r`` the Ritz residuals) widened on each
            side by 1% of the larger of its width and its ends' magnitudes, costing those matvecs too. An
            eigenvalue outside makes ``T_j`` grow exponentially, so bounds given by hand must be safe.
        seed: seeds a ``torch.Generator`` on the operator's device.

    Cost: ``probes * ceil(degree/2)`` matvecs, plus 30 for default bounds. Memory ``3 n probes`` elements
    (``31 n`` for the default bounds' Lanczos run). The moments stay on the operator's device: no host
    synchronisation until the result (the default bounds cost one per Lanczos step).

    Distributed operators: run the same call on every rank (see :func:`landscape.linalg.eigs`).
    """
    A = Counted(op)
    a, b = interval
    if not a < b:
        raise ValueError(f"interval must have a < b, got {interval}")
    if degree < 1:
        raise ValueError(f"degree must be at least 1, got {degree}")
    if probes < 2:
        raise ValueError(f"probes must be at least 2 for a standard error, got {probes}")
    generator = A.generator(seed)
    if spectrum_bounds is None:
        spectrum_bounds = _spectrum_bounds(A, generator)
    lo, hi = spectrum_bounds
    if not lo < hi:
        raise ValueError(f"spectrum_bounds must have lo < hi, got {spectrum_bounds}")
    c, e = (hi + lo) / 2, (hi - lo) / 2
    coef = torch.as_tensor(_jackson(degree) * _indicator(degree, (a - c) / e, (b - c) / e),
                           dtype=A.dtype, device=A.device)

    def B(V: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        """``factor * (A - c I) V / e`` as one new tensor (``A``'s output is not written to)."""
        return torch.add(A.matmat(V), V, alpha=-c).mul_(factor / e)

    half = math.ceil(degree / 2)
    Z = A.rademacher(probes, generator)
    mu = torch.zeros(2 * half + 1, probes, dtype=A.dtype, device=A.device)
    prev, cur = Z, B(Z)
    mu[0] = (Z * Z).sum(dim=0)
    mu[1] = (Z * cur).sum(dim=0)
    for i in range(1, half):
        nxt = B(cur, 2.0).sub_(prev)
        mu[2 * i] = 2 * (cur * cur).sum(dim=0) - mu[0]
        mu[2 * i + 1] = 2 * (nxt * cur).sum(dim=0) - mu[1]
        prev, cur = cur, nxt
    mu[2 * half] = 2 * (cur * cur).sum(dim=0) - mu[0]
    counts = coef @ mu[: degree + 1]
    band_counts = torch.as_tensor(_band_coefficients(degree, (a - c) / e, (b - c) / e), dtype=A.dtype,
                                  device=A.device) @ mu[: degree + 1]
    value, stderr = float(counts.mean()), float(counts.std(correction=1)) / math.sqrt(probes)
    resolution = max(float(band_counts.mean()) + total_error(float(band_counts.std(correction=1))
                                                             / math.sqrt(probes), probes), 0.0)
    error = total_error(stderr, probes, resolution)
    reliable, reason = reliability(value, error, probes, resolution, resolution=1.0,
                                   remedy="many eigenvalues lie near an end of the interval; a higher degree "
                                          "narrows the smoothing")
    return EigenCount(value=value, error=error, stderr=stderr, resolution_error=resolution, reliable=reliable,
                      reason=reason, matvecs=A.matvecs, interval=(float(a), float(b)), degree=degree,
                      probes=probes, spectrum_bounds=(float(lo), float(hi)))


def _band_coefficients(p: int, a: float, b: float) -> np.ndarray:
    """Damped Chebyshev coefficients of the indicator of the bands of ``BAND pi / (p + 2)`` of angle on either
    side of each end of ``[a, b]`` (in ``[-1, 1]`` units) that lies inside ``(-1, 1)``."""
    width = BAND * math.pi / (p + 2)
    coef = np.zeros(p + 1)
    for end in (a, b):
        if -1.0 < end < 1.0:
            angle = math.acos(end)
            coef += _indicator(p, math.cos(min(angle + width, math.pi)), math.cos(max(angle - width, 0.0)))
    return _jackson(p) * coef


def _indicator(p: int, a: float, b: float) -> np.ndarray:
    """Chebyshev coefficients ``gamma_0..gamma_p`` of the indicator of ``[a, b]`` clipped to ``[-1, 1]``."""
    ta, tb = math.acos(min(max(a, -1.0), 1.0)), math.acos(min(max(b, -1.0), 1.0))
    j = np.arange(1, p + 1)
    return np.concatenate([[(ta - tb) / math.pi], 2 * (np.sin(j * ta) - np.sin(j * tb)) / (math.pi * j)])


def _jackson(p: int) -> np.ndarray:
    """Jackson damping factors ``g_0..g_p`` in the form of Di Napoli, Polizzi & Saad (2016)."""
    alpha = math.pi / (p + 2)
    j = np.arange(p + 1)
    return ((1 - j / (p + 2)) * math.sin(alpha) * np.cos(j * alpha)
            + math.cos(alpha) * np.sin(j * alpha) / (p + 2)) / math.sin(alpha)


def _spectrum_bounds(A: Counted, generator: torch.Generator) -> tuple[float, float]:
    """``[theta_min - r_min, theta_max + r_max]`` from a Lanczos run, widened on each side by 1% of the larger
    of its width and its ends' magnitudes."""
    z = torch.randn(A.n, 1, generator=generator, dtype=A.dtype, device=A.device)
    tri = lanczos_tridiagonal(A, z, BOUND_STEPS)
    theta, S = tri.ritz(0)
    residual = tri.beta[0, int(tri.lengths[0]) - 1] * np.abs(S[-1])
    lo, hi = theta[0] - residual[0], theta[-1] + residual[-1]
    margin = 0.01 * (max(hi - lo, abs(lo), abs(hi)) or 1.0)
    return float(lo - margin), float(hi + margin)
