"""Lottery-ticket figures: single-seed accuracies carry their test-set sampling error, fractions are drawn in the
units of the tables, densities mark the eigenvalues solved for."""
import math

import numpy as np
import pytest
import torch

from landscape.linalg import SpectralDensity
from landscape.plots.pruning import plot_accuracy_vs_density, plot_curvature_vs_density, plot_spectral_densities


def test_one_seed_accuracy_bars_are_the_binomial_standard_error_of_the_test_set():
    fig = plot_accuracy_vs_density({"ticket": ([1.0, 0.5], [0.9, 0.6])}, dense=[0.9], test_samples=400)
    ax = fig.axes[0]
    (bars,) = ax.containers[0].lines[2]
    segments = bars.get_segments()
    assert [s[1, 1] - s[0, 1] for s in segments] == pytest.approx(
        [200 * math.sqrt(p * (1 - p) / 400) for p in (0.9, 0.6)])
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["dense (90.0%; one seed, ± binomial s.e. over 400 test samples)",
                      "ticket (one seed, ± binomial s.e. over 400 test samples)"]


def test_several_seeds_say_mean_and_sd_in_the_legend():
    fig = plot_accuracy_vs_density({"ticket": ([1.0, 0.5], [[0.9, 0.6], [0.8, 0.7]])})
    assert fig.axes[0].get_legend_handles_labels()[1] == ["ticket (mean ± s.d. over 2 seeds)"]


def test_scaled_measures_are_drawn_in_percentage_points_with_their_errors():
    rows = [{"kind": "dense", "density": 1.0, "barrier_to_dense": None},
            {"kind": "ticket", "density": 0.5, "barrier_to_dense": 0.02, "barrier_to_dense_error": 0.005},
            {"kind": "ticket", "density": 0.25, "barrier_to_dense": 0.04, "barrier_to_dense_error": 0.01}]
    fig = plot_curvature_vs_density(rows, {"barrier_to_dense": "barrier (points of %)"},
                                    scales={"barrier_to_dense": 100.0}, note="bars: s.d.")
    ax = fig.axes[0]
    (line,) = [l for l in ax.lines if l.get_marker() == "o"]
    assert sorted(line.get_ydata()) == pytest.approx([2.0, 4.0])
    (bars,) = ax.containers[0].lines[2]
    assert sorted(s[1, 1] - s[0, 1] for s in bars.get_segments()) == pytest.approx([1.0, 2.0])
    assert fig.get_supxlabel() == "bars: s.d."


def test_spectral_densities_mark_the_given_eigenvalues_in_the_curve_colour():
    d = SpectralDensity(nodes=torch.tensor([[0.0, 2.0], [0.1, 2.0]], dtype=torch.float64),
                        weights=torch.tensor([[0.9, 0.1], [0.9, 0.1]], dtype=torch.float64), dim=50, matvecs=4)
    fig = plot_spectral_densities({"dense": d}, eigenvalues={"dense": [2.0, -0.1]})
    ax = fig.axes[0]
    marks = [l for l in ax.lines if list(l.get_ydata()) == [0, 0.1]]
    assert sorted(float(np.asarray(l.get_xdata())[0]) for l in marks) == [-0.1, 2.0]
    assert all(l.get_color() == "k" for l in marks)
    assert "σ = 0.021" in ax.get_ylabel()
