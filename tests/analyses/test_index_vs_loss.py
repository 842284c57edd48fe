"""``analyses/index_vs_loss.py --quick`` end to end: figure, report and numbers written and consistent."""
import json


def test_quick_run_writes_figure_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("index_vs_loss", "--quick", "--out", str(out), "--figures", str(figures))
    assert (figures / "index_vs_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "index_vs_loss.json").read_text())
    points = numbers["points"]
    assert {p["kind"] for p in points} == {"training", "search", "minimum"}
    assert all(0.0 <= f <= 1.0 for p in points for f in p["index"].values())
    for p in points:  # the library's estimate agrees with the exact index of the same dense matrix
        assert abs(p["saddle_index"]["fraction"] - p["index"]["0.001"]) < 0.05
    for p in points:  # the searches move towards critical points
        if p["kind"] == "search":
            assert p["gradient_norm"] < p["start_gradient_norm"]
    minima = [p for p in points if p["kind"] == "minimum"]
    assert all(p["index"]["0.01"] == 0.0 for p in minima)
    for c in numbers["spearman"].values():
        assert -1.0 <= c["rho"] <= 1.0 and c["stderr"] >= 0.0 and c["low"] <= c["high"]
    report = (figures / "index_vs_loss.md").read_text()
    assert "Dauphin" in report and "Spearman" in report


def test_quick_run_resumes_from_stored_points(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("index_vs_loss", "--quick", "--out", str(out), "--figures", str(figures))
    first = json.loads((figures / "index_vs_loss.json").read_text())["points"]
    stored = sorted((out / "points").iterdir())
    stamps = [p.stat().st_mtime_ns for p in stored]
    run_script("index_vs_loss", "--quick", "--out", str(out), "--figures", str(figures))
    assert [p.stat().st_mtime_ns for p in stored] == stamps
    assert json.loads((figures / "index_vs_loss.json").read_text())["points"] == first
