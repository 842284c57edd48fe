"""``analyses/sgd_noise_stability.py --quick`` end to end (figures, report, numbers over seeds), and its rules."""
import json
import math
from pathlib import Path
from runpy import run_path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "analyses" / "sgd_noise_stability.py"


def test_quick_run_writes_figures_report_and_numbers_over_seeds(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("sgd_noise_stability", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("instability", "accuracy", "paths"):
        assert (figures / f"sgd_noise_stability_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "sgd_noise_stability.json").read_text())
    setting, dense = numbers["setting"], numbers["dense"]
    seeds, replicates = len(setting["seeds"]), setting["replicates"]
    assert seeds >= 2 and dense["steps"] == list(setting["dense_spawn_steps"])
    assert np.array(dense["replicate_barriers"]).shape == (seeds, len(dense["steps"]), replicates)
    assert all(len(b["per_seed"]) == seeds and 0 <= b["mean"] <= 1 for b in dense["barrier"])
    assert [len(a) for a in dense["accuracies"]] == [2 * replicates + 1] * seeds
    for name, copies in (("ticket", 2 * replicates + 1), ("random", 2 * replicates), ("reinit", 2 * replicates)):
        rows = numbers[name]
        assert [row["rewind"] for row in rows] == list(setting["ticket_rewinds"])
        for row in rows:
            assert abs(row["density"] - (1 - setting["fraction"]) ** setting["rounds"]) < 0.01
            assert [len(a) for a in row["accuracies"]] == [copies] * seeds
            assert all(0 <= a <= 1 for acc in row["accuracies"] for a in acc)
            assert row["stability"] in ("stable", "unstable", "undecided")
    report = (figures / "sgd_noise_stability.md").read_text()
    assert "Frankle" in report and "Claim 3" in report and "reproduce" in report


def test_stable_from_is_the_first_step_after_which_every_barrier_is_below_threshold():
    stable_from = run_path(str(SCRIPT))["stable_from"]
    steps = [0, 10, 100, 1000]
    assert stable_from(steps, np.array([0.05, 0.01, 0.03, 0.01]), 0.02) == 1000
    assert stable_from(steps, np.array([0.05, 0.01, 0.01, 0.01]), 0.02) == 10
    assert stable_from(steps, np.array([0.01, 0.01, 0.01, 0.01]), 0.02) == 0
    assert stable_from(steps, np.array([0.01, 0.01, 0.01, 0.03]), 0.02) is None


def test_stability_is_decided_only_beyond_the_error_over_seeds():
    script = run_path(str(SCRIPT))
    over_seeds, stability = script["over_seeds"], script["stability"]
    low = over_seeds([0.005, 0.006, 0.004])
    assert math.isclose(low["error"], 4.302652729911275 * 0.001 / math.sqrt(3), rel_tol=1e-6)
    assert stability(low, 0.02) == "stable"
    assert stability(over_seeds([0.05, 0.06, 0.04]), 0.02) == "unstable"
    assert stability(over_seeds([0.01, 0.03, 0.02]), 0.02) == "undecided"
