"""Error bars: a non-negative quantity's bar never reaches below 0; a signed quantity keeps symmetric bars."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from landscape.plots.analysis import plot_measures  # noqa: E402
from landscape.plots.style import bounded_errors  # noqa: E402


def test_lower_bars_of_non_negative_values_are_cut_at_zero():
    yerr = bounded_errors([0.15, 0.4, 0.0], [0.2, 0.1, 0.3])
    np.testing.assert_allclose(yerr, [[0.15, 0.1, 0.0], [0.2, 0.1, 0.3]])


def test_bars_of_a_fraction_stop_at_one():
    yerr = bounded_errors([0.9, 0.5, np.nan], [0.3, 0.2, 0.1], upper=1.0)
    np.testing.assert_allclose(yerr, [[0.3, 0.2, 0.1], [0.1, 0.2, 0.1]])


def test_signed_values_keep_symmetric_bars_and_missing_errors_draw_none():
    yerr = bounded_errors([-0.02, 0.01], [0.05, np.inf])
    np.testing.assert_allclose(yerr, [[0.05, 0.0], [0.05, 0.0]])


def test_measures_figure_draws_no_saddle_index_bar_below_zero():
    fig = plot_measures(["a", "b"], [0, 100], {"saddle index": ([0.15, 0.05], [0.2, 0.3], [False, False])})
    segments = [seg for coll in fig.axes[0].collections for seg in coll.get_segments()]
    assert segments and min(float(np.min(seg[:, 1])) for seg in segments) >= 0.0
