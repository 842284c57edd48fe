"""Conventions every figure shares: a pyplot-free figure, error bars that respect the sign of a quantity, hollow
markers for results that say they cannot be trusted, plain tick labels, the caption words for error bars, and
spectral densities drawn with their smoothing width and their spread across SLQ runs, and one colour per measured
quantity (:func:`quantity_color`).

Used by the figures of the package and by the scripts in ``analyses/``.
"""
from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

from landscape.linalg import SpectralDensity


UNRELIABLE_LABEL = "unreliable (error > ½ value)"
LEGEND_SIZE = 9   # points: legends stay readable when a wide figure is shown at a page's width
DENSITY_BAND = "bands ± 1 s.e. across SLQ runs"


QUANTITY_COLORS = {   # one colour per measured quantity, the same in every figure of the package
    "loss": "tab:blue",
    "accuracy": "tab:green",          # and its complement, the error (in %)
    "lambda_max": "tab:red",
    "lambda_min": "tab:purple",
    "trace": "tab:orange",
    "fisher_trace": "tab:brown",
    "saddle_index": "tab:pink",       # and the SLQ mass below 0 (the negative fraction)
    "effective_dim": "tab:olive",
    "barrier": "tab:cyan",
    "instability": "teal",
    "frobenius": "navy",
    "occam": "darkgoldenrod",
    "overlap": "slategray",
}
OTHER_QUANTITY = "0.3"   # quantities the palette does not list
_QUANTITY_WORDS = (   # (palette key, words of a label naming it), first match wins: "Fisher trace" before "trace"
    ("fisher_trace", ("fisher",)), ("trace", ("trace", "tr h")),
    ("saddle_index", ("saddle", "negative", "below 0")), ("effective_dim", ("effective dim", "n_eff")),
    ("instability", ("instability",)), ("barrier", ("barrier",)),
    ("lambda_max", ("lambda_max", "λ_max", "largest", "sharpness")),
    ("lambda_min", ("lambda_min", "λ_min", "smallest")), ("frobenius", ("frobenius", "‖h‖_f")),
    ("occam", ("occam",)), ("overlap", ("overlap",)), ("accuracy", ("accuracy", "error")), ("loss", ("loss",)))


def quantity_color(name: str) -> str:
    """The colour of a measured quantity: ``name`` is a key of :data:`QUANTITY_COLORS` (``"trace"``) or a label
    naming one (``"Hessian trace per surviving weight"``, ``"largest Hessian eigenvalue"``, ``"test loss"``);
    :data:`OTHER_QUANTITY` (dark grey) for a quantity the palette does not list."""
    if name in QUANTITY_COLORS:
        return QUANTITY_COLORS[name]
    lowered = name.lower()
    return next((QUANTITY_COLORS[key] for key, words in _QUANTITY_WORDS if any(w in lowered for w in words)),
                OTHER_QUANTITY)


def quantity_shades(name: str, count: int) -> list[tuple[float, float, float]]:
    """``count`` shades of :func:`quantity_color` of ``name``, dark to light (the colour itself in the middle), for
    several curves of one quantity that must differ in colour (a dense and a sparse network's barriers)."""
    base = np.array(to_rgb(quantity_color(name)))
    mix = np.linspace(-0.45, 0.45, count) if count > 1 else np.zeros(1)   # < 0: towards black, > 0: towards white
    return [tuple(np.where(m < 0, base * (1 + m), base + m * (1 - base))) for m in mix]


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches on the Agg canvas, constrained layout, without pyplot: making it
    never changes the user's matplotlib backend or global state."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def caption(fig: Figure, text: str) -> None:
    """``text`` under the whole figure (what the bars are, how many seeds), in small type, wrapped to its width."""
    fig.supxlabel(textwrap.fill(text, width=int(16 * fig.get_figwidth())), fontsize="small", color="0.25")


def bounded_errors(values: Any, errors: Any, upper: float | None = None) -> np.ndarray:
    """``yerr`` for ``Axes.errorbar``: the ``(2, n)`` lower and upper half-widths, missing or infinite errors as
    none, and the lower ones cut at 0 when no value is negative (a non-negative quantity's bar stays above 0);
    with ``upper`` (1 for a fraction), the upper ones cut there."""
    v = np.asarray(values, dtype=float)
    e = np.asarray(errors, dtype=float)
    e = np.where(np.isfinite(e), e, 0.0)
    finite = v[np.isfinite(v)]
    lower = np.minimum(e, np.where(np.isfinite(v), np.maximum(v, 0.0), e)) if finite.size and finite.min() >= 0 else e
    higher = e if upper is None else np.minimum(e, np.where(np.isfinite(v), np.maximum(upper - v, 0.0), e))
    return np.vstack([lower, higher])


def draw_unreliable(ax, x: Any, y: Any, color: str, marker: str = "o") -> None:
    """Hollow markers at points whose result says it is unreliable, with one legend entry per axes (shown)."""
    labelled = UNRELIABLE_LABEL in ax.get_legend_handles_labels()[1]
    ax.plot(x, y, marker, ms=5, mfc="white", mec=color, mew=1.2, ls="none",
            label="_nolegend_" if labelled else UNRELIABLE_LABEL)
    ax.legend(fontsize=LEGEND_SIZE)


def plain_number(value: float) -> str:
    """``value`` to 3 significant digits without exponent: ``0.0123``, ``1000``, ``2``."""
    return np.format_float_positional(value, precision=3, unique=True, fractional=False, trim="-")


def plain_ticks(ax, axis: str = "both") -> None:
    """Tick labels written as plain numbers (``0.014``, ``2000``), never ``1.4×10⁻²`` or an offset.

    Linear axes get a :class:`~matplotlib.ticker.ScalarFormatter` without offset or scientific notation; log
    and symmetric-log axes label their major ticks positionally to 3 significant digits (``0.001``, ``1000``)
    and, on a log axis spanning less than two decades (where the powers of ten alone leave one or two labels),
    the minor ticks at 2 and 5 times them; other minor ticks stay unlabelled. Call after the data are drawn and
    the scales set.
    """
    for which in ("x", "y") if axis == "both" else (axis,):
        scale_axis = ax.xaxis if which == "x" else ax.yaxis
        if scale_axis.get_scale() in ("log", "symlog"):
            scale_axis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
            low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
            short = scale_axis.get_scale() == "log" and low > 0 and high / low < 100
            scale_axis.set_minor_formatter(FuncFormatter(_two_and_five) if short else NullFormatter())
        elif scale_axis.get_scale() == "linear":
            formatter = ScalarFormatter(useOffset=False)
            formatter.set_scientific(False)
            scale_axis.set_major_formatter(formatter)


def _two_and_five(value: float, _: Any = None) -> str:
    """A minor log tick's label when it is 2 or 5 times a power of ten, else none."""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9) if value > 0 else 0.0
    return plain_number(value) if any(abs(mantissa - m) < 1e-6 for m in (2.0, 5.0)) else ""


def error_caption(seeds: int, error: str = "s.d.", *, unit: tuple[str, str] = ("seed", "seeds")) -> str:
    """The words a legend or caption gives for error bars over seeds, e.g. ``"mean ± s.d. over 3 seeds"``.

    Args:
        seeds: the number of independent seeds behind each point.
        error: ``"s.d."`` (spread of the seeds) or ``"s.e."`` (standard error of their mean).
        unit: what was repeated, singular and plural (``("pair of copies", "pairs of copies")``).
    """
    if error not in ("s.d.", "s.e."):
        raise ValueError(f"error must be 's.d.' or 's.e.', got {error!r}")
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    return f"one {unit[0]}, no error bar" if seeds == 1 else f"mean ± {error} over {seeds} {unit[1]}"


def density_grid(densities: Any, sigma: float | None = None, points: int = 600,
                 marks: Any = ()) -> tuple[torch.Tensor, float]:
    """The eigenvalue grid and Gaussian width for drawing ``densities`` (:class:`SpectralDensity` objects) on one
    axis: ``sigma`` defaults to 1% of the range their nodes and the ``marks`` (eigenvalues to be marked) span;
    the grid reaches 5 ``sigma`` beyond it."""
    values = [float(v) for d in densities for v in (d.nodes.min(), d.nodes.max())] + [float(m) for m in marks]
    low, high = min(values), max(values)
    sigma = 0.01 * max(high - low, 1e-12) if sigma is None else sigma
    return torch.linspace(low - 5 * sigma, high + 5 * sigma, points, dtype=torch.float64), sigma


def draw_density(ax, density: SpectralDensity, grid: torch.Tensor, sigma: float, color: Any, label: str | None = None,
                 *, lw: float = 1.4, band: bool = True) -> float:
    """The Gaussian-smoothed SLQ density (:meth:`SpectralDensity.pdf`) on ``grid``, and, with ``band`` and more
    than one run, a band of ± one standard error of the mean across the runs (each run's own smoothed density),
    so that a bump a single run's quadrature nodes make shows as wide. Returns the curve's peak (for limits of a
    log density axis; the band's lower edge is kept above ``1e-7`` of it)."""
    x = grid.numpy()
    mean = density.pdf(grid, sigma).numpy()
    peak = float(mean.max())
    runs = density.nodes.shape[0]
    if band and runs > 1:
        per_run = np.stack([SpectralDensity(nodes=density.nodes[r:r + 1], weights=density.weights[r:r + 1],
                                            dim=density.dim, matvecs=0).pdf(grid, sigma).numpy()
                            for r in range(runs)])
        se = per_run.std(axis=0, ddof=1) / math.sqrt(runs)
        ax.fill_between(x, np.maximum(mean - se, peak * 1e-7), mean + se, color=color, alpha=0.2, lw=0)
    ax.plot(x, mean, lw=lw, color=color, label=label)
    return peak


def eigenvalue_floor(ax, dim: int, sigma: float, peak: float, label: bool = True) -> None:
    """A log density axis from the height of one eigenvalue's smoothed mass, ``1 / (dim σ √(2π))`` (dotted line),
    down to a third of it, up to 3 × ``peak``: the quadrature puts weights below one eigenvalue's mass between the
    spectrum's edges, which would read as structure (runs of bumps) further down."""
    height = 1.0 / (dim * sigma * math.sqrt(2 * math.pi))
    ax.set_yscale("log")
    ax.set_ylim(min(height / 3, peak * 1e-3), peak * 3)
    ax.axhline(height, color="0.4", lw=0.9, ls=":", label=f"one eigenvalue of {dim}" if label else None)


def mark_eigenvalues(ax, values: Any, color: Any) -> None:
    """Short ticks at the foot of the axes at eigenvalues computed individually (Lanczos eigen solves), to tell
    them from the smoothed quadrature nodes."""
    for value in values:
        ax.axvline(float(value), ymax=0.1, color=color, lw=1.3)
