"""``analyses/tickets_vs_dense.py --quick`` end to end (figures, report, numbers over seeds), and its statistics."""
import json
import math
from pathlib import Path
from runpy import run_path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "analyses" / "tickets_vs_dense.py"


def test_quick_run_writes_figures_report_and_numbers_over_seeds(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("tickets_vs_dense", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("accuracy", "spectra", "curvature"):
        assert (figures / f"tickets_vs_dense_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "tickets_vs_dense.json").read_text())
    seeds, rounds = numbers["setting"]["seeds"], numbers["setting"]["compare_rounds"]
    assert numbers["setting"]["scope"] == "layer"
    assert set(numbers["accuracy"]) >= {"IMP, late rewinding", "random reinit", "random pruning", "signs only"}
    assert all(len(a) == len(seeds) and all(len(s) == len(numbers["densities"]) for s in a)
               for a in numbers["accuracy"].values())
    assert len(numbers["curvature_rows"]) == len(seeds)
    for key in ("lambda_max", "trace_per_weight", "saddle_index", "fisher_trace_per_weight"):
        for name in ("dense", *(f"{kind}_r{n:02d}" for n in rounds for kind in ("ticket", "reinit", "random",
                                                                                 "signs"))):
            stats = numbers["curvature"][key][name]
            assert len(stats["values"]) == len(seeds) and math.isfinite(stats["mean"]) and stats["error"] > 0
    assert numbers["curvature"]["saddle_index"]["dense"]["bound"] > 0   # the quadrature bound enters the error
    assert numbers["differences"]["saddle_index"][str(rounds[0])]["ticket_vs_dense"] in (-1, 0, 1)
    report = (figures / "tickets_vs_dense.md").read_text()
    assert "Frankle" in report and "## Verdict" in report and "negative directions" in report
    assert ("not supported" in report) or ("supported at every" in report)


def test_differs_only_beyond_the_sum_of_the_total_errors():
    script = run_path(str(SCRIPT))
    stats, differs = script["seed_statistics"], script["differs"]
    a = stats(np.array([1.0, 1.1, 0.9]))
    assert math.isclose(a["error"], 4.302652729911275 * 0.1 / math.sqrt(3), rel_tol=1e-6)   # t_{0.975, 2}
    b = stats(np.array([1.5, 1.6, 1.4]))
    assert differs(b, a) == 1 and differs(a, b) == -1
    close = stats(np.array([1.2, 1.3, 1.1]))        # gap 0.2 < 2 x 0.248
    assert differs(close, a) == 0
    biased = stats(np.array([1.5, 1.6, 1.4]), bounds=np.array([0.3, 0.3, 0.3]))   # a bound that covers the gap
    assert biased["error"] > b["error"] and differs(biased, a) == 0
    assert differs(stats(np.array([2.0])), a) == 0   # one seed: no error, no claim
