"""The figure of per-block Hessian spectra (:mod:`landscape.instruments.blocks`), as Zhang et al. (2024) draw them:
one panel per block, its smoothed spectral density on a shared eigenvalue axis (log density), its top
eigenvalues marked, its trace ± standard error in the title."""
from __future__ import annotations

import math
import os

import torch
from matplotlib.figure import Figure

from landscape.instruments.blocks import BlockSpectra
from landscape.plots.surface import _figure


def plot_block_spectra(spectra: BlockSpectra, *, sigma: float | None = None, points: int = 400, columns: int = 4,
                       title: str | None = None) -> Figure:
    """A grid of the blocks' spectral densities (:meth:`SpectralDensity.pdf`, each integrating to 1), sharing the
    eigenvalue axis so that blocks compare at a glance; the top eigenvalues are the red ticks (hollow when the
    solve did not converge). ``sigma`` (eigenvalue units) defaults to 1% of the widest block's range. Block
    names lose the prefix they all share."""
    blocks = spectra.blocks
    if not blocks:
        raise ValueError("no blocks to plot")
    low = min(float(b.density.nodes.min()) for b in blocks)
    high = max(max(float(b.density.nodes.max()), float(b.eigenvalues.max()) if b.eigenvalues.numel() else -math.inf) for b in blocks)
    span = max(high - low, 1e-12)
    sigma = 0.01 * span if sigma is None else sigma
    grid = torch.linspace(low - 5 * sigma, high + 5 * sigma, points, dtype=torch.float64)
    columns = min(columns, len(blocks))
    rows = math.ceil(len(blocks) / columns)
    fig = _figure(2.6 * columns, 1.9 * rows + 0.5)
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False)
    prefix = os.path.commonprefix([b.name for b in blocks]) if len(blocks) > 1 else ""
    prefix = prefix[:prefix.rfind(".") + 1]
    for ax, b in zip(axes.flat, blocks):
        pdf = b.density.pdf(grid, sigma).numpy()
        ax.plot(grid.numpy(), pdf, lw=1.2, color="C0")
        ax.set_yscale("log")
        ax.set_ylim(max(pdf.max(), 1e-300) * 1e-6, max(pdf.max(), 1e-300) * 3)
        for value in b.eigenvalues.tolist():
            ax.axvline(value, ymax=0.12, color="C3", lw=1.2, ls="-" if b.converged else ":")
        error = "exact" if b.exact else f"± {b.trace_stderr:.2g}"
        ax.set_title(f"{b.name.removeprefix(prefix)} (n={b.dim})\ntr = {b.trace:.3g} {error}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(blocks):]:
        ax.set_visible(False)
    for column in range(columns):   # the lowest panel of each column carries the eigenvalue axis
        lowest = axes[(len(blocks) - 1 - column) // columns, column]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("Hessian eigenvalue", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("density", fontsize=7)
    fig.suptitle(title or f"Per-block Hessian spectra (SLQ, Gaussian σ = {sigma:.2g}; red: top eigenvalues)",
                 fontsize=9)
    return fig
