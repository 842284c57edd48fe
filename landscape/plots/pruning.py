"""Figures of lottery-ticket experiments: accuracy against sparsity, spectral densities, curvature against sparsity.

Drawn on the Agg canvas without pyplot (see :mod:`landscape.plots.surface`); save with
:func:`~landscape.plots.surface.save_figure`, which writes atomically. The fraction of weights remaining is
drawn on a log axis running from dense (left) to sparse (right), as in Frankle & Carbin (2019).
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from landscape.linalg import SpectralDensity
from landscape.plots.style import (DENSITY_BAND, LEGEND_SIZE, bounded_errors, caption, density_grid, draw_density,
                                    draw_unreliable, eigenvalue_floor, error_caption, mark_eigenvalues, new_figure,
                                    plain_number, plain_ticks, quantity_color)

REMAINING_LABEL = "weights remaining (%)"


def plot_accuracy_vs_density(curves: Mapping[str, tuple[Sequence[float], Any]], *,
                             dense: Sequence[float] | None = None, title: str | None = None,
                             ylabel: str = "test accuracy (%)", test_samples: int | None = None) -> Figure:
    """Accuracy against the fraction of weights remaining, one curve per method, with the spread over seeds.

    Args:
        curves: ``{label: (densities, accuracies)}`` with ``densities`` of shape ``(P,)`` (fractions in (0, 1])
            and ``accuracies`` of shape ``(S, P)`` (fractions, one row per seed; ``(P,)`` for one seed). The
            line is the mean over seeds, the band the minimum to maximum, the error bars the sample standard
            deviation; the legend gives each curve's number of seeds.
        dense: the dense network's accuracy per seed, drawn as a horizontal line with its range.
        test_samples: the size of the test set: a single seed's accuracy then gets bars (a band for dense) of ± its
            binomial standard error ``sqrt(p (1 − p) / test_samples)``, the sampling error of the test set.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    def binomial(p: np.ndarray) -> np.ndarray:   # in %, of accuracies in %
        return 100 * np.sqrt(p / 100 * (1 - p / 100) / test_samples)

    single = f"one seed, ± binomial s.e. over {test_samples} test samples" if test_samples else error_caption(1)
    if dense is not None and len(dense):
        values = 100 * np.asarray(dense, dtype=float)
        ax.axhline(values.mean(), color="k", lw=1, ls="--",
                   label=f"dense ({values.mean():.1f}%; {single if values.size == 1 else error_caption(values.size)})")
        if values.size > 1:
            ax.axhspan(values.min(), values.max(), color="k", alpha=0.08, lw=0)
        elif test_samples:
            ax.axhspan(*(values[0] + np.array([-1, 1]) * binomial(values)[0]), color="k", alpha=0.08, lw=0)
    for i, (label, (densities, accuracies)) in enumerate(curves.items()):
        x = 100 * np.asarray(densities, dtype=float)
        y = 100 * np.atleast_2d(np.asarray(accuracies, dtype=float))
        if y.shape[1] != x.size:
            raise ValueError(f"curve {label!r}: {x.size} densities but accuracies of shape {y.shape}")
        mean = y.mean(axis=0)
        std = y.std(axis=0, ddof=1) if y.shape[0] > 1 else binomial(mean) if test_samples else None
        ax.errorbar(x, mean, yerr=None if std is None else bounded_errors(mean, std), fmt="-o", ms=3.5, lw=1.5,
                    capsize=2, color=f"C{i}",
                    label=f"{label} ({single if y.shape[0] == 1 else error_caption(y.shape[0])})")
        if y.shape[0] > 1:
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=f"C{i}", alpha=0.15, lw=0)
    _remaining_axis(ax)
    ax.set_ylabel(ylabel)
    plain_ticks(ax, "y")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=LEGEND_SIZE, title="bands: range over seeds" if any(
        np.atleast_2d(np.asarray(a)).shape[0] > 1 for _, a in curves.values()) else None,
        title_fontsize=LEGEND_SIZE - 1)
    if title:
        ax.set_title(title)
    return fig


def plot_spectral_densities(densities: Mapping[str, SpectralDensity], *, sigma: float | None = None,
                            points: int = 600, title: str | None = None,
                            eigenvalues: Mapping[str, Sequence[float]] | None = None,
                            reference: bool = True) -> Figure:
    """Smoothed spectral densities (:meth:`SpectralDensity.pdf`) overlaid on one eigenvalue axis, log density, each
    with a band of ± one standard error across its SLQ runs (:func:`~landscape.plots.style.draw_density`).

    ``sigma`` (eigenvalue units, stated on the axis) defaults to 1% of the range of the nodes and of the marked
    eigenvalues. Each density integrates to 1 (it is normalised by the operator's dimension), so networks of
    different sizes compare directly. ``eigenvalues``: ``{label: eigenvalues}`` computed individually (the
    extreme ones from the Lanczos eigen solves), marked as ticks at the foot of the axes in the curve's colour, so
    that the spectrum's true edges are told from the quadrature nodes. ``reference``: the first density is a
    reference (the dense network), drawn black; otherwise all follow viridis in order (checkpoints in time).
    """
    if not densities:
        raise ValueError("no spectral densities to plot")
    eigenvalues = dict(eigenvalues or {})
    grid, sigma = density_grid(densities.values(), sigma, points, [v for vs in eigenvalues.values() for v in vs])
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    peak = 0.0
    for i, (label, d) in enumerate(densities.items()):
        color = (_ordered_color(i, len(densities)) if reference
                 else colormaps["viridis"](i / max(len(densities) - 1, 1) * 0.9))
        peak = max(peak, draw_density(ax, d, grid, sigma, color, f"{label} (n={d.dim})"))
        mark_eigenvalues(ax, eigenvalues.get(label, ()), color)
    eigenvalue_floor(ax, max(d.dim for d in densities.values()), sigma, peak)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel(f"spectral density (Gaussian σ = {plain_number(sigma)})")
    plain_ticks(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND_SIZE, title=f"{DENSITY_BAND}" + ("; ticks: extreme eigenvalues" if eigenvalues else ""),
              title_fontsize=LEGEND_SIZE - 1)
    if title:
        ax.set_title(title)
    return fig


GROUP_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "P"))   # line, marker


def plot_curvature_vs_density(rows: Sequence[Mapping[str, Any]], measures: Mapping[str, str], *,
                              group: str = "kind", title: str | None = None, scales: Mapping[str, float] = {},
                              note: str | None = None) -> Figure:
    """Curvature measures against the fraction of weights remaining, one panel per measure, one line per group.

    Args:
        rows: records with ``"density"``, the ``group`` key and the measures (``None`` or missing: not drawn);
            rows of the group ``"dense"`` are drawn as horizontal lines. A measure ``key`` with an error in the
            rows (``key + "_error"``: the saddle index's total error, a standard error, a residual; say which in
            ``note``) gets error bars (a band for dense), and points whose ``key + "_reliable"`` is ``False`` are
            drawn hollow, with a legend entry.
        measures: ``{row key: axis label}``; a panel uses a log scale when its values are positive and span
            more than a factor of 10, and the colour of its quantity (:func:`~landscape.plots.style.quantity_color`
            of the key); the groups differ by marker and line style.
        scales: ``{row key: factor}`` applied to a measure and its error before drawing (100: a fraction drawn in
            percentage points, as the tables give it).
        note: a caption under the figure (what the bars are).
    """
    if not measures:
        raise ValueError("no measures to plot")
    cols = min(3, len(measures))
    nrows = -(-len(measures) // cols)
    fig = new_figure(3.7 * cols, 3.0 * nrows)   # small enough that its text stays legible at a page's width
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).reshape(-1)
    groups = [g for g in dict.fromkeys(str(r[group]) for r in rows) if g != "dense"]
    for ax, (key, label) in zip(axes, measures.items()):
        color = quantity_color(key)
        drawn: list[float] = []
        for i, name in [(-1, "dense"), *enumerate(groups)]:
            points = sorted(((float(r["density"]), float(r[key]), r.get(f"{key}_error"),
                              r.get(f"{key}_reliable"))
                             for r in rows if str(r[group]) == name and r.get(key) is not None
                             and np.isfinite(r[key])), key=lambda p: p[:2])
            if not points:
                continue
            scale = scales.get(key, 1.0)
            x, y = (100 * np.array([p[0] for p in points]), scale * np.array([p[1] for p in points]))
            error = scale * np.array([np.nan if p[2] is None else p[2] for p in points], dtype=float)
            unreliable = np.array([p[3] is False for p in points])
            drawn += y.tolist()
            if name == "dense":
                ax.axhline(float(y.mean()), color="k", ls="--", lw=1,
                           label="dense (unreliable)" if unreliable.any() else "dense")
                if np.isfinite(error).any():
                    (low,), (high,) = bounded_errors([y.mean()], [np.nanmax(error)])
                    ax.axhspan(float(y.mean() - low), float(y.mean() + high), color="k", alpha=0.08, lw=0)
            else:
                line, marker = GROUP_STYLES[i % len(GROUP_STYLES)]
                ax.errorbar(x, y, yerr=bounded_errors(y, error) if np.isfinite(error).any() else None,
                            fmt=line, lw=1.3, capsize=2, color=color, label=name)
                ax.plot(x[~unreliable], y[~unreliable], marker, ms=3.5, color=color)
                if unreliable.any():
                    draw_unreliable(ax, x[unreliable], y[unreliable], color, marker)
        values = np.asarray(drawn)
        if values.size and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
        _remaining_axis(ax)
        plain_ticks(ax, "y")
        ax.set_ylabel(textwrap.fill(label, 28))   # a long label on two lines, not cut by the figure's edge
        ax.grid(alpha=0.3, which="both")
    for ax in axes[len(measures):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=LEGEND_SIZE)
    if note or len(groups) > 1:
        caption(fig, " ".join(filter(None, (note, "Each measure keeps its colour in every figure; marker and line "
                                                  "style tell the groups apart." if len(groups) > 1 else None))))
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
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
    ax.invert_xaxis()
    ax.set_xlabel(REMAINING_LABEL)


def _ordered_color(i: int, count: int) -> Any:
    """The first curve black (the dense reference), the others along viridis (dense to sparse)."""
    if i == 0:
        return "k"
    return colormaps["viridis"]((i - 1) / max(count - 2, 1) * 0.9)
