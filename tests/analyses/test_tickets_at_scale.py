"""``analyses/tickets_at_scale.py --quick`` end to end: figure, report with a verdict per claim, and numbers."""
import json


def test_quick_run_writes_figure_report_with_verdicts_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("tickets_at_scale", "--quick", "--out", str(out), "--figures", str(figures))
    assert (figures / "tickets_at_scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "tickets_at_scale.json").read_text())
    summary = numbers["summary"]
    rounds, seeds = len(summary["densities"]), len(summary["dense_accuracy"])
    assert summary["steps"] == [0, 4] and rounds == 2 and seeds == 2
    assert {(n["step"], n["network"]) for n in summary["networks"]} == {(0, "ticket"), (0, "reinit"), (4, "ticket"),
                                                                         (4, "reinit")}
    for network in summary["networks"]:
        assert len(network["accuracy"]) == seeds and all(len(a) == rounds for a in network["accuracy"])
        if network["network"] == "ticket":   # every ticket's instability measured, a barrier of at least 0
            assert all(b is not None and b >= 0 for seed in network["instability"] for b in seed)
    assert set(numbers["dense_instability_fine"]) == {"0", "2", "4"}
    assert len(numbers["verdicts"]) == 4 and all(v["verdict"] for v in numbers["verdicts"])
    report = (figures / "tickets_at_scale.md").read_text()
    assert "Frankle" in report and report.count("**") == 8
    assert all(v["verdict"] in report for v in numbers["verdicts"])
