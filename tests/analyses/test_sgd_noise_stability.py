"""``analyses/sgd_noise_stability.py --quick`` end to end: figures, report and numbers written."""
import json
from pathlib import Path
from runpy import run_path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "analyses" / "sgd_noise_stability.py"


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("sgd_noise_stability", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("instability", "accuracy", "paths"):
        assert (figures / f"sgd_noise_stability_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "sgd_noise_stability.json").read_text())
    setting, dense, ticket = numbers["setting"], numbers["dense"], numbers["ticket"]
    assert dense["steps"] == list(setting["dense_spawn_steps"])
    assert np.array(dense["barriers"]).shape == (len(dense["steps"]), setting["replicates"])
    assert all(-1 <= b <= 1 for b in dense["barrier"])
    assert len(dense["accuracies"]) == 2 * setting["replicates"] + 1
    assert [row["rewind"] for row in ticket["rewinds"]] == list(setting["ticket_rewinds"])
    assert abs(ticket["density"] - (1 - setting["fraction"]) ** setting["rounds"]) < 0.01
    for row in ticket["rewinds"]:
        assert len(row["accuracies"]) == 2 * setting["replicates"] + 1
        assert all(0 <= a <= 1 for a in row["accuracies"])
        assert row["stable"] == (row["barrier"] < numbers["threshold"])
    report = (figures / "sgd_noise_stability.md").read_text()
    assert "Frankle" in report and "reproduce" in report


def test_stable_from_is_the_first_step_after_which_every_barrier_is_below_threshold():
    stable_from = run_path(str(SCRIPT))["stable_from"]
    steps = [0, 10, 100, 1000]
    assert stable_from(steps, np.array([0.05, 0.01, 0.03, 0.01]), 0.02) == 1000
    assert stable_from(steps, np.array([0.05, 0.01, 0.01, 0.01]), 0.02) == 10
    assert stable_from(steps, np.array([0.01, 0.01, 0.01, 0.01]), 0.02) == 0
    assert stable_from(steps, np.array([0.01, 0.01, 0.01, 0.03]), 0.02) is None
