"""One colour per measured quantity across the package's figures (issue 20)."""
from matplotlib.colors import to_rgba

from landscape.plots.analysis import plot_measures
from landscape.plots.pruning import plot_curvature_vs_density
from landscape.plots.style import OTHER_QUANTITY, QUANTITY_COLORS, quantity_color, quantity_shades
from landscape.plots.tracking import plot_tracking


def line_colors(ax) -> set[tuple[float, ...]]:
    return {to_rgba(line.get_color()) for line in ax.lines if len(line.get_xdata()) > 1}


def test_the_trace_has_one_colour_in_the_tracking_measures_and_ticket_figures():
    records = [{"step": s, "instrument": "trace", "value": 10.0 + s, "stderr": 0.5} for s in (0, 10, 20)]
    records += [{"step": s, "instrument": "fisher_trace", "value": 3.0 + s, "stderr": 0.0} for s in (0, 10, 20)]
    tracked = plot_tracking(records)
    trace_ax = next(ax for ax in tracked.axes if ax.get_title() == "trace")
    fisher_ax = next(ax for ax in tracked.axes if ax.get_title() == "Fisher trace")
    measures = plot_measures(["a", "b", "c"], [0, 10, 20], {
        "Hessian trace": ([10.0, 20.0, 30.0], [0.5, 0.5, 0.5]),
        "empirical Fisher trace": ([3.0, 13.0, 23.0], [0.0, 0.0, 0.0])})
    rows = [{"kind": "ticket", "density": d, "trace_per_weight": t, "fisher_trace_per_weight": t / 3}
            for d, t in ((0.5, 1.0), (0.25, 2.0))]
    tickets = plot_curvature_vs_density(rows, {"fisher_trace_per_weight": "Fisher trace per weight",
                                               "trace_per_weight": "Hessian trace per weight"})
    trace, fisher = to_rgba(QUANTITY_COLORS["trace"]), to_rgba(QUANTITY_COLORS["fisher_trace"])
    assert trace != fisher
    for ax in (trace_ax, measures.axes[0], tickets.axes[1]):
        assert line_colors(ax) == {trace}
    for ax in (fisher_ax, measures.axes[1], tickets.axes[0]):
        assert line_colors(ax) == {fisher}


def test_labels_name_their_quantity_and_unknown_ones_are_grey():
    assert quantity_color("Hessian trace per surviving weight") == QUANTITY_COLORS["trace"]
    assert quantity_color("empirical Fisher trace") == QUANTITY_COLORS["fisher_trace"]
    assert quantity_color("largest Hessian eigenvalue") == QUANTITY_COLORS["lambda_max"]
    assert quantity_color("saddle index (fraction)") == QUANTITY_COLORS["saddle_index"]
    assert quantity_color("instability (points of % test error)") == QUANTITY_COLORS["instability"]
    assert quantity_color("test-error barrier to dense (points of %)") == QUANTITY_COLORS["barrier"]
    assert quantity_color("error (%)") == QUANTITY_COLORS["accuracy"]
    assert quantity_color("gradient norm") == OTHER_QUANTITY
    assert len(set(QUANTITY_COLORS.values())) == len(QUANTITY_COLORS)


def test_shades_of_a_quantity_run_dark_to_light_around_its_colour():
    one, = quantity_shades("trace", 1)
    assert to_rgba(one) == to_rgba(QUANTITY_COLORS["trace"])
    shades = quantity_shades("trace", 3)
    assert to_rgba(shades[1]) == to_rgba(QUANTITY_COLORS["trace"])
    assert sum(shades[0]) < sum(shades[1]) < sum(shades[2])
