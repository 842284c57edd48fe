"""Stochastic trace estimation with standard errors: Hutchinson and Hutch++."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.linalg.operator import Counted, SymmetricOperator

METHODS = ("hutch++", "hutchinson")


@dataclass(frozen=True)
class TraceEstimate:
    """An unbiased estimate of ``tr(A)`` with the standard error of its random part.

    ``value +- 2 * stderr`` covers the trace about 95% of the time over seeds.
    """
    value: float
    stderr: float
    matvecs: int
    method: str


def trace(op: SymmetricOperator, matvecs: int = 99, method: str = "hutch++", seed: int = 0) -> TraceEstimate:
    """Estimate ``tr(A)`` with ``matvecs`` products, by :func:`hutchpp` (default) or :func:`hutchinson`.

    Hutch++ is the default because curvature spectra have a few large outliers, which it computes exactly
    instead of sampling. Probes are Rademacher vectors from a ``torch.Generator`` seeded by ``seed`` on
    the operator's device; the global RNG is untouched. No host synchronisation until the result.

    Distributed operators: run the same call on every rank (see :func:`landscape.linalg.eigs`); the
    probes, products and therefore the estimates are the same on every rank.
    """
    if method == "hutch++":
        return hutchpp(op, matvecs, seed)
    if method == "hutchinson":
        return hutchinson(op, matvecs, seed)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def hutchinson(op: SymmetricOperator, matvecs: int = 99, seed: int = 0) -> TraceEstimate:
    """Hutchinson's estimator (Hutchinson 1989): ``tr(A) ~ (1/m) sum_i z_i^T A z_i``, ``z_i`` Rademacher.

    ``stderr`` is the sample standard deviation of the ``m = matvecs`` terms over ``sqrt(m)``; the
    variance of one term is ``2 (||A||_F^2 - sum_i A_ii^2)``. One ``matmat`` of ``m`` columns; memory
    ``2 m n`` elements.
    """
    A = Counted(op)
    if matvecs < 2:
        raise ValueError(f"hutchinson needs matvecs >= 2 for a standard error, got {matvecs}")
    Z = A.rademacher(matvecs, A.generator(seed))
    samples = (Z * A.matmat(Z)).sum(dim=0)
    return TraceEstimate(value=float(samples.mean()), stderr=_stderr(samples), matvecs=A.matvecs,
                         method="hutchinson")


def hutchpp(op: SymmetricOperator, matvecs: int = 99, seed: int = 0) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: optimal stochastic trace estimation").

    With ``s = matvecs // 3`` (at most ``n``) and ``g = matvecs - 2 s`` probes: ``Q`` an orthonormal basis
    of ``A S`` for a Rademacher sketch ``S`` (n, s), and ``G`` (n, g) Rademacher,

        ``tr(A) ~ tr(Q^T A Q) + (1/g) sum_i g_i^T (I - QQ^T) A (I - QQ^T) g_i``.

    The first term is exact given ``Q`` (it captures the outliers); given ``Q`` the second is Hutchinson on
    the deflated matrix, unbiased for its trace since ``tr(QQ^T A (I - QQ^T)) = 0``. So the estimate is
    unbiased, and ``stderr`` is the sample standard deviation of the ``g`` deflated terms over ``sqrt(g)``.
    Two ``matmat`` calls (``s`` columns, then ``s + g``); memory about ``2 matvecs n`` elements
    (``3 (s + g) n`` at the second product: ``Q``, the projected probes, their concatenation, its product).
    """
    A = Counted(op)
    if matvecs < 4:
        raise ValueError(f"hutch++ needs matvecs >= 4 (sketch, low-rank part, two probes), got {matvecs}")
    s = min(matvecs // 3, A.n)
    g = matvecs - 2 * s
    generator = A.generator(seed)
    S = A.rademacher(s, generator)
    G = A.rademacher(g, generator)
    Q, _ = torch.linalg.qr(A.matmat(S))
    del S
    G = torch.addmm(G, Q, Q.T @ G, alpha=-1)   # (I - QQ^T) G, fused
    AQG = A.matmat(torch.cat([Q, G], dim=1))
    exact = (Q * AQG[:, :s]).sum()
    samples = (G * AQG[:, s:]).sum(dim=0)
    return TraceEstimate(value=float(exact + samples.mean()), stderr=_stderr(samples), matvecs=A.matvecs,
                         method="hutch++")


def _stderr(samples: Tensor) -> float:
    """Standard error of the mean of ``samples`` (sample standard deviation over sqrt(count))."""
    return float(samples.std(correction=1)) / math.sqrt(samples.numel())
