"""``analyses/critical_points.py``: exact dense derivatives, Levenberg-Marquardt to a certified critical point,
and deduplication of the same function under a permutation of hidden units."""
import torch

from critical_points import FlatLoss, distinct, seek_critical_point
from landscape.instruments import minimize
from landscape.operators import Hessian


def _problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    teacher = torch.randn(3, 4, generator=gen, dtype=torch.float64)   # 4 units: a 2-unit student's minima are strict
    y = torch.tanh(x @ teacher) @ torch.randn(4, 1, generator=gen, dtype=torch.float64)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)).double()
    return model, torch.nn.MSELoss(), (x, y)


def test_flat_hessian_is_the_library_dense_hessian_and_model_is_untouched():
    model, loss_fn, data = _problem()
    before = [p.detach().clone() for p in model.parameters()]
    flat = FlatLoss(model, loss_fn, data)
    theta = flat.theta()
    dense = Hessian(model, loss_fn, data, dtype=torch.float64).to_dense()
    assert torch.allclose(flat.hessian(theta), dense, atol=1e-12, rtol=1e-10)
    assert torch.isclose(flat.loss(theta), loss_fn(model(data[0]), data[1]), rtol=1e-14)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_levenberg_marquardt_returns_to_a_perturbed_minimum_and_certifies_it():
    model, loss_fn, data = _problem()
    flat = FlatLoss(minimize(model, loss_fn, data, max_iter=500).model, loss_fn, data)
    minimum = flat.theta()
    start = minimum + 1e-2 * torch.randn(minimum.shape, generator=torch.Generator().manual_seed(1),
                                         dtype=torch.float64)
    assert float(flat.gradient(start).norm()) > 1e-4
    found = seek_critical_point(flat, start, gradient_tol=1e-10, max_iter=50)
    assert found.critical and found.gradient_norm <= 1e-10 and found.iterations < 50
    assert float((found.theta - minimum).norm()) < 1e-6
    assert found.index(1e-3) == 0.0 and float(found.eigenvalues[0]) > 0


def test_search_that_cannot_converge_is_reported_not_critical():
    model, loss_fn, data = _problem()
    flat = FlatLoss(model, loss_fn, data)
    found = seek_critical_point(flat, flat.theta(), gradient_tol=1e-30, max_iter=3)
    assert not found.critical and found.iterations == 3


def test_distinct_merges_permuted_hidden_units_only():
    model, loss_fn, data = _problem()
    flat = FlatLoss(model, loss_fn, data)
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    permuted = torch.cat([w1.flip(0).reshape(-1), b1.flip(0), w2.flip(1).reshape(-1), b2])
    other = flat.theta() + 0.1
    signatures = [flat.outputs(t).detach() for t in (flat.theta(), other, permuted)]
    assert distinct(signatures, 1e-10) == [0, 1, 0]
