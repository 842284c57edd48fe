import argparse

import pytest
import torch
from torch import nn

from landscape.cli import plot as plot_command
from landscape.foundation.runs import Run
from landscape.plots.tracking import plot_tracking
from landscape.training.tracker import INSTRUMENTS, Tracker, TrackerSettings


@pytest.fixture
def tracked_run(tmp_path, one_thread):
    """A run directory whose metrics hold evaluations and every instrument at log-spaced steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    settings = TrackerSettings(top_k=3, bottom_k=3, saddle_k=3, flatness_k=3, overlap_k=2, density_steps=12,
                               density_runs=2, trace_matvecs=6)
    tracker = Tracker(nn.CrossEntropyLoss(), data, instruments=INSTRUMENTS, schedule=[0, 1, 10, 100], model=model,
                      run=tmp_path, settings=settings)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(101):
        tracker.step(step)
        if step % 50 == 0:
            Run(tmp_path).log({"step": step, "instrument": "train", "loss": 1.0 / (step + 1), "accuracy": 0.5})
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(model(data[0]), data[1]).backward()
        optimizer.step()
    return tmp_path


def test_every_tracked_quantity_gets_a_panel_with_a_symlog_step_axis_and_densities_per_step(tracked_run):
    fig = plot_tracking(Run(tracked_run).metrics())
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    for title in ("loss", "top eigenvalues", "bottom eigenvalues", "trace", "saddle index", "Fisher trace",
                  "sharpness", "Occam term", "effective dimensionality", "gradient in top-k eigenspace",
                  "spectral density (SLQ) per step"):
        assert title in titles, title
    steps_axis = next(ax for ax in fig.axes if ax.get_title() == "trace")
    assert steps_axis.get_xscale() == "symlog"
    density = next(ax for ax in fig.axes if ax.get_title().startswith("spectral density"))
    assert len(density.get_lines()) == 4 + 2   # one curve per measured step, the zero line, one eigenvalue's height


def test_the_plot_command_writes_the_figure_into_the_run(tracked_run, capsys):
    parser = argparse.ArgumentParser()
    plot_command.add_arguments(parser)
    assert plot_command.run(parser.parse_args([str(tracked_run)])) == 0
    figure = tracked_run / "figures" / "tracking.png"
    assert figure.stat().st_size > 10_000 and str(figure) in capsys.readouterr().out
    with pytest.raises(ValueError, match="no metrics"):
        plot_command.run(parser.parse_args([str(tracked_run / "figures")]))


def test_records_of_named_trackers_are_drawn_as_separate_labelled_curves():
    records = [{"step": s, "instrument": "fisher_trace", "tracker": name, "value": v * (s + 1), "stderr": 0.1}
               for s in (0, 10, 100) for name, v in (("empirical", 1.0), ("true", 2.0))]
    fig = plot_tracking(records)
    ax = next(ax for ax in fig.axes if ax.get_title() == "Fisher trace")
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["tr F [empirical]", "tr F [true]"]
    curves = [bars.lines[0].get_ydata() for bars in ax.containers]
    assert sorted(map(list, curves)) == [[1.0, 11.0, 101.0], [2.0, 22.0, 202.0]]


def test_saddle_index_and_negative_mass_bars_are_total_errors_and_unreliable_points_hollow():
    records = [{"step": s, "instrument": "saddle_index", "fraction": f, "error": e, "stderr": 0.001, "reliable": ok}
               for s, f, e, ok in ((0, 0.1, 0.02, True), (10, 0.2, 0.3, False), (100, 0.15, 0.05, True))]
    records += [{"step": s, "instrument": "density", "negative_fraction": 0.3, "negative_fraction_error": 0.4,
                 "negative_fraction_stderr": 0.01, "negative_fraction_reliable": False, "nodes": [[-1.0, 1.0]] * 2,
                 "weights": [[0.3, 0.7]] * 2, "dim": 10} for s in (0, 100)]
    ax = next(ax for ax in plot_tracking(records).axes if ax.get_title() == "saddle index")
    bars = {tuple(c.lines[0].get_ydata()): c for c in ax.containers}
    saddle = bars[(0.1, 0.2, 0.15)].lines[2][0].get_segments()
    # ± error, not stderr; the bar of 0.2 ± 0.3 stops at 0, as a fraction cannot go below it
    assert [round(float(seg[1][1] - seg[0][1]), 9) for seg in saddle] == [0.04, 0.5, 0.1]
    assert min(float(seg[0][1]) for seg in saddle) == 0.0
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "white"]
    assert sorted(tuple(line.get_xdata()) for line in hollow) == [(0, 100), (10,)]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.count("unreliable (error > ½ value)") == 1 and "saddle index" in labels
