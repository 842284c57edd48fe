"""``analyses/random_labels.py --quick`` end to end: figures, report and numbers written and consistent."""
import json
import math


def test_quick_run_fits_both_labellings_and_compares_their_curvature(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("random_labels", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("training", "curvature"):
        assert (figures / f"random_labels_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "random_labels.json").read_text())
    seeds = numbers["setting"]["seeds"]
    runs = numbers["runs"]
    assert sorted((r["labels"], r["seed"]) for r in runs) == sorted((l, s) for l in ("random", "true") for s in seeds)
    for r in runs:
        assert r["steps_to_fit"] is not None and r["steps_to_fit"] % numbers["setting"]["eval_every"] == 0
        assert r["train_accuracy"] == 1.0 and r["steps_to_fit"] <= int(numbers["setting"]["steps"].removesuffix("it"))
        for point in ("fit", "end"):
            assert r[point]["eigenvalues"] == sorted(r[point]["eigenvalues"], reverse=True)
            assert r[point]["trace"] > 0 and len(r[point]["effective_dim"]) == len(numbers["setting"]["zs"])
            assert math.isclose(sum(sum(w) for w in r[point]["density"]["weights"]),
                                len(r[point]["density"]["weights"]), rel_tol=1e-6)
    rows = numbers["comparison"]
    steps = rows["steps_to_fit@fit"]
    assert sorted(steps["per_seed"]["true"]) == sorted(r["steps_to_fit"] for r in runs if r["labels"] == "true")
    assert math.isclose(steps["ratio"], steps["random"]["mean"] / steps["true"]["mean"])
    random_test = [r["test_accuracy"] for r in runs if r["labels"] == "random"]
    assert max(random_test) < 0.3     # random labels teach nothing about the true test labels
    report = (figures / "random_labels.md").read_text()
    assert "Zhang" in report and "## Verdict" in report and "Welch" in report and "±" in report
