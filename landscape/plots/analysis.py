"""Figures of a checkpoint analysis (:mod:`landscape.analysis.analyze`): eigenvalues and scalar measures over
checkpoints.

Drawn on the Agg canvas without pyplot (see :mod:`landscape.plots.surface`); save with
:func:`~landscape.plots.surface.save_figure`. Spectral densities use
:func:`landscape.plots.pruning.plot_spectral_densities` and interpolation paths
:func:`landscape.plots.surface.plot_interpolation`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from landscape.plots.style import (LEGEND_SIZE, bounded_errors, caption, draw_unreliable, new_figure, plain_ticks,
                                    quantity_color)


def _positions(labels: Sequence[str], steps: Sequence[int | None]) -> tuple[np.ndarray, str, bool]:
    """The x positions: the steps when they are distinct integers, else 0, 1, ... with the labels as ticks."""
    if all(isinstance(s, int) and s >= 0 for s in steps) and len(set(steps)) == len(steps):
        return np.asarray(steps, dtype=float), "training step", False
    return np.arange(len(labels), dtype=float), "checkpoint", True


def plot_eigenvalues(labels: Sequence[str], steps: Sequence[int | None], top: Sequence[Sequence[float]],
                     top_residuals: Sequence[Sequence[float]], bottom: Sequence[Sequence[float]],
                     bottom_residuals: Sequence[Sequence[float]], *, title: str | None = None) -> Figure:
    """The ``k`` largest (left) and smallest (right) Hessian eigenvalues at each checkpoint, with error bars of
    their residuals ``||H v − θ v||``, which bound the distance from each Ritz value θ to an eigenvalue.

    Args:
        labels, steps: one per checkpoint; the x axis is the step when the steps are distinct.
        top, bottom: ``(C, k)`` eigenvalues (loss per parameter²), largest first / smallest first.
        top_residuals, bottom_residuals: ``(C, k)`` residuals in the same units.
    """
    x, xlabel, categorical = _positions(labels, steps)
    fig = new_figure(10.5, 3.9)
    axes = fig.subplots(1, 2)
    for ax, values, residuals, name in ((axes[0], top, top_residuals, "largest"),
                                        (axes[1], bottom, bottom_residuals, "smallest")):
        v, r = np.asarray(values, dtype=float), np.asarray(residuals, dtype=float)
        if v.shape != r.shape or v.ndim != 2 or v.shape[0] != x.size:
            raise ValueError(f"{name} eigenvalues of shape {v.shape} and residuals {r.shape} do not fit "
                             f"{x.size} checkpoints")
        for j in range(v.shape[1]):
            ax.errorbar(x, v[:, j], yerr=r[:, j], fmt="-o", ms=3, lw=1.2, capsize=2,
                        color=f"C{j % 10}", label=f"{name} #{j + 1}")
        ax.axhline(0.0, color="k", lw=0.7)
        ax.set_title(f"{name} Hessian eigenvalues (bars: residual)")
        ax.set_ylabel("eigenvalue")
        ax.set_xlabel(xlabel)
        plain_ticks(ax)
        if categorical:
            ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=LEGEND_SIZE)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=LEGEND_SIZE)
    if title:
        fig.suptitle(title)
    return fig


def plot_measures(labels: Sequence[str], steps: Sequence[int | None],
                  measures: Mapping[str, tuple[Sequence[float | None], ...]], *,
                  xscale: str = "linear", title: str | None = None, note: str | None = None) -> Figure:
    """Scalar measures at each checkpoint with their errors, one panel per measure.

    Args:
        labels, steps: one per checkpoint (see :func:`plot_eigenvalues`).
        measures: ``{axis label: (values, errors)}`` or ``(values, errors, reliable)``; ``None`` entries are
            not drawn (no bar for a ``None`` error). Points whose ``reliable`` is ``False`` (a result that
            says its error is too large to read it as a number) are drawn hollow, with a legend entry. A panel
            uses a log scale when its values are positive and span more than a factor of 10, and the colour of
            the quantity its label names (:func:`~landscape.plots.style.quantity_color`).
        xscale: matplotlib scale of the step axis, e.g. ``"symlog"`` for log-spaced steps that include 0.
        note: a caption under the figure: what the error bars are, and of how many networks or seeds.
    """
    if not measures:
        raise ValueError("no measures to plot")
    x, xlabel, categorical = _positions(labels, steps)
    fig = new_figure(3.6 * len(measures), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(measures)))
    for ax, (label, (values, errors, *flags)) in zip(axes, measures.items()):
        v = np.array([np.nan if a is None else a for a in values], dtype=float)
        e = np.array([0.0 if b is None else b for b in errors], dtype=float)
        unreliable = np.array([f is False for f in flags[0]] if flags else [False] * v.size)
        color = quantity_color(label)
        ax.errorbar(x, v, yerr=bounded_errors(v, e), fmt="-", lw=1.3, capsize=2, color=color)
        ax.plot(x[~unreliable], v[~unreliable], "o", ms=3.5, color=color)
        if unreliable.any():
            draw_unreliable(ax, x[unreliable], v[unreliable], color)
        finite = v[np.isfinite(v)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.set_xlabel(xlabel)
        if categorical:
            ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=LEGEND_SIZE)
        elif xscale == "symlog":   # linear up to the first positive step, nothing drawn left of 0
            positive = np.asarray(x, dtype=float)[np.asarray(x, dtype=float) > 0]
            linthresh = float(positive.min()) if positive.size else 1.0
            ax.set_xscale("symlog", linthresh=linthresh)
            ax.set_xlim(-0.3 * linthresh, 1.3 * float(np.max(x)))   # the end points whole, not cut by the frame
        else:
            ax.set_xscale(xscale)
        plain_ticks(ax, "y" if categorical else "both")
        ax.grid(alpha=0.3, which="both")
    if note:
        caption(fig, note)
    if title:
        fig.suptitle(title)
    return fig


def measure_series(checkpoints: Sequence[Mapping[str, Any]], key: str,
                   error: str = "stderr") -> tuple[list[Any], list[Any], list[Any]]:
    """The values of ``key``, ``key + "_" + error`` (e.g. ``"stderr"``, or ``"error"`` for a total error) and
    ``key + "_reliable"`` across checkpoint records (``None`` where absent)."""
    return ([c.get(key) for c in checkpoints], [c.get(f"{key}_{error}") for c in checkpoints],
            [c.get(f"{key}_reliable") for c in checkpoints])
