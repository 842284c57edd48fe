"""``analyses/pruning_at_init.py``: the --quick run end to end, and the verdict it reads off the paired tests."""
import json

import numpy as np
import pytest

import pruning_at_init as script
from reproduction import paired_difference


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("pruning_at_init", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("accuracy", "curvature"):
        assert (figures / f"pruning_at_init_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "pruning_at_init.json").read_text())
    seeds, points = len(script.QUICK.seeds), len(script.QUICK.rounds)
    assert set(numbers["accuracy"]) == set(script.METHODS)
    assert all(np.shape(a) == (seeds, points) for a in numbers["accuracy"].values())
    assert set(numbers["sanity"]) == set(script.CHECKS)
    assert all(np.shape(a) == (seeds, points) for c in numbers["sanity"].values() for a in c.values())
    assert np.all(np.diff(numbers["densities"]) < 0) and 0 < numbers["densities"][-1] < 1
    for method, rows in numbers["curvature"].items():
        assert len(rows) == seeds and all(r["trace_stderr"] > 0 and r["weights"] > 0 for r in rows), method
    # every network at the curvature density keeps the same number of weights
    assert len({rows[0]["weights"] for rows in numbers["curvature"].values()}) == 1
    report = (figures / "pruning_at_init.md").read_text()
    assert "## Verdict" in report and "Frankle" in report
    assert report.count("* **") == 4 and ("Reproduces" in report or "reproduce" in report or "Consistent" in report)


def test_paired_difference_is_the_paired_t_test():
    from scipy import stats
    a, b = np.array([0.5, 0.6, 0.7, 0.65]), np.array([0.4, 0.45, 0.6, 0.6])
    result = paired_difference(a, b)
    assert result["mean"] == pytest.approx(np.mean(a - b))
    assert result["se"] == pytest.approx(np.std(a - b, ddof=1) / 2)
    assert result["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert np.isnan(paired_difference([0.5], [0.4])["p"])


def _curves(seeds: int, shift: float) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    base = {m: 0.6 + 0.01 * rng.standard_normal((seeds, 3)) for m in script.METHODS}
    base["random"] -= 0.2
    base[script.IMP] += 0.2
    checks = {c: {m: base[m] + shift + 0.001 * rng.standard_normal((seeds, 3)) for m in script.AT_INIT_METHODS}
              for c in script.CHECKS}
    return base, checks


def test_verdict_says_does_not_reproduce_when_shuffling_hurts():
    curves, checks = _curves(5, shift=-0.1)
    lines = "\n".join(script.reading(np.array([0.5, 0.2, 0.1]), curves, script.verdicts(curves, checks), 5))
    hurt = "significantly worse in 15 of 15 (method, density) cells, better in 0. **Does not reproduce**"
    assert lines.count(hurt) == 2
    assert "significantly better in 12 of 12" in lines and "significantly below in 12 of 12" in lines
    assert lines.count("Reproduces.") == 2


def test_verdict_finds_no_harm_when_the_checks_match():
    curves, checks = _curves(5, shift=0.0)
    lines = "\n".join(script.reading(np.array([0.5, 0.2, 0.1]), curves, script.verdicts(curves, checks), 5))
    assert lines.count("no significant harm") == 2 and "Does not reproduce" not in lines
