"""``analyses/escape_vs_width.py --quick`` end to end: figures, report and numbers written and consistent."""
import json
import math


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("escape_vs_width", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("bad_minima", "escape"):
        assert (figures / f"escape_vs_width_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "escape_vs_width.json").read_text())
    shares = numbers["bad_minima"]
    assert shares["widths"] == numbers["setting"]["widths"]
    for p, err, n in zip(shares["share"], shares["stderr"], shares["runs"]):
        assert 0.0 <= p <= 1.0 and math.isclose(err, math.sqrt(p * (1 - p) / n))
    assert len(numbers["students"]) == sum(shares["runs"])
    for row in numbers["escape"]:
        assert math.isclose(row["wide_loss"], row["narrow_loss"], rel_tol=1e-9)   # splitting keeps the function
        assert row["opened"] == row["wide_negative"] - row["narrow_negative"]
    assert any(row["opened"] > 0 for row in numbers["escape"])
    assert numbers["slice"]["eigenvalue"] < 0
    report = (figures / "escape_vs_width.md").read_text()
    assert "Martinelli" in report and "Simsek" in report and "±" in report
