"""Conventions every figure shares: error bars that respect the sign of a quantity, hollow markers for
results that say they cannot be trusted, plain tick labels, and the caption words for error bars.

Used by the figures of the package and by the scripts in ``analyses/``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter


UNRELIABLE_LABEL = "unreliable (error > ½ value)"


def bounded_errors(values: Any, errors: Any) -> np.ndarray:
    """``yerr`` for ``Axes.errorbar``: the ``(2, n)`` lower and upper half-widths, missing or infinite errors as
    none, and the lower ones cut at 0 when no value is negative (a non-negative quantity's bar stays above 0)."""
    v = np.asarray(values, dtype=float)
    e = np.asarray(errors, dtype=float)
    e = np.where(np.isfinite(e), e, 0.0)
    finite = v[np.isfinite(v)]
    lower = np.minimum(e, np.where(np.isfinite(v), np.maximum(v, 0.0), e)) if finite.size and finite.min() >= 0 else e
    return np.vstack([lower, e])


def draw_unreliable(ax, x: Any, y: Any, color: str, marker: str = "o") -> None:
    """Hollow markers at points whose result says it is unreliable, with one legend entry per axes (shown)."""
    labelled = UNRELIABLE_LABEL in ax.get_legend_handles_labels()[1]
    ax.plot(x, y, marker, ms=5, mfc="white", mec=color, mew=1.2, ls="none",
            label="_nolegend_" if labelled else UNRELIABLE_LABEL)
    ax.legend(fontsize=7)


def plain_number(value: float) -> str:
    """``value`` to 3 significant digits without exponent: ``0.0123``, ``1000``, ``2``."""
    return np.format_float_positional(value, precision=3, unique=True, fractional=False, trim="-")


def plain_ticks(ax, axis: str = "both") -> None:
    """Tick labels written as plain numbers (``0.014``, ``2000``), never ``1.4×10⁻²`` or an offset.

    Linear axes get a :class:`~matplotlib.ticker.ScalarFormatter` without offset or scientific notation; log
    axes label their major ticks positionally to 3 significant digits (``0.001``, ``1000``) and drop the minor
    labels. Call after the scales are set.
    """
    for which in ("x", "y") if axis == "both" else (axis,):
        scale_axis = ax.xaxis if which == "x" else ax.yaxis
        if scale_axis.get_scale() == "log":
            scale_axis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
            scale_axis.set_minor_formatter(NullFormatter())
        elif scale_axis.get_scale() == "linear":
            formatter = ScalarFormatter(useOffset=False)
            formatter.set_scientific(False)
            scale_axis.set_major_formatter(formatter)


def error_caption(seeds: int, error: str = "s.d.") -> str:
    """The words a legend or caption gives for error bars over seeds, e.g. ``"mean ± s.d. over 3 seeds"``.

    Args:
        seeds: the number of independent seeds behind each point.
        error: ``"s.d."`` (spread of the seeds) or ``"s.e."`` (standard error of their mean).
    """
    if error not in ("s.d.", "s.e."):
        raise ValueError(f"error must be 's.d.' or 's.e.', got {error!r}")
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    return "one seed, no error bar" if seeds == 1 else f"mean ± {error} over {seeds} seeds"
