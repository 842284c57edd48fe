"""``analyses/tickets_vs_dense.py --quick`` end to end: figures, report and numbers written."""
import json


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("tickets_vs_dense", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("accuracy", "spectra", "curvature"):
        assert (figures / f"tickets_vs_dense_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "tickets_vs_dense.json").read_text())
    assert set(numbers["accuracy"]) and all(len(seed) == len(numbers["densities"])
                                           for a in numbers["accuracy"].values() for seed in a)
    assert numbers["curvature_rows"][0]["kind"] == "dense"
    report = (figures / "tickets_vs_dense.md").read_text()
    assert "Frankle" in report and "%" in report
