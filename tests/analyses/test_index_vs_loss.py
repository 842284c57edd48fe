"""``analyses/index_vs_loss.py --quick`` end to end: figure, report and numbers written and consistent."""
import json

import numpy as np


def test_quick_run_writes_figure_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("index_vs_loss", "--quick", "--out", str(out), "--figures", str(figures))
    assert (figures / "index_vs_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "index_vs_loss.json").read_text())
    setting, searches, unique = numbers["setting"], numbers["searches"], numbers["distinct"]
    assert {p["family"] for p in searches} == {"random", "training", "minimum"}
    assert len(searches) == len(setting["weight_decays"]) * len(setting["seeds"]) * (
        len(setting["scales"]) + len(setting["starts"]) + 1)
    assert {p["weight_decay"] for p in searches} == set(setting["weight_decays"])
    for p in searches:   # "critical" means exactly: the gradient norm met the stated bar
        assert p["critical"] == (p["gradient_norm"] <= setting["gradient_tol"])
        assert 0.0 <= p["near_null_share"] <= 1.0 and not (p["critical"] and p["gradient_flat"])
        assert p["iterations"] <= setting["budget"]
        if p["weight_decay"] == 0:   # the cross-entropy read off the stored log-probabilities is the loss
            assert abs(p["data_loss"] - p["loss"]) < 1e-9
        else:
            assert p["data_loss"] < p["loss"]
        assert all(0.0 <= f <= 1.0 for f in p["index"].values())
        assert p["index"]["0.01"] <= p["index"]["0.001"] <= p["index"]["0.0001"]
        assert p["lambda_min"] <= p["lambda_max"]
    assert any(p["critical"] for p in searches)
    assert all(p["critical"] for p in unique) and len(unique) <= sum(p["critical"] for p in searches)
    assert sum(p["duplicates"] for p in unique) == sum(p["critical"] for p in searches)
    for c in numbers["spearman"].values():
        assert np.isnan(c["rho"]) or (-1.0 <= c["rho"] <= 1.0 and c["low"] <= c["high"])
    report = (figures / "index_vs_loss.md").read_text()
    assert "Dauphin" in report and "cluster bootstrap" in report and "## Verdict" in report
    verdict = report.split("## Verdict")[1]
    assert "excluded" in verdict and any(w in verdict for w in ("rise together", "no monotone relation", "not tested"))


def test_quick_run_resumes_from_stored_points(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("index_vs_loss", "--quick", "--out", str(out), "--figures", str(figures))
    first = json.loads((figures / "index_vs_loss.json").read_text())["searches"]
    stored = sorted((out / "searches").iterdir())
    stamps = [p.stat().st_mtime_ns for p in stored]
    run_script("index_vs_loss", "--quick", "--out", str(out), "--figures", str(figures))
    assert [p.stat().st_mtime_ns for p in stored] == stamps
    assert json.loads((figures / "index_vs_loss.json").read_text())["searches"] == first
