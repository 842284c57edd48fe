"""Figures of interpolation paths and loss-surface slices, from their saved arrays.

Figures are built on the Agg canvas without pyplot, so making them never changes the user's matplotlib
backend or global state. Each ``plot_*`` function returns a :class:`matplotlib.figure.Figure`;
:func:`save_figure` writes it atomically, and :func:`save_interpolation` / :func:`save_surface` write the
figure together with the ``.npz`` arrays it was drawn from, so it can be redrawn without recomputing
(``plot_surface_contour(LossSurface.load(path))``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator

from landscape.connectivity.interpolation import Barrier, InterpolationResult
from landscape.connectivity.surface import LossSurface
from landscape.plots.style import LEGEND_SIZE, caption, new_figure, plain_number, plain_ticks, quantity_color

LOG_RATIO = 10.0  # log-scaled loss levels when the finite loss spans at least this factor
ALPHA_LABEL = "interpolation coefficient α (0 = A, 1 = B)"
PLAIN = FuncFormatter(lambda value, _: plain_number(value))   # colorbar ticks: 0.014, 2000


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 200) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _use_log(values: np.ndarray, log: bool | None) -> bool:
    finite = values[np.isfinite(values)]
    positive = finite.size > 0 and finite.min() > 0
    if log is None:
        return bool(positive and finite.max() / finite.min() >= LOG_RATIO)
    if log and not positive:
        raise ValueError("a log scale needs a positive loss")
    return log


def plot_interpolation(results: InterpolationResult | Mapping[str, InterpolationResult], *,
                       loss_label: str = "loss", title: str | None = None) -> Figure:
    """Loss (left) and error in % (right, for classification) against α, one curve per data set.

    Each curve's barriers are marked in its colour: Frankle et al.'s as a dashed level at the mean of the
    endpoint values with an arrow up to the peak, Entezari et al.'s as a dotted chord between the
    endpoints with an arrow from the chord to the curve; each panel's title gives the heights and their
    α. Extrapolated α (outside [0, 1]) are shaded.
    """
    sets = dict(results) if isinstance(results, Mapping) else {results.name: results}
    if not sets:
        raise ValueError("no interpolation results to plot")
    panels = [("loss", loss_label, 1.0, "")]
    if all(r.is_classification for r in sets.values()):
        panels.append(("error", "error (%)", 100.0, "%"))
    fig = new_figure(5.5 * len(panels), 3.9 + 0.2 * len(sets))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (quantity, ylabel, scale, unit) in zip(axes, panels):
        heights = []
        for i, (name, r) in enumerate(sets.items()):
            color = f"C{i}"
            values = (r.loss if quantity == "loss" else r.error) * scale
            ax.plot(r.alphas, values, "-o", color=color, ms=3, lw=1.5, label=name)
            frankle, entezari = _mark_barriers(ax, r, quantity, scale, color)
            heights.append(f"{name}: Frankle {frankle.height * scale:.3g}{unit} (α = {frankle.alpha:.2f}), "
                           f"Entezari {entezari.height * scale:.3g}{unit} (α = {entezari.alpha:.2f})")
        ax.plot([], [], "--", color="0.4", lw=0.9, label="mean of endpoints")
        ax.plot([], [], ":", color="0.4", lw=1.2, label="line between endpoints")
        lo, hi = min(r.alphas.min() for r in sets.values()), max(r.alphas.max() for r in sets.values())
        if lo < 0:
            ax.axvspan(lo, 0.0, color="0.92", zorder=0, label="extrapolation")
        if hi > 1:
            ax.axvspan(1.0, hi, color="0.92", zorder=0, label=None if lo < 0 else "extrapolation")
        ax.set_title(f"{quantity} barrier\n" + "\n".join(heights), fontsize="small")
        ax.set_xlabel(ALPHA_LABEL)
        ax.set_ylabel(ylabel)
        plain_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=LEGEND_SIZE, loc="best", framealpha=0.8)
    caption(fig, "Each curve: one pair of networks, every point evaluated on all samples of its split (no estimator, "
                 "so no bars)" + ("; error barriers in percentage points." if len(panels) > 1 else "."))
    if title:
        fig.suptitle(title)
    return fig


def _mark_barriers(ax, r: InterpolationResult, quantity: str, scale: float, color: str) -> tuple[Barrier, Barrier]:
    """Draw both barriers of one curve; return them (Frankle, Entezari)."""
    v = (r.loss if quantity == "loss" else r.error) * scale
    v0, v1 = v[r.alphas == 0.0][0], v[r.alphas == 1.0][0]
    frankle = r.barrier_of(quantity, "frankle")
    entezari = r.barrier_of(quantity, "entezari")
    ax.hlines(frankle.baseline * scale, 0.0, 1.0, colors=color, linestyles="--", lw=0.9)
    ax.plot([0.0, 1.0], [v0, v1], ":", color=color, lw=1.2)
    for b, offset in ((frankle, 0.0), (entezari, 0.012)):  # offset: both arrows stay visible at one α
        ax.annotate("", xy=(b.alpha + offset, (b.baseline + b.height) * scale),
                    xytext=(b.alpha + offset, b.baseline * scale),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.0, shrinkA=0, shrinkB=0))
    return frankle, entezari


def _exact_caption(surface: LossSurface, loss_label: str, data: str) -> str:
    """The caption of a slice: each point is computed on every sample, so no bars."""
    what = f"the mean {loss_label}" + (" and the error" if surface.error is not None and surface.ndim == 1 else "")
    return f"Each point: {what} of the perturbed network on every sample of {data} (exact, no sampling, so no bars)."


def plot_slice(surface: LossSurface, *, loss_label: str = "loss", title: str | None = None,
               data: str = "the data") -> Figure:
    """A 1-D slice: loss (left) and error in % (right, for classification) against α; the caption names ``data``,
    the samples every point was evaluated on."""
    if surface.ndim != 1:
        raise ValueError("plot_slice draws 1-D slices; use plot_surface_contour for 2-D ones")
    panels = [(surface.loss, loss_label, quantity_color("loss"))]
    if surface.error is not None:
        panels.append((100.0 * surface.error, "error (%)", quantity_color("error")))
    fig = new_figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (values, ylabel, color) in zip(axes, panels):
        ax.plot(surface.alphas, values, "-o", ms=3, color=color, lw=1.5)
        if surface.alphas.min() <= 0.0 <= surface.alphas.max():
            ax.axvline(0.0, color="0.5", lw=0.8, ls="--", label="model")
            ax.legend(fontsize=LEGEND_SIZE)
        if ylabel == loss_label and _use_log(values, None):
            ax.set_yscale("log")
        ax.set_xlabel(surface.labels[0])
        ax.set_ylabel(ylabel)
        plain_ticks(ax)
        ax.grid(alpha=0.3)
    caption(fig, _exact_caption(surface, loss_label, data))
    if title:
        fig.suptitle(title)
    return fig


def plot_surface_contour(surface: LossSurface, *, levels: int = 30, log: bool | None = None,
                         loss_label: str = "loss", title: str | None = None, data: str = "the data") -> Figure:
    """Filled contours of a 2-D slice's loss with a colorbar, the minimum (★) and the model (+) marked,
    and the trajectory overlaid when the slice has one (PCA). Levels are log-spaced when the loss spans
    a decade or more (``log=None``), or as ``log`` says. The caption names ``data``, the samples every point
    was evaluated on."""
    if surface.ndim != 2:
        raise ValueError("plot_surface_contour draws 2-D slices; use plot_slice for 1-D ones")
    z = np.ma.masked_invalid(surface.loss.T)  # rows follow betas (y), columns alphas (x)
    use_log = _use_log(surface.loss, log)
    lo, hi = float(z.min()), float(z.max())
    if use_log:
        bounds, norm = np.geomspace(lo, hi, levels), LogNorm(lo, hi)
    else:
        bounds, norm = MaxNLocator(nbins=levels).tick_values(lo, hi if hi > lo else lo + 1.0), None
    fig = new_figure(5.6, 4.6)
    ax = fig.add_subplot()
    filled = ax.contourf(surface.alphas, surface.betas, z, levels=bounds, norm=norm, cmap="viridis",
                         extend="neither")
    ax.contour(surface.alphas, surface.betas, z, levels=bounds[::3], norm=norm, colors="k",
               linewidths=0.4, alpha=0.5)
    if use_log:  # 1-2-5 ticks over at most three decades, decades beyond
        subs = (1.0, 2.0, 5.0) if np.log10(hi / lo) <= 3 else (1.0,)
        bar = fig.colorbar(filled, ax=ax, ticks=LogLocator(subs=subs), format=PLAIN)
        bar.set_label(f"{loss_label} (log scale)")
    else:
        bar = fig.colorbar(filled, ax=ax, ticks=MaxNLocator(8))
        bar.set_label(loss_label)
        plain_ticks(bar.ax, "y")
    (ma, mb), mloss = surface.minimum
    ax.plot(ma, mb, "*", ms=14, color="tab:red", mec="w", label=f"minimum ({mloss:.3g})")
    if _contains(surface.alphas, 0.0) and _contains(surface.betas, 0.0):
        ax.plot(0.0, 0.0, "+", ms=12, mew=2, color="w", label="model")
    if surface.trajectory is not None:
        t = surface.trajectory
        ax.plot(t[:, 0], t[:, 1], "-o", color="w", mec="k", ms=4, lw=1.2, label="trajectory")
        ax.plot(t[0, 0], t[0, 1], "s", color="k", mec="w", ms=7, label="start")   # no palette colour
    ax.set_xlabel(surface.labels[0])
    ax.set_ylabel(surface.labels[1])
    ax.locator_params(nbins=6)
    plain_ticks(ax)
    ax.legend(fontsize=LEGEND_SIZE, loc="upper right", framealpha=0.8)
    caption(fig, _exact_caption(surface, loss_label, data))
    if title:
        ax.set_title(title)
    return fig


def plot_surface_3d(surface: LossSurface, *, log: bool | None = None, loss_label: str = "loss",
                    title: str | None = None, data: str = "the data") -> Figure:
    """A 2-D slice drawn as a 3-D surface, coloured by height over the whole range of the loss (the colorbar's);
    on a log scale (heights log10 of the loss, ticks labelled with the loss itself, as in the contour figure)
    when the loss spans a decade or more. The caption names ``data``, the samples every point was evaluated on."""
    if surface.ndim != 2:
        raise ValueError("plot_surface_3d draws 2-D slices")
    use_log = _use_log(surface.loss, log)
    z = np.ma.masked_invalid(np.log10(surface.loss) if use_log else surface.loss)
    a, b = np.meshgrid(surface.alphas, surface.betas, indexing="ij")
    fig = new_figure(6.0, 5.0)
    ax = fig.add_subplot(projection="3d")
    shown = ax.plot_surface(a, b, z, cmap="viridis", vmin=float(z.min()), vmax=float(z.max()), linewidth=0,
                            antialiased=True)
    bar = fig.colorbar(shown, ax=ax, shrink=0.6, pad=0.12)
    if use_log:   # ticks at 1-2-5 times powers of ten of the loss, at their log10 heights
        lo, hi = 10 ** float(z.min()), 10 ** float(z.max())
        ticks = [t for t in LogLocator(subs=(1.0, 2.0, 5.0) if hi / lo <= 1e3 else (1.0,)).tick_values(lo, hi)
                 if lo <= t <= hi]
        for axis in (ax.zaxis, bar.ax.yaxis):
            axis.set_major_locator(FixedLocator(np.log10(ticks)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(10 ** v)))
    else:
        for axis in (ax.zaxis, bar.ax.yaxis):
            axis.set_major_formatter(PLAIN)
    zlabel = f"{loss_label} (log scale)" if use_log else loss_label
    bar.set_label(zlabel)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    plain_ticks(ax)
    ax.set_xlabel(surface.labels[0], fontsize="small")
    ax.set_ylabel(surface.labels[1], fontsize="small")
    ax.tick_params(labelsize="small")
    ax.set_zlabel(zlabel)
    caption(fig, _exact_caption(surface, loss_label, data))
    if title:
        ax.set_title(title)
    return fig


def save_interpolation(results: InterpolationResult | Mapping[str, InterpolationResult],
                       directory: str | os.PathLike, name: str = "interpolation", *,
                       loss_label: str = "loss") -> list[Path]:
    """Write ``<name>.png`` and one ``<name>-<data set>.npz`` per data set into ``directory``."""
    sets = dict(results) if isinstance(results, Mapping) else {results.name: results}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for key, r in sets.items():
        r.save(directory / f"{name}-{key}.npz")
        written.append(directory / f"{name}-{key}.npz")
    written.append(save_figure(plot_interpolation(sets, loss_label=loss_label), directory / f"{name}.png"))
    return written


def save_surface(surface: LossSurface, directory: str | os.PathLike, name: str = "surface", *,
                 three_d: bool = False, loss_label: str = "loss", data: str = "the data") -> list[Path]:
    """Write ``<name>.npz`` and ``<name>.png`` (a curve for 1-D, contours for 2-D; plus
    ``<name>-3d.png`` if ``three_d``) into ``directory``; the captions name ``data`` (``"the training split"``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    surface.save(directory / f"{name}.npz")
    written = [directory / f"{name}.npz"]
    main = plot_slice(surface, loss_label=loss_label, data=data) if surface.ndim == 1 else \
        plot_surface_contour(surface, loss_label=loss_label, data=data)
    written.append(save_figure(main, directory / f"{name}.png"))
    if three_d and surface.ndim == 2:
        written.append(save_figure(plot_surface_3d(surface, loss_label=loss_label, data=data),
                                   directory / f"{name}-3d.png"))
    return written


def _contains(axis: np.ndarray, value: float) -> bool:
    return bool(axis.min() <= value <= axis.max())
