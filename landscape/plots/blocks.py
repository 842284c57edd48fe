"""The figure of per-block Hessian spectra (:mod:`landscape.instruments.blocks`), as Zhang et al. (2024) draw them:
one panel per block, its smoothed spectral density on a shared eigenvalue axis (log density), its top
eigenvalues marked, its trace ± standard error in the title."""
from __future__ import annotations

import math
import os

from matplotlib.figure import Figure

from landscape.instruments.blocks import BlockSpectra
from landscape.plots.style import (DENSITY_BAND, caption, density_grid, draw_density, eigenvalue_floor,
                                    mark_eigenvalues, new_figure, plain_number, plain_ticks)


def plot_block_spectra(spectra: BlockSpectra, *, sigma: float | None = None, points: int = 400, columns: int = 4,
                       title: str | None = None) -> Figure:
    """A grid of the blocks' spectral densities (:meth:`SpectralDensity.pdf`, each integrating to 1), sharing the
    eigenvalue axis so that blocks compare at a glance; the top eigenvalues are the red ticks (hollow when the
    solve did not converge). ``sigma`` (eigenvalue units) defaults to 1% of the widest block's range. Block
    names lose the prefix they all share."""
    blocks = spectra.blocks
    if not blocks:
        raise ValueError("no blocks to plot")
    grid, sigma = density_grid([b.density for b in blocks], sigma, points,
                               [v for b in blocks for v in b.eigenvalues.tolist()])
    columns = min(columns, len(blocks))
    rows = math.ceil(len(blocks) / columns)
    fig = new_figure(2.6 * columns, 1.9 * rows + 0.5)
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False)
    prefix = os.path.commonprefix([b.name for b in blocks]) if len(blocks) > 1 else ""
    prefix = prefix[:prefix.rfind(".") + 1]
    for ax, b in zip(axes.flat, blocks):
        eigenvalue_floor(ax, b.dim, sigma, max(draw_density(ax, b.density, grid, sigma, "C0", lw=1.2), 1e-300),
                         label=False)
        if b.converged:
            mark_eigenvalues(ax, b.eigenvalues.tolist(), "C3")
        else:
            for value in b.eigenvalues.tolist():
                ax.axvline(value, ymax=0.1, color="C3", lw=1.3, ls=":")
        error = "exact" if b.exact else f"± {plain_number(b.trace_stderr)}"
        ax.set_title(f"{b.name.removeprefix(prefix)} (n={b.dim})\ntr = {plain_number(b.trace)} {error}", fontsize=8)
        plain_ticks(ax)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(blocks):]:
        ax.set_visible(False)
    for column in range(columns):   # the lowest panel of each column carries the eigenvalue axis
        lowest = axes[(len(blocks) - 1 - column) // columns, column]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("Hessian eigenvalue", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("density", fontsize=7)
    fig.suptitle(title or "Per-block Hessian spectra", fontsize=10)
    caption(fig, f"SLQ densities (exact for small blocks), Gaussian σ = {plain_number(sigma)}, {DENSITY_BAND}; red: "
                 f"top eigenvalues (dotted: not converged); grey dotted: one eigenvalue's height; tr ± 1 s.e.")
    return fig
