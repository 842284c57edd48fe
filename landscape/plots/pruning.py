"""Figures of lottery-ticket experiments: accuracy against sparsity, spectral densities, curvature against sparsity.

Drawn on the Agg canvas without pyplot (see :mod:`landscape.plots.surface`); save with
:func:`~landscape.plots.surface.save_figure`, which writes atomically. The fraction of weights remaining is
drawn on a log axis running from dense (left) to sparse (right), as in Frankle & Carbin (2019).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from landscape.linalg import SpectralDensity
from landscape.plots.style import bounded_errors, draw_unreliable
from landscape.plots.surface import _figure

REMAINING_LABEL = "weights remaining (%)"


def plot_accuracy_vs_density(curves: Mapping[str, tuple[Sequence[float], Any]], *,
                             dense: Sequence[float] | None = None, title: str | None = None,
                             ylabel: str = "test accuracy (%)") -> Figure:
    """Accuracy against the fraction of weights remaining, one curve per method, with the spread over seeds.

    Args:
        curves: ``{label: (densities, accuracies)}`` with ``densities`` of shape ``(P,)`` (fractions in (0, 1])
            and ``accuracies`` of shape ``(S, P)`` (fractions, one row per seed; ``(P,)`` for one seed). The
            line is the mean over seeds, the band the minimum to maximum, the error bars the sample standard
            deviation.
        dense: the dense network's accuracy per seed, drawn as a horizontal line with its range.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    if dense is not None and len(dense):
        values = 100 * np.asarray(dense, dtype=float)
        ax.axhline(values.mean(), color="k", lw=1, ls="--", label=f"dense ({values.mean():.1f}%)")
        if values.size > 1:
            ax.axhspan(values.min(), values.max(), color="k", alpha=0.08, lw=0)
    for i, (label, (densities, accuracies)) in enumerate(curves.items()):
        x = 100 * np.asarray(densities, dtype=float)
        y = 100 * np.atleast_2d(np.asarray(accuracies, dtype=float))
        if y.shape[1] != x.size:
            raise ValueError(f"curve {label!r}: {x.size} densities but accuracies of shape {y.shape}")
        mean = y.mean(axis=0)
        std = y.std(axis=0, ddof=1) if y.shape[0] > 1 else None
        ax.errorbar(x, mean, yerr=std, fmt="-o", ms=3.5, lw=1.5, capsize=2, color=f"C{i}",
                    label=f"{label} ({y.shape[0]} seed{'s' if y.shape[0] > 1 else ''})")
        if y.shape[0] > 1:
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
    _remaining_axis(ax)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_spectral_densities(densities: Mapping[str, SpectralDensity], *, sigma: float | None = None,
                            points: int = 600, title: str | None = None) -> Figure:
    """Smoothed spectral densities (:meth:`SpectralDensity.pdf`) overlaid on one eigenvalue axis, log density.

    ``sigma`` (eigenvalue units) defaults to 1% of the widest spectrum's range. Each density integrates to 1
    (it is normalised by the operator's dimension), so networks of different sizes compare directly.
    """
    if not densities:
        raise ValueError("no spectral densities to plot")
    low = min(float(d.nodes.min()) for d in densities.values())
    high = max(float(d.nodes.max()) for d in densities.values())
    span = max(high - low, 1e-12)
    sigma = 0.01 * span if sigma is None else sigma
    grid = torch.linspace(low - 5 * sigma, high + 5 * sigma, points, dtype=torch.float64)
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    peak = 0.0
    for i, (label, d) in enumerate(densities.items()):
        pdf = d.pdf(grid, sigma).numpy()
        peak = max(peak, float(pdf.max()))
        ax.plot(grid.numpy(), pdf, lw=1.4, color=_ordered_color(i, len(densities)), label=f"{label} (n={d.dim})")
    ax.set_yscale("log")
    ax.set_ylim(peak * 1e-7, peak * 3)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel(f"spectral density (Gaussian σ = {sigma:.2g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_curvature_vs_density(rows: Sequence[Mapping[str, Any]], measures: Mapping[str, str], *,
                              group: str = "kind", title: str | None = None) -> Figure:
    """Curvature measures against the fraction of weights remaining, one panel per measure, one line per group.

    Args:
        rows: records with ``"density"``, the ``group`` key and the measures (``None`` or missing: not drawn);
            rows of the group ``"dense"`` are drawn as horizontal lines. A measure ``key`` with ``key + "_error"``
            in the rows (a total error, e.g. the saddle index's) gets error bars (a band for dense), and points
            whose ``key + "_reliable"`` is ``False`` are drawn hollow, with a legend entry.
        measures: ``{row key: axis label}``; a panel uses a log scale when its values are positive and span
            more than a factor of 10.
    """
    if not measures:
        raise ValueError("no measures to plot")
    cols = min(3, len(measures))
    nrows = -(-len(measures) // cols)
    fig = _figure(4.3 * cols, 3.3 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).reshape(-1)
    groups = [g for g in dict.fromkeys(str(r[group]) for r in rows) if g != "dense"]
    for ax, (key, label) in zip(axes, measures.items()):
        drawn: list[float] = []
        for i, name in [(-1, "dense"), *enumerate(groups)]:
            points = sorted(((float(r["density"]), float(r[key]), r.get(f"{key}_error"), r.get(f"{key}_reliable"))
                             for r in rows if str(r[group]) == name and r.get(key) is not None
                             and np.isfinite(r[key])), key=lambda p: p[:2])
            if not points:
                continue
            x, y = (100 * np.array([p[0] for p in points]), np.array([p[1] for p in points]))
            error = np.array([np.nan if p[2] is None else p[2] for p in points], dtype=float)
            unreliable = np.array([p[3] is False for p in points])
            drawn += y.tolist()
            if name == "dense":
                ax.axhline(float(y.mean()), color="k", ls="--", lw=1,
                           label="dense (unreliable)" if unreliable.any() else "dense")
                if np.isfinite(error).any():
                    (low,), (high,) = bounded_errors([y.mean()], [np.nanmax(error)])
                    ax.axhspan(float(y.mean() - low), float(y.mean() + high), color="k", alpha=0.08, lw=0)
            else:
                ax.errorbar(x, y, yerr=bounded_errors(y, error) if np.isfinite(error).any() else None,
                            fmt="-", lw=1.3, capsize=2, color=f"C{i}", label=name)
                ax.plot(x[~unreliable], y[~unreliable], "o", ms=3, color=f"C{i}")
                if unreliable.any():
                    draw_unreliable(ax, x[unreliable], y[unreliable], f"C{i}")
        values = np.asarray(drawn)
        if values.size and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
        _remaining_axis(ax)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[len(measures):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _remaining_axis(ax) -> None:
    """Log x axis of the percentage of weights remaining, dense on the left, ticks at 100, 50, 20, 10, 5, ... and
    at the ends of the data (unless one of those is within 20% of an end)."""
    ax.set_xscale("log")
    low, high = sorted(ax.dataLim.intervalx)
    ticks = [m * 10.0 ** e for e in range(2, -5, -1) for m in (1, 2, 5) if low <= m * 10.0 ** e <= high * (1 + 1e-9)]
    ticks += [end for end in (low, high) if all(abs(np.log(end / t)) > np.log(1.2) for t in ticks)]
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.invert_xaxis()
    ax.set_xlabel(REMAINING_LABEL)


def _ordered_color(i: int, count: int) -> Any:
    """The first curve black (the dense reference), the others along viridis (dense to sparse)."""
    if i == 0:
        return "k"
    return colormaps["viridis"]((i - 1) / max(count - 2, 1) * 0.9)
