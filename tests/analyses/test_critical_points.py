"""``analyses/critical_points.py``: exact dense derivatives, Levenberg-Marquardt to a certified critical point,
the search with saddle-free Newton escapes, gradient-flat points, and deduplication of the same function under
a permutation of hidden units."""
import math

import torch

from critical_points import FlatLoss, distinct, near_null_share, seek_critical_point, seek_with_escapes
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


class _Scalar(torch.nn.Module):
    """A model whose loss is a closed-form function of its parameter vector (the inputs are ignored)."""

    def __init__(self, f, theta: list[float]) -> None:
        super().__init__()
        self.f = f
        self.p = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))

    def forward(self, x):
        return self.f(self.p) * torch.ones(x.shape[0], dtype=torch.float64)


def _scalar_loss(f, theta: list[float]) -> FlatLoss:
    return FlatLoss(_Scalar(f, theta), lambda out, target: out.mean(), (torch.zeros(1, 1), torch.zeros(1)))


def _quartic(p):
    """x⁴/4 − x²/2 + x + y²: ∂²/∂x² = 0 at x = 1/√3, where ∂/∂x = 1 − 2/(3√3) ≠ 0 (a gradient-flat point);
    the minimum is at the root of x³ − x + 1."""
    return p[0] ** 4 / 4 - p[0] ** 2 / 2 + p[0] + p[1] ** 2


def test_levenberg_marquardt_stalls_at_a_gradient_flat_point_and_does_not_certify_it():
    flat = _scalar_loss(_quartic, [1 / math.sqrt(3), 0.0])
    theta = flat.theta()
    assert float(flat.gradient(theta).norm()) > 0.6 and near_null_share(flat, theta) > 0.99
    found = seek_critical_point(flat, theta, gradient_tol=1e-10, max_iter=50)
    assert not found.critical and found.gradient_norm > 0.6


def test_escapes_leave_the_gradient_flat_point_and_converge_to_the_known_minimum():
    flat = _scalar_loss(_quartic, [1 / math.sqrt(3), 0.0])
    found, escapes = seek_with_escapes(flat, flat.theta(), gradient_tol=1e-10, budget=60, chunk=10, escape=2)
    root = -1.324717957244746   # the real root of x³ − x + 1 (the plastic number, negated)
    assert found.critical and found.gradient_norm <= 1e-10 and escapes >= 1 and found.iterations <= 60
    assert abs(float(found.theta[0]) - root) < 1e-9 and float(found.eigenvalues[0]) > 0
    assert near_null_share(flat, found.theta) < 1.0


def test_escapes_return_a_perturbed_minimum_of_an_mlp_like_plain_levenberg_marquardt():
    model, loss_fn, data = _problem()
    flat = FlatLoss(minimize(model, loss_fn, data, max_iter=500).model, loss_fn, data)
    minimum = flat.theta()
    start = minimum + 1e-2 * torch.randn(minimum.shape, generator=torch.Generator().manual_seed(1),
                                         dtype=torch.float64)
    found, escapes = seek_with_escapes(flat, start, gradient_tol=1e-10, budget=50)
    assert found.critical and escapes == 0 and float((found.theta - minimum).norm()) < 1e-6


def test_escapes_refuse_to_certify_where_every_point_is_gradient_flat():
    flat = _scalar_loss(lambda p: p[0] + p[1] ** 2, [0.0, 0.0])   # g = (1, 2y), H = diag(0, 2): no critical point
    found, escapes = seek_with_escapes(flat, flat.theta(), gradient_tol=1e-6, budget=40, chunk=5, escape=2)
    assert not found.critical and found.iterations <= 40 and escapes >= 1
    assert abs(found.gradient_norm - 1.0) < 1e-9 and near_null_share(flat, found.theta) > 0.99
    assert found.loss < 0   # the escapes moved downhill along x; the root search alone cannot move
