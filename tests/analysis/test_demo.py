"""Tests of the `landscape demo` pipeline in quick mode."""
import re

from landscape.analysis.demo import run_demo
from landscape.foundation.runs import Run
import landscape.analysis.analyze as analyze_module


def test_quick_demo_writes_report_with_existing_figures_and_resumes(tmp_path, monkeypatch, capsys, one_thread):
    out = tmp_path / "demo"
    result = run_demo(out, quick=True, progress=True)
    printed = capsys.readouterr()
    assert str(result.report) in printed.out
    log = printed.err   # not a terminal: a line per phase and a few progress lines, no redrawn bars
    assert "\r" not in log and len(log.splitlines()) < 60, log
    for title in ("dense training, tracked", "pruning round 1/1", "analysing step 30 (3/3)",
                  "curvature (8 instruments)"):
        assert title in log.splitlines()
    assert re.search(r"^curvature: \d/8 instruments .* running=[a-z ]+ matvecs=\d+$", log, re.M)
    assert re.search(r"^curvature: 8/8 instruments \[\d+ s\] matvecs=\d+$", log, re.M)
    assert re.search(r"^tracker cost [\d.]+ s: ", log, re.M)
    report = result.report.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert any(link.startswith("compare/figures/") for link in links)
    assert any(link.startswith("analysis/figures/") for link in links)
    assert "figures/tracked.png" in links
    tracked = Run(result.comparison.dense_dir).metrics("top_eigen")
    assert tracked and tracked[0]["step"] == 0
    for link in links:
        assert (out / link).read_bytes()[:4] == b"\x89PNG"
    assert "ticket_r01" in report and "| dense |" in report
    rows = {r["name"]: r for r in result.comparison.rows}
    assert rows["ticket_r01"]["density"] < rows["dense"]["density"] == 1.0

    def fail(*args, **kwargs):
        raise AssertionError("a finished measurement was recomputed")
    monkeypatch.setattr(analyze_module, "measure_checkpoint", fail)
    monkeypatch.setattr(analyze_module, "measure_pair", fail)
    again = run_demo(out, quick=True, progress=False)
    assert again.analysis.computed == 0
    assert again.comparison.rows == result.comparison.rows
