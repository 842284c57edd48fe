"""``analyses/escape_vs_width.py --quick`` end to end: figures, report and numbers written and consistent."""
import json
import math


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("escape_vs_width", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("bad_minima", "escape"):
        assert (figures / f"escape_vs_width_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "escape_vs_width.json").read_text())
    setting, shares, students = numbers["setting"], numbers["bad_minima"], numbers["students"]
    assert shares["widths"] == setting["widths"]
    for p, err, n in zip(shares["share"], shares["stderr"], shares["runs"]):
        assert 0.0 <= p <= 1.0 and math.isclose(err, math.sqrt(p * (1 - p) / n))
    assert len(students) == sum(shares["runs"])
    for r in students:   # certified means exactly: gradient norm and smallest eigenvalue within the stated bars
        assert r["critical"] == (r["gradient_norm"] <= setting["gradient_tol"])
        scale = max(abs(r["lambda_min"]), abs(r["lambda_max"]))
        assert r["minimum"] == (r["critical"] and r["lambda_min"] >= -setting["eig_tol"] * scale)
    for i, width in enumerate(shares["widths"]):
        mine = [r for r in students if r["width"] == width]
        bad = [r for r in mine if r["loss"] > numbers["cutoff"] and r["minimum"]]
        assert math.isclose(shares["share"][i], len(bad) / len(mine))
        assert shares["distinct"][i] <= len(bad) and (shares["distinct"][i] > 0) == (len(bad) > 0)
        assert shares["global"][i] + len(bad) + shares["saddle"][i] + shares["uncertified"][i] == len(mine)
    rows = numbers["sensitivity"]["rows"]
    assert [r["factor"] for r in rows] == setting["thresholds"]
    for low, high in zip(rows, rows[1:]):   # a higher threshold never adds bad minima
        assert all(h <= lo for h, lo in zip(high["bad"], low["bad"]))
    for row in numbers["escape"]:
        assert math.isclose(row["wide_loss"], row["narrow_loss"], rel_tol=1e-9)   # splitting keeps the function
        assert row["opened"] == row["wide_negative"] - row["narrow_negative"]
    assert any(row["opened"] > 0 for row in numbers["escape"])
    assert numbers["slice"]["eigenvalue"] < 0
    report = (figures / "escape_vs_width.md").read_text()
    assert "Martinelli" in report and "Simsek" in report and "±" in report
    assert "Threshold sensitivity" in report and "distinct" in report
