"""Our Laplace/Occam term against laplace-torch's log marginal likelihood (optional:
``pip install --no-deps -r tests/requirements-laplace.txt``).

laplace-torch's ``FullLaplace.log_marginal_likelihood()`` (Immer et al. 2021; ``laplace/baselaplace.py``) is

    ``log_lik − ½ (log det P − log det P₀) − ½ (θ − μ₀)ᵀ P₀ (θ − μ₀)``,  ``P = H + P₀``,

with ``log_lik = −Σ_n ℓ_n`` (the summed cross-entropy), ``H`` the full GGN (``GGNInterface``, ``CurvlinopsGGN``) or
Hessian (``CurvlinopsHessian``) of that sum, ``P₀ = δ I`` and ``μ₀ = 0``. Our :func:`landscape.instruments.flatness`
gives ``occam = −½ Σ_i log(λ_i⁺ + δ)`` over the eigenvalues ``λ_i`` of the operator it is handed; for the
sum-reduced loss's GGN (positive semi-definite) that is ``−½ log det P``, so

    ``occam + ½ n log δ = −½ (log det P − log det P₀)``   (laplace-torch's ``−½ log_det_ratio``),

and the whole log marginal likelihood is ``−Σ ℓ_n + occam + ½ n log δ − ½ δ ‖θ‖²``. The tests compare the matrices
(dense, float64), these terms from the exact spectrum, and our stochastic estimate within its standard error.
"""
import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

laplace = pytest.importorskip("laplace")
from laplace import FullLaplace  # noqa: E402
from laplace.curvature import CurvlinopsHessian, GGNInterface  # noqa: E402

from landscape.instruments import flatness  # noqa: E402
from landscape.operators import GGN, Hessian  # noqa: E402
from landscape.training.evaluation import evaluate  # noqa: E402

DELTA = 0.5   # prior precision, on the scale of the summed loss


def problem(hidden: int | None) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """40 Gaussian inputs in 4 dimensions, 3 random classes; a tanh MLP (4-``hidden``-3) or, with ``hidden=None``,
    multinomial logistic regression (its Hessian is its GGN, positive semi-definite everywhere), float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = (nn.Linear(4, 3) if hidden is None else nn.Sequential(nn.Linear(4, hidden), nn.Tanh(),
                                                                      nn.Linear(hidden, 3))).double()
    return model, (x, y)


def fitted_laplace(model: nn.Module, data, backend) -> FullLaplace:
    """laplace-torch's full Laplace approximation with prior precision ``DELTA`` (on a copy: fitting sets
    attributes on the model)."""
    la = FullLaplace(copy.deepcopy(model), "classification", prior_precision=DELTA, backend=backend)
    la.fit(DataLoader(TensorDataset(*data), batch_size=16))
    return la


def dense(op) -> torch.Tensor:
    """The operator as a dense matrix (its columns are the products with the unit vectors)."""
    return op.matmat(torch.eye(op.shape[0], dtype=torch.float64))


def occam_factor(eigenvalues: torch.Tensor) -> float:
    """``−½ Σ log(1 + λ⁺/δ)``: our Occam term plus ``½ n log δ`` from an exact spectrum."""
    return float(-0.5 * torch.log1p(eigenvalues.clamp(min=0) / DELTA).sum())


# laplace-torch's CurvlinopsHessian multiplies curvlinops' operator by a float32 identity (``torch.eye(n)`` in
# laplace/curvature/curvlinops.py), so its Hessian carries float32 rounding (relative 2e-6 here): compared at 1e-5.
@pytest.mark.parametrize("operator, backend, hidden, rtol",
                         [(GGN, GGNInterface, 6, 1e-10), (Hessian, CurvlinopsHessian, None, 1e-5)],
                         ids=["ggn-mlp", "hessian-logistic"])
def test_curvature_and_log_det_ratio_match_laplace_torch(operator, backend, hidden, rtol):
    model, data = problem(hidden)
    ours = dense(operator(model, nn.CrossEntropyLoss(reduction="sum"), data, dtype=torch.float64))
    la = fitted_laplace(model, data, backend)
    scale = float(ours.abs().max())
    torch.testing.assert_close(ours, la.H, rtol=rtol, atol=rtol * scale)   # the same matrix, summed over samples
    theirs = -0.5 * float(la.log_det_ratio)
    assert occam_factor(torch.linalg.eigvalsh(ours)) == pytest.approx(theirs, rel=rtol)


def test_log_marginal_likelihood_from_our_pieces():
    model, data = problem(6)
    la = fitted_laplace(model, data, GGNInterface)
    op = GGN(model, nn.CrossEntropyLoss(reduction="sum"), data, dtype=torch.float64)
    log_lik = -evaluate(model, nn.CrossEntropyLoss(reduction="sum"), data).loss
    squared_norm = float(sum(p.detach().pow(2).sum() for p in model.parameters()))
    ours = log_lik + occam_factor(torch.linalg.eigvalsh(dense(op))) - 0.5 * DELTA * squared_norm
    assert ours == pytest.approx(float(la.log_marginal_likelihood()), rel=1e-10)
    assert log_lik == pytest.approx(float(la.log_likelihood), rel=1e-12)
    assert 0.5 * DELTA * squared_norm == pytest.approx(0.5 * float(la.scatter), rel=1e-12)


def test_flatness_occam_estimate_covers_laplace_torch_log_det():
    """The stochastic (deflated SLQ) Occam term of ``flatness`` against laplace-torch's exact ``−½ log det P``:
    within four of its standard errors, and the standard error small enough for the comparison to mean something."""
    model, data = problem(6)
    op = GGN(model, nn.CrossEntropyLoss(reduction="sum"), data, dtype=torch.float64)
    la = fitted_laplace(model, data, GGNInterface)
    theirs = -0.5 * float(la.log_det_posterior_precision)
    for seed in range(3):
        f = flatness(op, delta=DELTA, k=10, steps=60, runs=30, seed=seed)
        assert f.dim == la.n_params
        assert abs(f.occam - theirs) <= 4 * f.occam_stderr + 1e-9, (f.occam, f.occam_stderr, theirs)
        assert f.occam_stderr < 0.02 * abs(theirs - (-0.5 * f.dim * math.log(DELTA)))
