import json

import pytest
import torch

from landscape.analysis.compare import ROW_KEYS, CompareSettings, compare
from landscape.linalg.uncertainty import format_estimate
from landscape.plots.pruning import plot_curvature_vs_density
from landscape.pruning import PruningHparams, iterative_magnitude_pruning, round_dir
from landscape.training import Hparams
import landscape.analysis.compare as compare_module

pytestmark = pytest.mark.usefixtures("one_thread")

HPARAMS = Hparams(model="mlp", model_kwargs={"widths": [10]}, data="teacher_student",
                  data_kwargs={"train_size": 64, "test_size": 32, "input_dim": 6, "num_classes": 3}, batch_size=16,
                  steps="8it", lr=0.1, eval_every=0, checkpoint_every=0)
SETTINGS = CompareSettings(samples=48, eigenvalues=2, max_matvecs=200, trace_matvecs=12, density_steps=12,
                           density_runs=2, points=5, instability_replicates=1)


@pytest.fixture(scope="module")
def imp_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("imp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    iterative_magnitude_pruning(HPARAMS, PruningHparams(rounds=2, rewind="2it", controls=("random", "supermask")),
                                path, progress=False)
    torch.set_num_threads(threads)
    return path


def test_compare_writes_every_row_key_to_json_and_markdown_with_figures(imp_dir, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    result = compare(round_dir(imp_dir, 0), imp_dir, out, settings=SETTINGS, progress=False)
    saved = json.loads((out / "comparison.json").read_text())
    names = [r["name"] for r in saved["rows"]]
    assert names == ["dense", "ticket_r01", "random_r01", "ticket_r02", "random_r02"]
    for row in saved["rows"]:
        assert set(row) == set(ROW_KEYS)
        assert row["lambda_max"] >= row["lambda_min"] and row["weights"] > 0
        assert row["trace_per_weight"] == pytest.approx(row["trace"] / row["weights"])
        assert row["fisher_trace_per_weight"] == pytest.approx(row["fisher_trace"] / row["weights"])
        assert 0 <= row["saddle_index"] <= 1 and row["fisher_trace"] > 0 and row["effective_dim"] >= 0
    dense, ticket = saved["rows"][0], saved["rows"][1]
    assert dense["density"] == 1.0 and dense["barrier_to_dense"] is None and dense["instability"] is not None
    assert ticket["density"] == pytest.approx(0.8, abs=0.01) and ticket["weights"] < dense["weights"]
    assert ticket["barrier_to_dense"] is not None and ticket["instability"] is not None
    assert ticket["stability_distance"] > 0 and saved["rows"][2]["instability"] is None  # controls: no instability
    table = (out / "comparison.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    for row in saved["rows"]:   # the saddle index with its total error, marked and explained where unreliable
        assert row["saddle_index_error"] >= row["saddle_index_stderr"] >= 0
        cell = format_estimate(row["saddle_index"], row["saddle_index_error"], row["saddle_index_reliable"], reason=None)
        assert f"| {cell} |" in table
        assert (f"- Saddle index of {row['name']} unreliable: {row['saddle_index_reason']}." in table) == (
            not row["saddle_index_reliable"])
    for figure in ("accuracy_vs_density", "spectral_density", "curvature_vs_density"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000
    assert len(result.rows) == 5 and set(result.densities) == set(names)

    measured = []
    monkeypatch.setattr(compare_module, "_measure", lambda *a, **k: measured.append(a[0]))
    again = compare(round_dir(imp_dir, 0), imp_dir, out, settings=SETTINGS, progress=False)
    assert measured == [] and again.rows == result.rows  # rows with the same settings are reused


def test_cli_compare_prints_the_table(imp_dir, tmp_path, capsys):
    import argparse

    from landscape.cli import compare as command
    parser = argparse.ArgumentParser(prog="landscape compare")
    command.add_arguments(parser)
    args = parser.parse_args([str(round_dir(imp_dir, 0)), str(imp_dir), "--out", str(tmp_path / "c"), "--rounds", "2",
                              "--samples", "32", "--eigenvalues", "1", "--trace-matvecs", "8", "--density-steps", "6",
                              "--density-runs", "2", "--points", "3", "--instability-replicates", "0", "--no-controls",
                              "--no-progress"])
    assert "\n" not in command.HELP and args.controls is False and args.rounds == (2,)
    assert command.run(args) == 0
    out = capsys.readouterr().out
    assert "| dense |" in out and "| ticket_r02 |" in out and "ticket_r01" not in out and "random" not in out
    assert (tmp_path / "c" / "comparison.md").read_text().endswith(out.split("written to")[0])


def test_curvature_against_density_draws_total_errors_and_unreliable_points_hollow():
    rows = [{"kind": "dense", "density": 1.0, "saddle_index": 0.1, "saddle_index_error": 0.02,
             "saddle_index_reliable": True},
            *({"kind": "ticket", "density": d, "saddle_index": v, "saddle_index_error": e, "saddle_index_reliable": ok}
              for d, v, e, ok in ((0.8, 0.12, 0.01, True), (0.64, 0.2, 0.3, False), (0.5, 0.1, 0.4, False)))]
    ax = plot_curvature_vs_density(rows, {"saddle_index": "saddle index"}).axes[0]
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and sorted(hollow[0].get_ydata()) == [0.1, 0.2]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["dense", "ticket",
                                                                          "unreliable (error > ½ value)"]
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 1 and len(bars[0].lines[2][0].get_segments()) == 3
