import math

import pytest
import torch
from torch import nn

from landscape.instruments import FisherTrace, fisher_trace
from landscape.operators import GGN, Fisher


def per_sample_squared_norms(model: nn.Module, loss_fn, x, y) -> torch.Tensor:
    """||d loss_fn(f(x_i), y_i) / d theta||^2 one sample at a time, by plain autograd (an independent reference)."""
    norms = []
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(loss_fn(model(x[i:i + 1]), y[i:i + 1]), list(model.parameters()))
        norms.append(sum(float(g.pow(2).sum()) for g in grads))
    return torch.tensor(norms, dtype=torch.float64)


def test_empirical_fisher_trace_is_the_mean_squared_per_sample_gradient_norm(tanh_problem):
    model, loss_fn, (x, y) = tanh_problem
    expected = float(per_sample_squared_norms(model, loss_fn, x, y).mean())
    batches = [(x[:13], y[:13]), (x[13:31], y[13:31]), (x[31:], y[31:])]   # uneven batches, small chunks
    result = fisher_trace(model, loss_fn, batches, chunk_size=4)
    assert isinstance(result, FisherTrace) and result.kind == "empirical" and result.stderr == 0.0
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.samples == 40 and result.dim == sum(p.numel() for p in model.parameters())
    dense = Fisher(model, loss_fn, (x, y), kind="empirical", dtype=torch.float64).to_dense()
    assert result.value == pytest.approx(float(torch.trace(dense)), rel=1e-10)


@pytest.mark.parametrize("samples", [1, 3])
def test_true_fisher_trace_is_the_trace_of_the_true_fisher_with_the_same_draws(tanh_problem, samples):
    model, loss_fn, data = tanh_problem
    dense = Fisher(model, loss_fn, data, kind="true", samples=samples, seed=7, dtype=torch.float64).to_dense()
    result = fisher_trace(model, loss_fn, data, "true", samples=samples, seed=7)
    assert result.value == pytest.approx(float(torch.trace(dense)), rel=1e-10)
    assert result.samples == 40 * samples and result.draws == samples and result.stderr > 0


@pytest.mark.parametrize("samples", [1, 2])
def test_true_fisher_stderr_covers_the_exact_trace_at_the_stated_rate(tanh_problem, samples):
    """For cross-entropy E_y[F] is the GGN, so tr(GGN) is the exact true-Fisher trace; value +- 2 stderr must
    cover it about 95% of the time over seeds (at least 88% of 100 here; S = 1 over-covers by design)."""
    model, loss_fn, data = tanh_problem
    exact = float(torch.trace(GGN(model, loss_fn, data, dtype=torch.float64, method="reverse").to_dense()))
    results = [fisher_trace(model, loss_fn, data, "true", samples=samples, seed=seed) for seed in range(100)]
    covered = sum(abs(r.value - exact) <= 2 * r.stderr for r in results)
    assert covered >= 88
    mean = sum(r.value for r in results) / len(results)
    spread = math.sqrt(sum(r.stderr ** 2 for r in results)) / len(results)
    assert abs(mean - exact) <= 4 * spread   # unbiased


def test_the_model_and_the_global_random_state_are_untouched(tanh_problem):
    model, loss_fn, data = tanh_problem
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    fisher_trace(model, loss_fn, data, "true", samples=2)
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "exact"}, "kind must be one of"),
    ({"kind": "empirical", "samples": 2}, "only kind='true'"),
    ({"chunk_size": 0}, "chunk_size must be positive"),
])
def test_clear_errors(tanh_problem, kwargs, match):
    model, loss_fn, data = tanh_problem
    with pytest.raises(ValueError, match=match):
        fisher_trace(model, loss_fn, data, **kwargs)


def test_batch_statistics_are_refused():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).train()
    with pytest.raises(ValueError, match="model.eval"):
        fisher_trace(model, nn.CrossEntropyLoss(), (torch.randn(8, 3), torch.randint(0, 2, (8,))))


@pytest.mark.parametrize("kind", ["empirical", "true"])
def test_fisher_trace_of_a_summed_loss_is_the_trace_of_its_fisher(tanh_problem, kind):
    """For a sum-reduced loss the Fisher sums the per-sample outer products: the trace is N times the mean one."""
    model, _, (x, y) = tanh_problem
    summed = nn.CrossEntropyLoss(reduction="sum")
    batches = [(x[:13], y[:13]), (x[13:31], y[13:31]), (x[31:], y[31:])]
    dense = Fisher(model, summed, batches, kind=kind, samples=2 if kind == "true" else 1, seed=7,
                   dtype=torch.float64).to_dense()
    result = fisher_trace(model, summed, batches, kind, samples=2 if kind == "true" else 1, seed=7)
    mean = fisher_trace(model, nn.CrossEntropyLoss(), batches, kind, samples=2 if kind == "true" else 1, seed=7)
    assert result.value == pytest.approx(float(torch.trace(dense)), rel=1e-10)
    assert result.value == pytest.approx(40 * mean.value, rel=1e-10)
    assert result.stderr == pytest.approx(40 * mean.stderr, rel=1e-10)


def test_fisher_trace_refuses_what_has_no_per_sample_mean(tanh_problem):
    model, _, (x, y) = tanh_problem
    with pytest.raises(ValueError, match="reduction='none'"):
        fisher_trace(model, nn.CrossEntropyLoss(reduction="none"), (x, y))
    with pytest.raises(ValueError, match="class weights.*reduction='sum'"):
        fisher_trace(model, nn.CrossEntropyLoss(weight=torch.ones(int(y.max()) + 1)), (x, y))
    with pytest.raises(ValueError, match="ignore_index.*reduction='sum'"):
        fisher_trace(model, nn.CrossEntropyLoss(), (x, y.index_fill(0, torch.tensor([0]), -100)))
