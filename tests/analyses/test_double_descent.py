"""``analyses/double_descent.py --quick`` end to end: figure, report and numbers written and consistent."""
import json
import math

import numpy as np


def test_quick_run_writes_figure_report_and_consistent_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("double_descent", "--quick", "--out", str(out), "--figures", str(figures))
    assert (figures / "double_descent.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "double_descent.json").read_text())
    setting, summary, networks = numbers["setting"], numbers["summary"], numbers["networks"]
    assert summary["widths"] == setting["widths"] and len(networks) == len(setting["widths"]) * len(setting["seeds"])
    for i, width in enumerate(setting["widths"]):
        mine = [r for r in networks if r["width"] == width]
        assert mine[0]["params"] == 64 * width + width + 10 * width + 10     # one-hidden-layer MLP on 8x8 digits
        assert math.isclose(summary["test_error"]["mean"][i], np.mean([r["test_error"] for r in mine]))
        for r in mine:
            assert 0 <= r["train_error"] <= 1 and 0 <= r["test_error"] <= 1
            assert r["trace_stderr"] > 0 and r["eigenvalues"][0] > 0
            # N_eff counts parameters: between 0 and the dimension, smaller for a larger z
            assert all(0 <= n <= r["params"] for n in r["effective_dim"])
            assert r["effective_dim"][0] > r["effective_dim"][1] and r["zs"] == setting["zs"]
    peak = numbers["peak"]
    assert peak["optimum_width"] in setting["widths"] and peak["peak_width"] in setting["widths"]
    assert isinstance(peak["peak_appears"], bool)
    report = (figures / "double_descent.md").read_text()
    assert "Nakkiran" in report and "Maddox" in report and "## Verdict" in report and "±" in report
    assert ("**The double-descent peak appears**" in report) != ("**No double-descent peak by our rule**" in report)
    verdicts = ("**it tracks test error**", "**it peaks with test error, but", "**it does not track test error**")
    assert sum(report.count(v) for v in verdicts) == len(setting["zs"]) + 1    # trace and N_eff at each z
