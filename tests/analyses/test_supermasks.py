"""``analyses/supermasks.py``: the --quick run end to end, the initialisations it uses, its best-cell choice."""
import json
import math

import numpy as np
import torch

import supermasks as script
from landscape.models import build_model


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("supermasks", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("untrained", "trained"):
        assert (figures / f"supermasks_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "supermasks.json").read_text())
    seeds = len(script.QUICK.seeds)
    assert set(numbers["untrained"]) == set(script.BIASES)
    for bias in script.BIASES:
        assert set(numbers["untrained"][bias]) == set(script.MASKS)
        assert all(np.shape(a) == (seeds, len(script.QUICK.supermask_rounds))
                   for a in numbers["untrained"][bias].values())
    assert all(np.shape(a) == (seeds, len(script.QUICK.sign_rounds)) for a in numbers["trained"].values())
    assert set(numbers["edge_popup"]) == set(script.POPUP)
    assert all(0.0 <= x <= 1.0 for a in numbers["edge_popup"].values() for x in a)
    report = (figures / "supermasks.md").read_text()
    assert "## Verdict" in report and "Zhou" in report and "86%" in report
    assert report.count("* **") == 5 and "reproduce" in report


def test_scaled_kaiming_normal_has_the_papers_scale_and_zero_biases():
    model = build_model("lenet300", input_shape=(40,), num_classes=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = script.scaled_kaiming_normal(model, 0.5, seed=0)
    for name, p in out.named_parameters():
        if p.ndim > 1:
            expected = math.sqrt(2.0 / (p.shape[1] * 0.5))
            assert abs(p.std().item() / expected - 1) < 0.1, name
        else:
            assert torch.all(p == 0), name
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())   # the original is untouched


def test_zero_biases_keeps_the_weights():
    model = build_model("lenet300", input_shape=(40,), num_classes=10)
    out = script.zero_biases(model)
    for (name, p), q in zip(model.named_parameters(), out.parameters()):
        if p.ndim > 1:
            assert torch.equal(q, p), name
        else:
            assert torch.all(q == 0) and p.abs().sum() > 0, name


def test_best_supermask_is_the_highest_mean_cell():
    low = np.full((3, 2), 0.1)
    untrained = {b: {c: low.copy() for c in script.ZHOU_CRITERIA} for b in script.BIASES}
    untrained["zero biases"]["magnitude_increase"][:, 1] = [0.30, 0.32, 0.31]
    best = script.best_supermask(untrained)
    assert (best["bias"], best["criterion"], best["index"]) == ("zero biases", "magnitude_increase", 1)
    assert best["p_above_chance"] < 0.01
