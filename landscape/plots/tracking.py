"""One figure of everything a run's metrics.jsonl tracked: each quantity over training, and the spectral
density at each measured step.

Panels (those with records): train/test loss and accuracy (the trainer's evaluations), then each tracked
instrument's quantities (:mod:`landscape.training.tracker`) with their errors as bars (standard errors,
eigen-solver residuals and error bounds, or the total errors of the saddle index and the SLQ negative mass,
whose unreliable points are drawn hollow with a legend entry), and the SLQ spectral density of every ``density`` record,
coloured by step on a log density axis. The step axis is symmetric-log (linear below the first measured
step, logarithmic above) when the steps span two decades or more, linear otherwise. Drawn on the Agg
canvas without pyplot (see :mod:`landscape.plots.surface`).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure

from landscape.foundation.runs import Run
from landscape.linalg import SpectralDensity
from landscape.plots.style import (DENSITY_BAND, LEGEND_SIZE, bounded_errors, caption, density_grid, draw_density,
                                    draw_unreliable, eigenvalue_floor, new_figure, plain_number, plain_ticks,
                                    quantity_color)
from landscape.plots.surface import save_figure

LOG_STEPS = 100.0   # symmetric-log step axis when the last step is at least this multiple of the first positive
COLUMNS = 3
NOTES = {   # panel: what its bars are, for the caption
    "loss": "none on loss and accuracy (every sample of the split)",
    "accuracy": "none on loss and accuracy (every sample of the split)",
    "top eigenvalues": "eigenvalues ± residual", "bottom eigenvalues": "eigenvalues ± residual",
    "sharpness": "sharpness ± its error bound", "trace": "traces ± 1 s.e. of the estimator (none when exact)",
    "Fisher trace": "traces ± 1 s.e. of the estimator (none when exact)",
    "Frobenius norm": "flatness measures ± 1 s.e.", "Occam term": "flatness measures ± 1 s.e.",
    "effective dimensionality": "flatness measures ± 1 s.e.",
    "saddle index": "saddle index and SLQ mass ± their total error (95%), hollow where unreliable",
    "gradient in top-k eigenspace": "overlap ± its error"}
SKIPPED = ("step", "instrument", "tracker", "matvecs", "seconds", "samples", "dim", "k", "tol", "delta", "z",
           "threshold", "count", "exact")


@dataclass(frozen=True)
class Series:
    """One curve: ``field`` of the ``instrument``'s records (a number, or a list: one curve per entry),
    with ``error`` as error bars (``None``: none); records whose ``reliable`` field is ``False`` are drawn
    hollow. Drawn in the colour of its ``quantity`` (:func:`~landscape.plots.style.quantity_color`), with line
    style ``line`` (dashed: the train split, or a second estimate of the panel's quantity)."""
    instrument: str
    field: str
    error: str | None
    label: str
    quantity: str
    reliable: str | None = None
    fraction: bool = False   # a fraction: bars stop at 0 and 1
    line: str = "-"


PANELS: dict[str, tuple[str, list[Series]]] = {   # title: (y label, series)
    "loss": ("loss", [Series("train", "loss", None, "train", "loss", line="--"),
                      Series("test", "loss", None, "test", "loss")]),
    "accuracy": ("accuracy", [Series("train", "accuracy", None, "train", "accuracy", line="--"),
                              Series("test", "accuracy", None, "test", "accuracy")]),
    "top eigenvalues": ("eigenvalue", [Series("top_eigen", "eigenvalues", "residuals", "λ", "lambda_max")]),
    "bottom eigenvalues": ("eigenvalue", [Series("bottom_eigen", "eigenvalues", "residuals", "λ", "lambda_min")]),
    "trace": ("tr H", [Series("trace", "value", "stderr", "trace", "trace"),
                       Series("flatness", "trace", "trace_stderr", "flatness", "trace", line="--")]),
    "saddle index": ("fraction of eigenvalues", [
        Series("saddle_index", "fraction", "error", "saddle index", "saddle_index", "reliable", fraction=True),
        Series("density", "negative_fraction", "negative_fraction_error", "SLQ mass below 0", "saddle_index",
               "negative_fraction_reliable", fraction=True, line="--")]),
    "Fisher trace": ("tr F", [Series("fisher_trace", "value", "stderr", "tr F", "fisher_trace")]),
    "sharpness": ("λ_max", [Series("flatness", "lambda_max", "lambda_max_error", "λ_max", "lambda_max")]),
    "Frobenius norm": ("‖H‖_F", [Series("flatness", "frobenius", "frobenius_stderr", "‖H‖_F", "frobenius")]),
    "Occam term": ("−½ Σ log(λ⁺ + δ)", [Series("flatness", "occam", "occam_stderr", "Occam", "occam")]),
    "effective dimensionality": ("Σ λ⁺/(λ⁺ + z)", [Series("flatness", "effective_dim", "effective_dim_stderr",
                                                         "N_eff", "effective_dim")]),
    "gradient in top-k eigenspace": ("‖V_kᵀ g‖² / ‖g‖²", [Series("subspace_overlap", "fraction", "error",
                                                                  "overlap", "overlap", fraction=True)]),
}


def plot_tracking(records: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """The figure of a run's metrics records (see the module docstring)."""
    by_instrument: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if isinstance(r.get("step"), int) and isinstance(r.get("instrument"), str):
            by_instrument.setdefault(r["instrument"], []).append(r)
    panels = [(name, ylabel, present) for name, (ylabel, series) in PANELS.items()
              if (present := [s for s in series if _has(by_instrument, s)])]
    panels += _generic(by_instrument)
    densities = by_instrument.get("density", [])
    count = len(panels) + bool(densities)
    if count == 0:
        raise ValueError("no records with a step and an instrument to plot")
    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    fig = new_figure(4.4 * columns, 3.2 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).reshape(-1)
    steps = sorted({r["step"] for r in records if isinstance(r.get("step"), int)})
    for ax, (name, ylabel, series) in zip(axes, panels):
        curves = []   # (series, records, marker, legend tag): one per series and tracker that wrote it
        for s in series:
            groups = _by_tracker(by_instrument[s.instrument])
            curves += [(s, recs, "os^vD"[j % 5], f" [{tracker or 'unnamed'}]" if len(groups) > 1 else "")
                       for j, (tracker, recs) in enumerate(groups)]
        for s, recs, marker, tag in curves:
            _draw(ax, recs, s, quantity_color(s.quantity), several=len(curves) > 1, marker=marker, tag=tag)
        ax.set_title(name, fontsize="medium")
        ax.set_ylabel(ylabel)
        _step_axis(ax, steps)
        plain_ticks(ax)
        if len(curves) > 1 or any(isinstance(by_instrument[s.instrument][0].get(s.field), list) for s in series):
            ax.legend(fontsize=LEGEND_SIZE, loc="best", framealpha=0.8)
    if densities:
        _draw_densities(fig, axes[len(panels)], densities)
    for ax in axes[count:]:
        ax.set_visible(False)
    notes = dict.fromkeys(NOTES[name] for name, _, _ in panels if name in NOTES)
    if densities:
        notes[f"spectral densities: {DENSITY_BAND}, dotted: one eigenvalue's height"] = None
    caption(fig, ("One run" + (". Bars: " + "; ".join(notes) if notes else "")).rstrip(".") + ".")
    if title:
        fig.suptitle(title)
    return fig


def save_tracking(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw the run's metrics.jsonl and write it to ``out`` (default ``run_dir/figures/tracking.png``)."""
    run = Run(run_dir)
    records = run.metrics()
    if not records:
        raise ValueError(f"{run.path} has no metrics to plot (no {run.metrics_path.name}, or it is empty)")
    out = Path(out) if out is not None else run.path / "figures" / "tracking.png"
    return save_figure(plot_tracking(records, title=run.path.name), out)


def _by_tracker(recs: list[Mapping[str, Any]]) -> list[tuple[str | None, list[Mapping[str, Any]]]]:
    """The records of each tracker that wrote them (``"tracker"``; ``None`` for the unnamed one), in order."""
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for r in recs:
        groups.setdefault(r.get("tracker"), []).append(r)
    return list(groups.items())


def _has(by_instrument: Mapping[str, list], series: Series) -> bool:
    return any(isinstance(r.get(series.field), (int, float, list)) and not isinstance(r.get(series.field), bool)
               for r in by_instrument.get(series.instrument, []))


def _generic(by_instrument: Mapping[str, list]) -> list[tuple[str, str, list[Series]]]:
    """Panels for instruments the table does not know: every numeric field, its ``<field>_stderr`` as errors."""
    known = {s.instrument for _, series in PANELS.values() for s in series} | {"density"}
    panels = []
    for instrument, recs in by_instrument.items():
        if instrument in known:
            continue
        fields = [k for k, v in recs[0].items() if k not in SKIPPED and isinstance(v, (int, float))
                  and not isinstance(v, bool) and not k.endswith(("_stderr", "_error", "stderr", "error"))]
        for f in fields:
            error = next((e for e in (f"{f}_stderr", f"{f}_error", "stderr" if f in ("value", "fraction") else "")
                          if e and e in recs[0]), None)
            panels.append((f"{instrument}: {f}", f, [Series(instrument, f, error, f, f"{instrument} {f}")]))
    return panels


def _draw(ax, recs: list[Mapping[str, Any]], s: Series, color: str, several: bool, marker: str = "o",
          tag: str = "") -> None:
    """One series; ``marker`` and ``tag`` (a legend suffix) tell apart the trackers that wrote it."""
    recs = [r for r in recs if r.get(s.field) is not None]
    steps = np.array([r["step"] for r in recs])
    values = [r[s.field] for r in recs]
    errors = [r.get(s.error) if s.error else None for r in recs]
    if isinstance(values[0], list):   # one curve per index: eigenvalue 1, 2, ...
        width = max(len(v) for v in values)
        for j in range(width):
            y = np.array([v[j] if j < len(v) else np.nan for v in values], dtype=float)
            e = np.array([(err[j] if isinstance(err, list) and j < len(err) else 0.0) for err in errors], dtype=float)
            ax.errorbar(steps, y, yerr=_finite(e), fmt=f"-{marker}", ms=2.5, lw=1.0, capsize=1.5,
                        color=colormaps["viridis"](0.85 * j / max(width - 1, 1)), label=f"{s.label}{j + 1}{tag}")
        return
    y = np.array(values, dtype=float)
    e = _finite(np.array([err if isinstance(err, (int, float)) else 0.0 for err in errors], dtype=float))
    unreliable = np.array([s.reliable is not None and r.get(s.reliable) is False for r in recs])
    ax.errorbar(steps, y, yerr=bounded_errors(y, e, 1.0 if s.fraction else None) if s.error else None, fmt=s.line,
                lw=1.2, capsize=2, color=color,
                label=f"{s.label}{tag}" if several else None)
    ax.plot(steps[~unreliable], y[~unreliable], marker, ms=3, ls="none", color=color)
    if unreliable.any():
        draw_unreliable(ax, steps[unreliable], y[unreliable], color, marker)


def _finite(e: np.ndarray) -> np.ndarray:
    """Error bars with infinite or missing errors drawn as none."""
    return np.where(np.isfinite(e), e, 0.0)


def _step_axis(ax, steps: list[int]) -> None:
    positive = [s for s in steps if s > 0]
    if positive and positive[-1] >= LOG_STEPS * positive[0]:
        ax.set_xscale("symlog", linthresh=positive[0])
        ax.set_xlabel("step (symmetric log)")
    else:
        ax.set_xlabel("step")
    ax.grid(alpha=0.3)


def _draw_densities(fig: Figure, ax, recs: list[Mapping[str, Any]]) -> None:
    """The smoothed SLQ density of every record, coloured by step, on a log density axis."""
    densities = [(r["step"], SpectralDensity(nodes=torch.tensor(r["nodes"], dtype=torch.float64),
                                             weights=torch.tensor(r["weights"], dtype=torch.float64),
                                             dim=int(r.get("dim", 0)), matvecs=int(r.get("matvecs", 0))))
                 for r in recs]
    grid, sigma = density_grid([d for _, d in densities])
    steps = [s for s, _ in densities]
    positive = sorted(s for s in steps if s > 0)
    if positive and positive[-1] >= LOG_STEPS * positive[0]:   # log-spaced steps: colours by log step
        norm: Normalize = SymLogNorm(linthresh=positive[0], vmin=min(steps), vmax=max(steps))
    else:
        norm = Normalize(min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1)
    cmap = colormaps["viridis"]
    peak = 0.0
    for step, d in densities:
        peak = max(peak, draw_density(ax, d, grid, sigma, cmap(norm(step)), lw=1.0))
    dim = max(d.dim for _, d in densities)
    if dim > 0:
        eigenvalue_floor(ax, dim, sigma, peak, label=False)
    else:   # records without the dimension
        ax.set_yscale("log")
        ax.set_ylim(peak * 1e-6, peak * 2)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (Gaussian σ = {plain_number(sigma)})")
    ax.set_title("spectral density (SLQ) per step", fontsize="medium")
    plain_ticks(ax)
    ax.grid(alpha=0.3)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    bar.set_label("step")
    plain_ticks(bar.ax, "y")
