"""``analyses/critical_periods.py``: the rise-then-fall rule, and ``--quick`` end to end."""
import json

import numpy as np
import pytest

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


def test_two_modes_split_the_peak_steps_at_the_largest_log_gap():
    modes = critical_periods.two_modes([566, 55, 55, 290, 405, 55])
    assert modes["early"] == [55, 55, 55] and modes["late"] == [290, 405, 566]
    assert 55 < modes["split"] < 290 and modes["split"] == pytest.approx((55 * 290) ** 0.5)
    assert modes["gap_decades"] == pytest.approx(np.log10(290 / 55))
    assert modes["next_gap_decades"] == pytest.approx(np.log10(566 / 405))
    with pytest.raises(ValueError, match="two different"):
        critical_periods.two_modes([55, 55])


def test_bump_ratio_compares_the_highest_values_either_side_of_the_split():
    assert critical_periods.bump_ratio(STEPS, [1.0, 8.0, 2.0, 4.0, 1.0], split=50) == 2.0
    assert critical_periods.bump_ratio(STEPS, [1.0, 2.0, 2.0, 4.0, 1.0], split=50) == 0.5


def test_the_control_arm_drops_only_the_milestones():
    drop = critical_periods.hparams(critical_periods.FULL, 3, "step drop")
    constant = critical_periods.hparams(critical_periods.FULL, 3, "constant")
    assert drop.milestones == critical_periods.FULL.milestones and constant.milestones == ()
    assert (drop.lr, drop.init_seed, drop.data_order_seed) == (constant.lr, constant.init_seed,
                                                               constant.data_order_seed)
    with pytest.raises(ValueError, match="arm"):
        critical_periods.hparams(critical_periods.FULL, 3, "cosine")


def test_quick_run_writes_figure_report_and_numbers(run_script, tmp_path, one_thread):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("critical_periods", "--quick", "--out", str(out), "--figures", str(figures))
    assert (figures / "critical_periods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "critical_periods.json").read_text())
    assert set(numbers["runs"]) == set(critical_periods.ARMS)
    for arm in critical_periods.ARMS:
        assert len(numbers["runs"][arm]) == len(numbers["setting"]["seeds"])
    # the two arms of a seed are the same run up to the learning-rate drop
    assert numbers["summary"]["difference_before_drop"] < 1e-6
    for run in (r for runs in numbers["runs"].values() for r in runs):
        assert run["steps"][0] == 0 and run["steps"][-1] == numbers["setting"]["steps"]
        for key in ("empirical", "true", "true_stderr", "train_loss", "test_accuracy"):
            assert len(run[key]) == len(run["steps"])
        assert min(run["empirical"]) > 0 and min(run["true"]) > 0 and min(run["true_stderr"]) > 0
        assert run["train_loss"][-1] < run["train_loss"][0]
    for arm in critical_periods.ARMS:
        for kind in ("empirical", "true"):
            summary = numbers["summary"][arm][kind]
            assert summary["peak_over_initial"]["mean"] >= 1.0
            assert summary["peak_steps"] == [p["peak_step"] for p in summary["per_seed"]]
    report = (figures / "critical_periods.md").read_text()
    assert "Achille" in report and "peak / final" in report and "Learning-rate drop" in report
    assert "the two modes of the peak step" in report and "rise-then-fall shape reproduces" in report
