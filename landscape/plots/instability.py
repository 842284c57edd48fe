"""Figure of an instability analysis: barrier height against the spawn step k (Frankle et al. 2020, Fig. 2).

Drawn from an :class:`~landscape.connectivity.instability.InstabilityResult`
(``InstabilityResult.load(<out_dir>/instability.json)`` redraws it without recomputing), on the Agg canvas without
pyplot, like :mod:`landscape.plots.surface`; save it with :func:`landscape.plots.save_figure` (atomic).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from landscape.connectivity.instability import InstabilityResult
from landscape.connectivity.interpolation import Definition, Quantity
from landscape.plots.style import LEGEND_SIZE, caption, error_caption, new_figure, plain_ticks, quantity_shades

TITLES = {"frankle": "instability (Frankle et al. 2020):\nmax error − mean of the endpoints",
          "entezari": "barrier (Entezari et al. 2022):\nmax gap above the line between the endpoints"}
STYLES = {"test": ("-", "o"), "train": ("--", "s")}


def plot_instability(results: InstabilityResult | Mapping[str, InstabilityResult], *,
                     quantity: Quantity | None = None,
                     definitions: Sequence[Definition] = ("frankle", "entezari"),
                     splits: Sequence[str] | None = None,
                     title: str | None = None) -> Figure:
    """Barrier against spawn step k, one panel per definition.

    Each curve is the mean over replicates with error bars of ± one sample standard deviation (none for
    a single replicate); the replicates themselves are faint dots. Test is drawn solid, train dashed, in the
    instability's colour (:func:`~landscape.plots.style.quantity_color`); several results (``{label: result}``, e.g.
    dense and sparse) get one shade of it each. The step axis is
    symmetric-logarithmic, linear below the smallest positive k, so k = 0 is shown; ticks sit at the
    spawn steps.

    Args:
        results: one result, or ``{label: result}``.
        quantity: ``"error"`` (in %) or ``"loss"``; the error when every result has one, else the loss.
        definitions: the barrier definitions to draw, one panel each.
        splits: the splits to draw (default: those every result measured).
        title: the figure's title (default: the run, for a single result).
    """
    sets = dict(results) if isinstance(results, Mapping) else {"": results}
    if not sets or any(not r.pairs for r in sets.values()):
        raise ValueError("no instability results to plot")
    if quantity is None:
        quantity = "error" if all(r.is_classification for r in sets.values()) else "loss"
    shown = [s for s in (splits or ("train", "test")) if all(s in r.splits for r in sets.values())]
    if not shown:
        raise ValueError(f"none of the splits {splits} was measured in every result")
    scale, unit = (100.0, " (%)") if quantity == "error" else (1.0, "")
    steps = sorted({k for r in sets.values() for k in r.steps})
    positive = [k for k in steps if k > 0]

    fig = new_figure(5.0 * len(definitions), 4.0)
    axes = fig.subplots(1, len(definitions), squeeze=False)[0]
    colors = quantity_shades("instability", len(sets))
    for ax, definition in zip(axes, definitions):
        for color, (label, r) in zip(colors, sets.items()):
            for split in shown:
                line, marker = STYLES[split]
                ks = np.asarray(r.steps, dtype=float)
                values = r.barriers(split, quantity, definition) * scale
                mean = r.mean(split, quantity, definition) * scale
                std = np.nan_to_num(r.std(split, quantity, definition) * scale)
                name = f"{label}, {split}" if label else split
                ax.errorbar(ks, mean, yerr=std, fmt=line + marker, color=color, ms=4, lw=1.5, capsize=3,
                            label=name)
                ax.plot(np.repeat(ks, values.shape[1]), values.ravel(), marker, color=color, ms=3.5, alpha=0.45,
                        mec="none")
        ax.axhline(0.0, color="0.5", lw=0.8)
        if positive:
            ax.set_xscale("symlog", linthresh=positive[0], linscale=0.5)
        ax.set_xticks(steps, [str(k) for k in steps], fontsize="small", rotation=45 if len(steps) > 8 else 0)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("spawn step k" + (" (symlog scale)" if positive else ""))
        ax.set_ylabel(f"{quantity} barrier{unit}")
        ax.set_title(TITLES[definition].replace("error", quantity), fontsize="small")
        plain_ticks(ax, "y")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=LEGEND_SIZE, loc="best", framealpha=0.8)
    counts = sorted({r.barriers(shown[0], quantity).shape[1] for r in sets.values()})
    pairs = ("pair of copies", "pairs of copies")
    spread = (error_caption(counts[0], unit=pairs) if len(counts) == 1
              else f"mean ± s.d. over {'/'.join(map(str, counts))} {pairs[1]}")
    caption(fig, f"Lines: {spread}; dots: each pair." + (" Error barriers in percentage points."
                                                          if quantity == "error" else ""))
    if title is None and len(sets) == 1:
        r = next(iter(sets.values()))
        replicates = r.barriers(shown[0], quantity).shape[1]
        title = (f"{r.hparams.model} on {r.hparams.data}, {r.hparams.steps}, {replicates} replicate"
                 f"{'s' if replicates > 1 else ''}" + (f", density {r.masks['density']:.3g}" if r.masks else ""))
    if title:
        fig.suptitle(title)
    return fig
