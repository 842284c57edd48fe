"""The total error of a stochastic estimate, and when the estimate is too uncertain to be read as a number.

An estimate from ``R`` independent random probes (SLQ runs, Hutchinson or Chebyshev probes) has two error
terms: the sampling error, whose standard error ``s`` (sample standard deviation over ``sqrt(R)``) is itself
estimated from the ``R`` samples, and, for quadrature-based estimates of a discontinuous function (counting
eigenvalues below a threshold), a deterministic bound ``Q`` on the quadrature's own error. The error a user
reads, the ``±`` printed everywhere, is the half-width of an interval meant to hold the exact value with
probability at least :data:`COVERAGE`:

    ``error = t_{(1 + COVERAGE)/2, R - 1} s + Q``,

with ``t`` the Student-t quantile for ``R - 1`` degrees of freedom (``s`` is estimated from few samples), and
``Q`` added, not combined in quadrature, because it is a worst-case bound rather than a random error.

A result is *reliable* when ``error <= RELIABLE_RELATIVE |value|`` (the exact value lies within a factor
``1 ± RELIABLE_RELATIVE`` of the one printed) or when the error is below the quantity's resolution (one
eigenvalue, for a count or fraction of eigenvalues). Otherwise it is marked unreliable, and ``reason`` says
which term dominates and what would shrink it.
"""
from __future__ import annotations

import math
from functools import lru_cache

COVERAGE = 0.95
RELIABLE_RELATIVE = 0.5


@lru_cache(maxsize=256)
def sampling_quantile(samples: int) -> float:
    """``t_{(1 + COVERAGE)/2, samples - 1}``: the multiple of the standard error that covers :data:`COVERAGE`
    of the sampling error of a mean of ``samples`` draws (``inf`` for fewer than 2).

    ``scipy.stats`` is imported here, not at the top: it takes about a second to import, which ``import
    landscape`` should not pay."""
    if samples < 2:
        return math.inf
    from scipy.stats import t as student_t
    return float(student_t.ppf((1 + COVERAGE) / 2, samples - 1))


def total_error(stderr: float, samples: int, quadrature_error: float | None = None,
                value: float | None = None, within: tuple[float, float] | None = None) -> float:
    """``t stderr + quadrature_error`` (see the module docstring); a zero ``stderr`` contributes 0 even for
    one sample (an exact result). With ``value`` and ``within = (lo, hi)``, the range the exact value is known to
    lie in (e.g. ``(0, 1)`` for a fraction), at most ``max(value - lo, hi - value)``: no larger ``±`` can be
    needed."""
    sampling = 0.0 if stderr == 0 else sampling_quantile(samples) * stderr
    error = sampling + (quadrature_error or 0.0)
    if within is not None and value is not None:
        error = min(error, max(value - within[0], within[1] - value))
    return error


def reliability(value: float, error: float, samples: int, quadrature_error: float | None = None,
                resolution: float = 0.0, remedy: str = "more steps") -> tuple[bool, str]:
    """``(reliable, reason)`` of an estimate with total ``error`` (see the module docstring); ``reason`` is
    empty when reliable, else names the dominant term and the remedy.

    Args:
        value, error: the estimate and its total error. samples, quadrature_error: probes and quadrature
            bound it came from.
        resolution: an error at or below this is as small as the quantity allows (e.g. ``1/n`` for a fraction
            of ``n`` eigenvalues), so reliable whatever the value.
        remedy: what shrinks the quadrature error, for the reason (e.g. "more Lanczos steps").
    """
    if not math.isfinite(error):
        return False, "the error is not finite (too few probes for a standard error)"
    if error <= RELIABLE_RELATIVE * abs(value) or error <= resolution:
        return True, ""
    quadrature = quadrature_error or 0.0
    sampling = error - quadrature
    head = (f"the {COVERAGE:.0%} error {error:.2g} exceeds {RELIABLE_RELATIVE:g} times the value {value:.3g}; ")
    if quadrature >= sampling:
        return False, head + f"the quadrature error bound {quadrature:.2g} dominates: {remedy}"
    return False, head + f"the sampling error {sampling:.2g} ({samples} probes) dominates: more runs shrink it"


def format_estimate(value: float, error: float, reliable: bool = True, reason: str | None = "") -> str:
    """``"value ± error"`` (4 and 2 significant digits), followed by ``" (unreliable: reason)"`` when not
    ``reliable`` (``" (unreliable)"`` with ``reason=None``, for tables that state the reasons elsewhere)."""
    text = f"{value:.4g} ± {error:.2g}"
    if reliable:
        return text
    return f"{text} (unreliable)" if reason is None else f"{text} (unreliable: {reason})"
