"""CLI commands end to end on tiny runs: interpolate, surface, train --track and plot."""
import numpy as np
import pytest

from landscape.cli import main

TINY = ["--model", "mlp", "--model-kwargs", "widths=[8]", "--data", "teacher_student", "--data-kwargs",
        "train_size=64", "test_size=32", "input_dim=6", "num_classes=3", "--batch-size", "16", "--steps", "8it",
        "--checkpoint-steps", "0,4,8", "--no-progress"]


@pytest.fixture
def two_runs(tmp_path, one_thread):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *TINY, "--out", str(a)]) == 0
    assert main(["train", *TINY, "--data-order-seed", "7", "--out", str(b)]) == 0
    return a, b


def test_interpolate_prints_both_barriers_and_writes_figure_and_arrays(two_runs, tmp_path, capsys):
    a, b = two_runs
    out = tmp_path / "fig"
    assert main(["interpolate", str(a), str(b), "--points", "5", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Frankle" in text and "Entezari" in text and "test:" in text
    assert (out / "interpolation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    arrays = np.load(out / "interpolation-test.npz")
    assert len(arrays["alphas"]) == 5


@pytest.mark.parametrize("directions", ["filter", "pca"])
def test_surface_writes_a_2d_slice(two_runs, tmp_path, capsys, directions):
    a, _ = two_runs
    out = tmp_path / directions
    assert main(["surface", str(a), "--directions", directions, "--points", "3", "--out", str(out),
                 "--no-progress"]) == 0
    assert "minimum loss" in capsys.readouterr().out
    pngs = list(out.glob("surface-*.png"))
    assert pngs and pngs[0].read_bytes()[:4] == b"\x89PNG"


def test_train_with_track_logs_instruments_and_plot_draws_them(tmp_path, capsys, one_thread):
    out = tmp_path / "tracked"
    assert main(["train", *TINY, "--track", "top_eigen,trace", "--every", "4", "--out", str(out)]) == 0
    records = [line for line in (out / "metrics.jsonl").read_text().splitlines() if '"top_eigen"' in line]
    assert len(records) == 3  # steps 0, 4, 8
    assert main(["plot", str(out)]) == 0
    assert (out / "figures" / "tracking.png").read_bytes()[:4] == b"\x89PNG"
