"""Tests of landscape.analysis.analyze, landscape.analysis.report, landscape.plots.analysis and `landscape analyze` on
a tiny run."""
import argparse
import json

import matplotlib.image
import pytest
import torch

from landscape.analysis.analyze import analyze, checkpoint_files
from landscape.analysis.results import CHECKPOINT_KEYS, PAIR_KEYS, AnalyzeSettings
from landscape.cli import analyze as cli_analyze
from landscape.data.registry import load_dataset
from landscape.foundation.runs import load_checkpoint
from landscape.linalg.uncertainty import format_estimate
from landscape.plots.analysis import plot_measures
from landscape.training import Hparams, init_model, train
import landscape.analysis.analyze as analyze_module
import landscape.analysis.curvature as curvature_module

SETTINGS = AnalyzeSettings(samples=100, eigenvalues=2, max_matvecs=60, trace_matvecs=6, density_steps=8,
                           density_runs=2, points=3)
HPARAMS = Hparams(model="mlp", model_kwargs={"widths": [6]}, steps="20it", checkpoint_steps=(0, 10, 20),
                  eval_every=0, checkpoint_every=0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("analyze") / "run"
    train(HPARAMS, run_dir, progress=False)
    torch.set_num_threads(threads)
    return run_dir


def _counting(monkeypatch):
    calls = {"measure_checkpoint": 0, "measure_pair": 0}
    for name in calls:
        original = getattr(analyze_module, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(analyze_module, name, counted)
    return calls


def test_analyze_writes_json_figures_and_report_linking_them(tiny_run, tmp_path, one_thread):
    result = analyze(tiny_run, steps=[0, 20], out_dir=tmp_path, settings=SETTINGS, progress=False)
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert [c["step"] for c in saved["checkpoints"]] == [0, 20]
    for record in saved["checkpoints"]:
        assert set(CHECKPOINT_KEYS) <= set(record)
        assert len(record["top_eigenvalues"]) == len(record["top_residuals"]) == 2
        assert record["top_eigenvalues"][0] >= record["bottom_eigenvalues"][0]
        assert record["trace_stderr"] >= 0 and 0 <= record["saddle_index"] <= 1
        assert 0 <= record["escape_dimensions"] <= 2 and all(e < 0 for e in record["escape_eigenvalues"])
        assert 0 <= record["effective_dim"] <= record["weights"] and record["fisher_trace"] > 0
    assert len(saved["pairs"]) == 1 and set(PAIR_KEYS) <= set(saved["pairs"][0])
    assert saved["pairs"][0]["a"] == "step 0" and saved["pairs"][0]["b"] == "step 20"
    report = (tmp_path / "report.md").read_text()
    assert set(result.figures) == {"spectral_density", "eigenvalues", "measures", "interpolation"}
    for name, path in result.figures.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).shape[0] > 100
        assert f"![{name}](figures/{path.name})" in report
    for record in saved["checkpoints"]:   # the saddle index is printed with its total error, or marked
        assert record["saddle_index_error"] >= record["saddle_index_stderr"] >= 0
        cell = format_estimate(record["saddle_index"], record["saddle_index_error"], record["saddle_index_reliable"],
                               reason=None)
        assert f"| {cell} |" in report
        assert (f"- Saddle index at {record['label']} unreliable: {record['saddle_index_reason']}." in report) == (
            not record["saddle_index_reliable"])


def test_measures_plot_draws_unreliable_points_hollow_with_a_legend_entry():
    fig = plot_measures(["a", "b", "c"], [0, 10, 20], {"trace": ([1.0, 2.0, 3.0], [0.1, 0.1, None]),
                                                       "saddle index": ([0.1, 0.2, 0.3], [0.01, 0.5, 0.02],
                                                                        [True, False, None])})
    trace_ax, saddle_ax = fig.axes
    assert trace_ax.get_legend() is None
    assert [t.get_text() for t in saddle_ax.get_legend().get_texts()] == ["unreliable (error > ½ value)"]
    hollow = [line for line in saddle_ax.lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [10.0] and list(hollow[0].get_ydata()) == [0.2]
    filled = [line for line in saddle_ax.lines if line.get_marker() == "o" and line not in hollow]
    assert [list(line.get_xdata()) for line in filled] == [[0.0, 20.0]]


def test_analyze_resumes_and_recomputes_nothing_already_written(tiny_run, tmp_path, monkeypatch, one_thread):
    calls = _counting(monkeypatch)
    analyze(tiny_run, steps=[0, 10], out_dir=tmp_path, settings=SETTINGS, progress=False)
    assert calls == {"measure_checkpoint": 2, "measure_pair": 1}
    first = json.loads((tmp_path / "analysis.json").read_text())
    result = analyze(tiny_run, out_dir=tmp_path, settings=SETTINGS, progress=False)   # steps 0, 10, 20
    assert calls == {"measure_checkpoint": 3, "measure_pair": 2}   # only step 20 and the path 10 -> 20 are new
    assert result.computed == 2
    assert result.checkpoints[0]["trace"] == first["checkpoints"][0]["trace"]
    changed = AnalyzeSettings(**{**SETTINGS.__dict__, "trace_matvecs": 9})
    analyze(tiny_run, steps=[20], out_dir=tmp_path, settings=changed, progress=False)
    assert calls["measure_checkpoint"] == 4   # other settings: measured again


def test_a_kill_inside_a_checkpoint_loses_only_the_instrument_running(tiny_run, tmp_path, monkeypatch, one_thread):
    analyze(tiny_run, steps=[0, 20], out_dir=tmp_path / "whole", settings=SETTINGS, progress=False)
    calls = {"largest": 0, "smallest": 0}
    original = curvature_module.eigs

    def eigs(*args, which, **kwargs):   # the second curvature instrument of the first checkpoint is killed
        calls[which] += 1
        if which == "smallest" and calls[which] == 1:
            raise KeyboardInterrupt
        return original(*args, which=which, **kwargs)
    monkeypatch.setattr(curvature_module, "eigs", eigs)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        analyze(tiny_run, steps=[0, 20], out_dir=killed, settings=SETTINGS, progress=False)
    assert (killed / "unfinished").is_dir() and not (killed / "analysis.json").exists()
    analyze(tiny_run, steps=[0, 20], out_dir=killed, settings=SETTINGS, progress=False)
    assert calls == {"largest": 2, "smallest": 3}   # step 0's top eigenvalues loaded, not solved again
    assert not (killed / "unfinished").exists()

    def timeless(value):
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if k != "seconds"}
        return [timeless(v) for v in value] if isinstance(value, list) else value
    whole, resumed = (json.loads((d / "analysis.json").read_text()) for d in (tmp_path / "whole", killed))
    assert timeless(resumed) == timeless(whole)


def test_analyze_takes_the_users_model_and_data(tiny_run, tmp_path, one_thread):
    dataset = load_dataset("mnist1d")
    x, y = dataset.train
    files = checkpoint_files(tiny_run, [10, 20])
    plain = [tmp_path / "middle.pt", tmp_path / "final.pt"]   # bare state dicts, outside any run directory
    for source, target in zip(files, plain):
        torch.save(load_checkpoint(source).model, target)
    result = analyze(plain, model=lambda: init_model(HPARAMS), data=(x[:300], y[:300]), out_dir=tmp_path / "mine",
                     settings=SETTINGS, progress=False)
    from_config = analyze(files[1], out_dir=tmp_path / "config", settings=SETTINGS, progress=False)
    (_, mine), (theirs,) = result.checkpoints, from_config.checkpoints
    assert [p["a"] for p in result.pairs] == ["middle.pt"] and "interpolation" in result.figures
    assert mine["label"] == "final.pt" and mine["step"] is None and theirs["label"] == "step 20"
    assert mine["test_accuracy"] is None and mine["train_accuracy"] is not None
    assert mine["top_eigenvalues"][0] == pytest.approx(theirs["top_eigenvalues"][0], rel=1e-3)


def test_checkpoint_files_names_missing_steps(tiny_run):
    assert [p.name for p in checkpoint_files(tiny_run)] == [f"step_{s:06d}.safetensors" for s in (0, 10, 20)]
    with pytest.raises(FileNotFoundError, match=r"\[5\]"):
        checkpoint_files(tiny_run, [5, 10])
    with pytest.raises(FileNotFoundError):
        checkpoint_files(tiny_run / "nothing")


def test_cli_analyze_runs_and_prints_where_the_report_is(tiny_run, tmp_path, capsys, one_thread):
    parser = argparse.ArgumentParser()
    cli_analyze.add_arguments(parser)
    args = parser.parse_args([str(tiny_run), "--steps", "20", "--out", str(tmp_path), "--samples", "100",
                              "--eigenvalues", "2", "--max-matvecs", "60", "--trace-matvecs", "6",
                              "--density-steps", "8", "--density-runs", "2", "--no-progress"])
    assert cli_analyze.run(args) == 0
    assert f"report:  {tmp_path / 'report.md'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "analysis.json").read_text())["settings"]["trace_matvecs"] == 6


def test_torchrun_with_two_ranks_gives_the_numbers_of_one_process(tmp_path, one_thread):
    """``torchrun --nproc-per-node 2 -m landscape analyze``: two gloo ranks, each with half the curvature samples,
    write the JSON a single process writes, to float64 round-off."""
    import os
    import socket
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    train(Hparams(model="mlp", model_kwargs={"widths": [6]}, steps="10it", checkpoint_steps=(0, 10), eval_every=0,
                  checkpoint_every=0, dtype="float64"), run_dir, progress=False)
    options = ["--samples", "101", "--eigenvalues", "2", "--eig-tol", "1e-8", "--max-matvecs", "300",
               "--trace-matvecs", "6", "--density-steps", "8", "--density-runs", "2", "--points", "3", "--no-progress"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
              "--master-port", str(port), "-m", "landscape", "analyze", str(run_dir), "--out", str(tmp_path / "two")]
    done = subprocess.run(launch + options, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("analysed 2 checkpoints") == 1 and "on 2 ranks" in done.stdout  # rank 0 alone prints
    one = analyze(run_dir, out_dir=tmp_path / "one", settings=AnalyzeSettings(
        samples=101, eigenvalues=2, eig_tol=1e-8, max_matvecs=300, trace_matvecs=6, density_steps=8, density_runs=2,
        points=3), progress=False)
    two = json.loads((tmp_path / "two" / "analysis.json").read_text())
    for mine, theirs in zip(one.checkpoints, two["checkpoints"]):
        assert theirs["weights"] == mine["weights"]
        for key in ("top_eigenvalues", "bottom_eigenvalues", "trace", "fisher_trace", "saddle_index", "frobenius",
                    "effective_dim", "train_loss"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-8, abs=1e-12), key
        nodes = [(a, b) for run_a, run_b in zip(theirs["density"]["nodes"], mine["density"]["nodes"])
                 for a, b in zip(run_a, run_b)]
        assert [a for a, _ in nodes] == pytest.approx([b for _, b in nodes], rel=1e-6, abs=1e-10)
    assert (tmp_path / "two" / "report.md").is_file()
