"""``analyses/hessian_outliers.py``: the outlier-counting rule, and ``--quick`` end to end."""
import json

import numpy as np
import pytest

import hessian_outliers  # analyses/ is on sys.path: see conftest.py


def test_outlier_count_is_the_number_above_the_largest_log_gap():
    decay = 0.97 ** np.arange(10)           # the same ratio between neighbours within each group
    spectrum = np.concatenate([30.0 * decay, decay, 0.7 * decay])
    assert hessian_outliers.outlier_count(spectrum) == 10
    assert hessian_outliers.relative_gap(spectrum, 10) > 10
    assert hessian_outliers.relative_gap(spectrum, 5) == pytest.approx(1.0)


def test_log_gaps_refuse_non_positive_eigenvalues():
    with pytest.raises(ValueError, match="positive"):
        hessian_outliers.log_gaps([2.0, 1.0, 0.0])


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path, one_thread):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("hessian_outliers", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("density", "eigenvalues"):
        assert (figures / f"hessian_outliers_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "hessian_outliers.json").read_text())
    k = numbers["setting"]["top_k"]
    assert set(numbers["summaries"]) == {"MLP", "MLP + BatchNorm"}
    for label, summary in numbers["summaries"].items():
        counts = summary["per_seed"]["count"]
        assert len(counts) == len(numbers["setting"]["seeds"]) and all(1 <= c < k for c in counts)
        for record in numbers["spectra"][label]:
            top = np.asarray(record["hessian"]["eigenvalues"])
            assert top.size == k and np.all(np.diff(top) <= 0) and top[-1] > 0
            # the GGN is the Hessian minus a term that is small near a minimum of the cross-entropy
            assert record["ggn"]["eigenvalues"][0] == pytest.approx(top[0], rel=0.2)
    report = (figures / "hessian_outliers.md").read_text()
    assert "Papyan" in report and "Ghorbani" in report and "| MLP + BatchNorm |" in report
