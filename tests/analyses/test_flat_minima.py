"""``analyses/flat_minima.py --quick`` end to end: figures, report and numbers written and consistent."""
import json
import math

ARMS = ("small", "large_same_epochs", "large")


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("flat_minima", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("measures", "gap", "rescaling"):
        assert (figures / f"flat_minima_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "flat_minima.json").read_text())
    setting = numbers["setting"]
    assert len(numbers["seeds"]) == setting["seeds"]
    for seed, arms in enumerate(numbers["seeds"]):
        assert set(arms) == set(ARMS)
        for arm in arms.values():
            assert arm["seed"] == seed and arm["lambda_max"] > 0 and arm["trace"] > 0
            assert arm["lambda_max_error"] >= 0 and arm["trace_stderr"] >= 0 and arm["occam_factor_stderr"] >= 0
            assert 0 <= arm["effective_dim"] <= arm["dim"]
            assert math.isclose(arm["loss_gap"], arm["test_loss"] - arm["train_loss"], abs_tol=1e-12)
            assert math.isclose(arm["accuracy_gap"], arm["train_accuracy"] - arm["test_accuracy"], abs_tol=1e-12)
            assert arm["occam_factor"] <= 0   # −½ Σ log(1 + λ⁺/δ)
        # the same-epochs LB point has seen as many epochs as the SB point it is compared with
        assert arms["large_same_epochs"]["step"] == arms["small"]["epochs"] * (4000 // setting["large_batch"])
    for arm in ("large", "large_same_epochs"):
        for key, comparison in numbers["paired"][arm].items():
            assert comparison["n"] == setting["seeds"] and (math.isnan(comparison["p"]) or 0 <= comparison["p"] <= 1)
    rows = numbers["rescaling"]
    assert [r["alpha"] for r in rows] == setting["alphas"]
    for r in rows:   # the function is unchanged by the rescaling ...
        assert r["output_deviation"] < 1e-12
        assert math.isclose(r["train_loss"], rows[0]["train_loss"], rel_tol=1e-12)
        assert math.isclose(r["test_accuracy"], rows[0]["test_accuracy"], rel_tol=1e-12)
    lam = [r["lambda_max"] for r in rows]   # ... its sharpness is not
    assert max(lam) / min(lam) > 10
    unscaled = next(r for r in rows if r["alpha"] == 1.0)   # α = 1 is seed 0's SB network, measured the same way
    assert math.isclose(unscaled["lambda_max"], numbers["seeds"][0]["small"]["lambda_max"], rel_tol=1e-8)
    report = (figures / "flat_minima.md").read_text()
    assert "Keskar" in report and "Dinh" in report and "±" in report and "## Verdicts" in report
    assert report.count("reproduce") >= 4   # a verdict per claim
