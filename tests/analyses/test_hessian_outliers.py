"""``analyses/hessian_outliers.py``: the outlier-counting rules, the class-pair means of the GGN, and ``--quick``
end to end."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import hessian_outliers  # analyses/ is on sys.path: see conftest.py
from landscape import GGN

C = hessian_outliers.CLASSES


def _spectrum() -> np.ndarray:
    decay = 0.97 ** np.arange(10)           # the same ratio between neighbours within each group
    return np.concatenate([30.0 * decay, decay, 0.5 * decay])


def test_outlier_count_is_the_number_above_the_largest_log_gap():
    spectrum = _spectrum()
    assert hessian_outliers.outlier_count(spectrum) == 10
    assert hessian_outliers.log_gaps(spectrum)[9] / np.median(hessian_outliers.log_gaps(spectrum)) > 10


def test_the_rules_disagree_where_the_spectrum_has_two_big_gaps():
    spectrum = _spectrum()
    # largest gap after 10 (factor 30 × 0.97^9), a smaller but still big one after 20 (factor 0.97^9 / 0.5)
    assert hessian_outliers.outlier_count(spectrum) == 10
    assert hessian_outliers.last_big_gap_count(spectrum) == 20
    assert hessian_outliers.last_big_gap_count(0.97 ** np.arange(12)) == 0     # no big gap at all
    assert hessian_outliers.two_means_count(spectrum) == 10
    assert hessian_outliers.two_means_count([8.0, 7.9, 7.8, 1.0]) == 3


def test_mp_edge_is_the_marchenko_pastur_upper_edge():
    # Marchenko-Pastur with ratio γ and scale σ²: mean σ², second moment σ⁴(1 + γ), edge σ²(1 + √γ)²
    sigma2, gamma = 0.5, 0.25
    edge = hessian_outliers.mp_edge(sigma2, sigma2 ** 2 * (1 + gamma))
    assert edge == pytest.approx(sigma2 * (1 + gamma ** 0.5) ** 2)
    assert np.isnan(hessian_outliers.mp_edge(-1.0, 1.0))
    assert hessian_outliers.mp_edge_count([3.0, 2.0, 1.0, 0.5], edge) == 2
    assert hessian_outliers.mp_edge_count([3.0, 2.0], float("nan")) == 2


def test_log_gaps_refuse_non_positive_eigenvalues():
    with pytest.raises(ValueError, match="positive"):
        hessian_outliers.log_gaps([2.0, 1.0, 0.0])


def _tiny(per_class: int):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, C)).double()
    x = torch.randn(per_class * C, 4, dtype=torch.float64)
    y = torch.arange(C).repeat(per_class)
    ggn = GGN(model, nn.CrossEntropyLoss(), [(x, y)])
    dense = ggn.matmat(torch.eye(ggn.shape[0], dtype=torch.float64))
    D, priors = hessian_outliers.class_pair_means(model, ggn.space, x, y)
    B = D * priors.repeat_interleave(C).sqrt()
    return dense, B @ B.T


def test_class_pair_means_give_the_ggn_exactly_with_one_sample_per_class():
    dense, g_means = _tiny(per_class=1)    # no within-class variation: G = sum π_c δ_cc' δ_cc'^T
    assert torch.allclose(g_means, dense, atol=1e-12, rtol=1e-10)


def test_the_means_part_is_below_the_ggn_with_several_samples_per_class():
    dense, g_means = _tiny(per_class=3)    # G - G_means = sum π_c Σ_cc', a covariance: positive semi-definite
    assert not torch.allclose(g_means, dense, atol=1e-6)
    assert torch.linalg.eigvalsh(dense - g_means).min() > -1e-12


def test_principal_cosines_of_a_subspace_and_a_rotation_of_it():
    basis = torch.linalg.qr(torch.randn(20, 3, dtype=torch.float64))[0]
    rotated = basis @ torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    assert torch.allclose(hessian_outliers.principal_cosines(basis, rotated), torch.ones(3, dtype=torch.float64))
    other = torch.linalg.qr(torch.cat([basis, torch.randn(20, 2, dtype=torch.float64)], 1))[0][:, 3:]
    assert hessian_outliers.principal_cosines(basis[:, :2], other).max() < 1e-10


def test_quick_run_writes_figures_report_and_numbers(run_script, tmp_path, one_thread):
    out, figures = tmp_path / "runs", tmp_path / "figures"
    run_script("hessian_outliers", "--quick", "--out", str(out), "--figures", str(figures))
    for name in ("counts", "classmeans", "density", "eigenvalues"):
        assert (figures / f"hessian_outliers_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((figures / "hessian_outliers.json").read_text())
    setting = numbers["setting"]
    k = setting["top_k"]
    assert set(numbers["summaries"]) == {"MLP", "MLP + BatchNorm"}
    for label, summary in numbers["summaries"].items():
        assert set(summary) == {str(t) for t in setting["times"]}
        for at in summary.values():
            for rule in hessian_outliers.RULES:
                counts = at["per_seed"][f"count: {rule}"]
                assert len(counts) == len(setting["seeds"]) and all(0 <= c <= k for c in counts)
            for span in hessian_outliers.SPANS:
                assert all(0 <= f <= 1 + 1e-9 for f in at["per_seed"][f"fraction: {span}"])
        for run in numbers["spectra"][label]:
            for record in run.values():
                top = np.asarray(record["hessian"]["eigenvalues"])
                assert top.size == k and np.all(np.diff(top) <= 0) and top[-1] > 0
                # the GGN is the Hessian minus a term that is small near a minimum of the cross-entropy
                assert record["ggn"]["eigenvalues"][0] == pytest.approx(top[0], rel=0.2)
                means = record["class_means"]
                assert means["all class-pair means"]["dimension"] <= C * C
                # a subspace containing another holds at least as much of every vector
                assert np.all(np.asarray(means["all class-pair means"]["fractions"]) + 1e-9 >=
                              np.asarray(means["top C of G_means"]["fractions"]))
    report = (figures / "hessian_outliers.md").read_text()
    assert "Papyan" in report and "Ghorbani" in report and "## Verdicts" in report
    assert "class means" in report and "MP edge" in report
