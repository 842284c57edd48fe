"""Shared figure conventions: plain tick labels, the words for error bars, spectral densities with their spread."""
import math

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape.linalg import SpectralDensity  # noqa: E402
from landscape.plots.style import (density_grid, draw_density, eigenvalue_floor, error_caption,  # noqa: E402
                                   plain_ticks)


def _labels(axis) -> list[str]:
    formatter = axis.get_major_formatter()
    ticks = [t for t in axis.get_majorticklocs() if axis.get_view_interval()[0] <= t <= axis.get_view_interval()[1]]
    formatter.set_locs(ticks)
    return [formatter(t, i) for i, t in enumerate(ticks)]


def test_small_linear_values_read_as_plain_decimals():
    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0.0101, 0.0143])
    plain_ticks(ax)
    labels = _labels(ax.yaxis)
    assert labels and all("e" not in s and "×" not in s and "10^" not in s for s in labels)
    assert any(s.startswith("0.01") for s in labels)
    assert ax.yaxis.get_major_formatter().get_offset() == ""


def test_log_axis_labels_major_ticks_plainly_and_hides_minor_labels():
    fig = Figure()
    ax = fig.add_subplot()
    ax.set_yscale("log")
    ax.plot([0, 1], [0.001, 10.0])
    plain_ticks(ax, "y")
    formatter = ax.yaxis.get_major_formatter()
    assert (formatter(0.001, 0), formatter(0.01, 0), formatter(1000.0, 0)) == ("0.001", "0.01", "1000")
    assert ax.yaxis.get_minor_formatter()(0.02, 0) == ""


def test_error_caption_names_the_error_and_the_seeds():
    assert error_caption(5) == "mean ± s.d. over 5 seeds"
    assert error_caption(3, "s.e.") == "mean ± s.e. over 3 seeds"
    assert error_caption(1) == "one seed, no error bar"
    with pytest.raises(ValueError, match="s.d."):
        error_caption(3, "sd")
    assert error_caption(1, unit=("pair of copies", "pairs of copies")) == "one pair of copies, no error bar"


def test_log_axis_under_two_decades_labels_the_twos_and_fives_too():
    fig = Figure()
    ax = fig.add_subplot()
    ax.set_yscale("log")
    ax.plot([0, 1], [0.5, 6.0])
    plain_ticks(ax, "y")
    minor = ax.yaxis.get_minor_formatter()
    assert (minor(2.0, 0), minor(5.0, 0), minor(0.5, 0), minor(3.0, 0)) == ("2", "5", "0.5", "")


def test_density_band_is_the_standard_error_across_runs_and_the_floor_one_eigenvalue():
    """Two runs with one node each at 0 and 1: the curve is their mean, the band ± |difference| / 2 (the s.e. of a
    mean of two), the axis starts at a third of one eigenvalue's smoothed height."""
    d = SpectralDensity(nodes=torch.tensor([[0.0], [1.0]], dtype=torch.float64),
                        weights=torch.tensor([[1.0], [1.0]], dtype=torch.float64), dim=10, matvecs=2)
    grid, sigma = density_grid([d])
    assert sigma == 0.01 and grid[0] == -0.05 and grid[-1] == 1.05
    fig = Figure()
    ax = fig.add_subplot()
    peak = draw_density(ax, d, grid, sigma, "C0")
    (band,), (line,) = ax.collections, ax.lines
    per_run = [SpectralDensity(nodes=d.nodes[r:r + 1], weights=d.weights[r:r + 1], dim=10, matvecs=1).pdf(grid, sigma)
               for r in range(2)]
    np.testing.assert_allclose(line.get_ydata(), d.pdf(grid, sigma).numpy())
    upper = band.get_paths()[0].vertices[:, 1].max()
    assert upper == pytest.approx(float((per_run[0] + per_run[1]).max() / 2 + abs(per_run[0] - per_run[1]).max() / 2))
    eigenvalue_floor(ax, d.dim, sigma, peak)
    height = 1 / (10 * sigma * math.sqrt(2 * math.pi))
    assert ax.get_ylim()[0] == pytest.approx(min(height / 3, peak * 1e-3)) and ax.get_yscale() == "log"
