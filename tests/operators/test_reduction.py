"""Sum- and mean-reduced losses over uneven batches: every operator is the exact matrix of the loss over
ALL samples, against float64 truths (torch.func of the full-data loss, per-sample gradients)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.operators import GGN, Fisher, Hessian
from landscape.operators.reduction import ReductionError, loss_reduction

from .references import (Flat, assert_products_match, dense_ggn, dense_hessian, per_sample_gradients,
                         relative_error, uneven)

F64 = torch.float64
CUTS = (7, 15)   # 20 samples in batches of 7, 8 and 5


def sum_of_cross_entropies(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A plain callable the operators cannot inspect."""
    return F.cross_entropy(z, y, reduction="sum")


def regression(classification):
    x = classification[0]
    return x, torch.randn(20, 3, generator=torch.Generator().manual_seed(0))


# (loss_fn, reduction= argument, regression targets?)
LOSSES = {
    "CrossEntropyLoss(sum)": (nn.CrossEntropyLoss(reduction="sum"), None, False),
    "CrossEntropyLoss(mean)": (nn.CrossEntropyLoss(), None, False),
    "MSELoss(sum)": (nn.MSELoss(reduction="sum"), None, True),
    "MSELoss(mean)": (nn.MSELoss(), None, True),
    "callable, reduction='sum'": (sum_of_cross_entropies, "sum", False),
    "callable, mean": (lambda z, y: F.cross_entropy(z, y), None, False),
}


def problem(name, classification):
    loss_fn, reduction, is_regression = LOSSES[name]
    x, y = regression(classification) if is_regression else classification
    return loss_fn, ({} if reduction is None else {"reduction": reduction}), x, y


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_hessian_is_that_of_the_loss_over_all_samples(mlp, classification, name, method):
    loss_fn, options, x, y = problem(name, classification)
    if method == "forward" and name == "MSELoss(mean)":   # torch 2.13: forward over mse_loss's mean backward fails
        with pytest.raises(RuntimeError, match="method='reverse'"):
            Hessian(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64, method=method) @ torch.ones(57, dtype=F64)
        return
    H = Hessian(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64, method=method, **options)
    assert_products_match(H, dense_hessian(mlp, loss_fn, x, y))


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_and_gradient_are_those_of_all_samples(mlp, classification, name):
    loss_fn, options, x, y = problem(name, classification)
    flat = Flat(mlp)
    truth = flat.loss(loss_fn, x, y)
    H = Hessian(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64, method="reverse", **options)
    assert H.loss == pytest.approx(float(truth(flat.theta)), rel=1e-12)
    assert relative_error(H.gradient, torch.func.grad(truth)(flat.theta)) < 1e-12


@pytest.mark.parametrize("name", list(LOSSES))
def test_ggn_is_that_of_the_loss_over_all_samples(mlp, classification, name):
    loss_fn, options, x, y = problem(name, classification)
    G = GGN(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64, **options)
    assert_products_match(G, dense_ggn(mlp, loss_fn, x, y))


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("cache_bytes", [2 ** 30, 0])
def test_empirical_fisher_sums_or_averages_per_sample_outer_products(mlp, classification, name, cache_bytes):
    loss_fn, options, x, y = problem(name, classification)
    g = per_sample_gradients(mlp, loss_fn, x, y)   # loss_fn on batches of one
    total = g.T @ g
    truth = total if (LOSSES[name][1] or getattr(loss_fn, "reduction", "mean")) == "sum" else total / 20
    assert_products_match(Fisher(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64, cache_bytes=cache_bytes,
                                 **options), truth)


def test_fisher_of_a_sum_is_n_times_the_fisher_of_the_mean(mlp, classification):
    x, y = classification
    data = uneven(x, y, CUTS)
    V = torch.randn(57, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    for kind, samples in (("empirical", 1), ("true", 3)):
        total = Fisher(mlp, nn.CrossEntropyLoss(reduction="sum"), data, dtype=F64, kind=kind, samples=samples)
        mean = Fisher(mlp, nn.CrossEntropyLoss(), data, dtype=F64, kind=kind, samples=samples)
        assert relative_error(total.matmat(V), 20 * mean.matmat(V)) < 1e-12


@pytest.mark.parametrize("name", ["CrossEntropyLoss(sum)", "MSELoss(sum)"])
def test_true_fisher_of_a_sum_approaches_the_ggn_of_the_sum(mlp, classification, name):
    loss_fn, _, x, y = problem(name, classification)
    ggn = dense_ggn(mlp, loss_fn, x, y)
    errors = [relative_error(Fisher(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64, kind="true",
                                    samples=s).to_dense(), ggn) for s in (20, 2000)]
    # Monte Carlo error ~ 1/sqrt(samples): 2000 draws per input give ~2% in the Frobenius norm
    assert errors[1] < 0.05 and errors[1] < errors[0] / 4


def test_class_weighted_cross_entropy_mean_divides_by_all_the_weights(mlp, classification):
    x, y = classification
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0], dtype=F64))
    for operator, dense in ((Hessian, dense_hessian), (GGN, dense_ggn)):
        assert_products_match(operator(mlp, weighted, uneven(x, y, CUTS), dtype=F64), dense(mlp, weighted, x, y))


def test_ignored_targets_leave_the_mean_over_the_kept_ones(mlp, classification):
    x, y = classification
    y = y.clone()
    y[[0, 1, 2, 3, 9]] = -100   # four of the first batch's seven, one of the second's
    loss_fn = nn.CrossEntropyLoss()
    assert_products_match(Hessian(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64), dense_hessian(mlp, loss_fn, x, y))
    with pytest.raises(ReductionError, match="ignore_index=-100.*reduction='sum'"):
        Fisher(mlp, loss_fn, uneven(x, y, CUTS), dtype=F64)
    summed = nn.CrossEntropyLoss(reduction="sum")
    g = per_sample_gradients(mlp, summed, x, y)
    assert_products_match(Fisher(mlp, summed, uneven(x, y, CUTS), dtype=F64), g.T @ g)


def test_fisher_refuses_a_class_weighted_mean(mlp, classification):
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0]))
    with pytest.raises(ReductionError, match="class weights.*reduction='sum'"):
        Fisher(mlp, weighted, classification)


@pytest.mark.parametrize("operator", [Hessian, GGN, Fisher])
def test_reduction_none_is_refused_by_name(mlp, classification, operator):
    with pytest.raises(ReductionError, match="reduction='none'.*reduction='mean' or reduction='sum'"):
        operator(mlp, nn.CrossEntropyLoss(reduction="none"), classification)


def test_a_reduction_that_contradicts_the_loss_is_refused(mlp, classification):
    with pytest.raises(ReductionError, match="reduction='sum' contradicts"):
        Hessian(mlp, nn.CrossEntropyLoss(), classification, reduction="sum")
    with pytest.raises(ReductionError, match="reduction='sum' contradicts"):
        Hessian(mlp, F.cross_entropy, classification, reduction="sum")
    with pytest.raises(ReductionError, match="reduction='mean' contradicts"):
        Hessian(mlp, nn.MSELoss(reduction="sum"), regression(classification), reduction="mean")
    with pytest.raises(ReductionError, match="'mean' or 'sum'"):
        Hessian(mlp, nn.CrossEntropyLoss(), classification, reduction="total")


def test_a_callable_that_visibly_sums_is_refused_when_assumed_mean(mlp, classification):
    x, y = classification
    with pytest.raises(ReductionError, match="looks sum-reduced.*reduction='sum'"):
        Hessian(mlp, sum_of_cross_entropies, uneven(x, y, CUTS))
    with pytest.raises(ReductionError, match="looks mean-reduced.*reduction='mean'"):
        Hessian(mlp, lambda z, t: F.cross_entropy(z, t), uneven(x, y, CUTS), reduction="sum")


def test_a_callable_with_a_penalty_is_not_mistaken_for_a_sum(mlp, classification):
    x, y = classification

    def penalised(z, t):
        return F.cross_entropy(z, t) + 0.1 * z.pow(2).mean()

    assert_products_match(Hessian(mlp, penalised, uneven(x, y, CUTS), dtype=F64), dense_hessian(mlp, penalised, x, y))


def test_reductions_are_read_from_the_loss():
    assert loss_reduction(nn.CrossEntropyLoss(reduction="sum")) == "sum"
    assert loss_reduction(nn.KLDivLoss(reduction="batchmean")) == "mean"
    assert loss_reduction(F.mse_loss) == "mean"
    assert loss_reduction(sum_of_cross_entropies) == "mean"
    assert loss_reduction(sum_of_cross_entropies, "sum") == "sum"


def test_a_batch_whose_targets_are_all_ignored_is_refused_by_name(mlp, classification):
    x, y = classification
    with pytest.raises(ReductionError, match="batch 1's mean loss divides by 0.*every target ignored"):
        Hessian(mlp, nn.CrossEntropyLoss(), [(x[:10], y[:10]), (x[10:], torch.full((10,), -100))])
