"""``analyses/critical_periods.py``: the rise-then-fall rule, and ``--quick`` end to end."""
import json

import numpy as np

import critical_periods  # analyses/ is on sys.path: see conftest.py

STEPS = [0, 1, 10, 100, 1000]


def test_peak_statistics_find_an_interior_peak_that_rises_then_falls():
    stats = critical_periods.peak_statistics(STEPS, [1.0, 2.0, 10.0, 4.0, 2.0], np.zeros(5), fold=2.0, decay_step=100)
    assert stats["peak_step"] == 10 and stats["rise_then_fall"]
    assert stats["peak_over_initial"] == 10.0 and stats["peak_over_final"] == 5.0
    assert stats["peak_over_before_decay"] == 2.5 and stats["half_peak_window"] == [10, 10]


def test_peak_statistics_reject_a_monotone_rise_and_a_fall_within_the_noise():
    rising = critical_periods.peak_statistics(STEPS, [1.0, 2.0, 3.0, 4.0, 5.0], np.zeros(5), fold=2.0, decay_step=100)
    assert rising["peak_step"] == 1000 and not rising["rise_then_fall"]
    noisy = critical_periods.peak_statistics(STEPS, [1.0, 2.0, 10.0, 4.0, 2.0], np.full(5, 2.0), fold=2.0,
                                             decay_step=100)
    assert not noisy["rise_then_fall"]


def test_quick_run_writes_figure_report_and_numbers(run_script, tmp_path, one_thread):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("critical_periods", "--quick", "--out", str(out), "--figures", str(figures))
    assert (figures / "critical_periods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "critical_periods.json").read_text())
    assert len(numbers["runs"]) == len(numbers["setting"]["seeds"])
    for run in numbers["runs"]:
        assert run["steps"][0] == 0 and run["steps"][-1] == numbers["setting"]["steps"]
        for key in ("empirical", "true", "true_stderr", "train_loss", "test_accuracy"):
            assert len(run[key]) == len(run["steps"])
        assert min(run["empirical"]) > 0 and min(run["true"]) > 0 and min(run["true_stderr"]) > 0
        assert run["train_loss"][-1] < run["train_loss"][0]
    for kind in ("empirical", "true"):
        assert numbers["summary"][kind]["peak_over_initial"]["mean"] >= 1.0
    report = (figures / "critical_periods.md").read_text()
    assert "Achille" in report and "peak / final" in report
