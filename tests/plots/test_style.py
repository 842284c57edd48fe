"""Shared figure conventions: plain tick labels and the words for error bars."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from landscape.plots.style import error_caption, plain_ticks  # noqa: E402


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
