import pytest
import torch
from torch import nn

from landscape.instruments import EscapeDimensions, escape_dimensions, escape_experiment, minimize
from landscape.operators import Hessian

from .conftest import dense_spectrum, hessian


def test_escape_dimensions_at_a_split_point_are_the_dense_negative_eigenpairs(split_saddle):
    wide, loss_fn, data = split_saddle
    H = hessian(wide, loss_fn, data)
    eigenvalues, vectors = dense_spectrum(H)
    threshold = 1e-3 * float(eigenvalues.abs().max())
    negative = eigenvalues[eigenvalues < -threshold]
    result = escape_dimensions(H, tol=1e-3, k=6)
    assert isinstance(result, EscapeDimensions) and result.complete and result.converged
    assert result.count == negative.numel() >= 1
    torch.testing.assert_close(result.eigenvalues, negative, rtol=0, atol=1e-10)
    dense = H.to_dense()
    for i in range(result.count):   # the dense eigenvectors up to sign, with honest residuals
        v = result.eigenvectors[:, i]
        residual = float(torch.linalg.vector_norm(dense @ v - result.eigenvalues[i] * v))
        assert residual <= 1.01 * float(result.residuals[i]) + 1e-12
        assert abs(float(v @ vectors[:, i])) == pytest.approx(1.0, abs=1e-6)
    assert result.threshold == pytest.approx(threshold, rel=1e-6)
    names = dict(wide.named_parameters())
    for direction, v in zip(result.directions, result.eigenvectors.T):
        assert direction.keys() == names.keys()
        assert all(direction[n].shape == p.shape for n, p in names.items())
        torch.testing.assert_close(torch.cat([d.reshape(-1) for d in direction.values()]), v)


def test_the_loss_falls_along_an_escape_direction_as_its_curvature_says(split_saddle):
    """At a critical point L(theta + s v) = L + s^2 lambda / 2 + O(s^3)."""
    wide, loss_fn, data = split_saddle
    H = hessian(wide, loss_fn, data)
    result = escape_dimensions(H, tol=1e-3, k=6)
    lam, direction = float(result.eigenvalues[0]), result.directions[0]
    s = 1e-2
    moved = {n: p.detach() + s * direction[n] for n, p in wide.named_parameters()}
    loss = float(loss_fn(torch.func.functional_call(wide, moved, (data[0],)), data[1]))
    assert loss - H.loss == pytest.approx(s ** 2 * lam / 2, rel=1e-2)


def test_a_minimum_has_no_escape_dimensions_and_a_tanh_mlp_away_from_one_has_the_dense_count(
        narrow_minimum, regression_data, tanh_problem):
    narrow = escape_dimensions(hessian(narrow_minimum, nn.MSELoss(), regression_data), tol=1e-3, k=4)
    assert narrow.count == 0 and narrow.complete
    H = hessian(*tanh_problem)
    eigenvalues, _ = dense_spectrum(H)
    expected = int((eigenvalues < -1e-2 * eigenvalues.abs().max()).sum())
    result = escape_dimensions(H, tol=1e-2, k=expected + 3)
    assert result.count == expected and result.complete
    partial = escape_dimensions(H, tol=1e-2, k=3)
    assert partial.count == 3 and not partial.complete


def test_minimize_reaches_a_critical_point_and_leaves_the_model_untouched(regression_data):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = minimize(model, nn.MSELoss(), regression_data)
    assert result.gradient_norm < 1e-8 and result.iterations > 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert next(result.model.parameters()).dtype == torch.float64


def test_widening_a_minimum_opens_escape_dimensions_and_gradient_descent_escapes(narrow_minimum, regression_data):
    result = escape_experiment(narrow_minimum, nn.MSELoss(), regression_data, neurons={0: [1]}, steps=1500,
                               polish=False)
    assert result.narrow.count == 0 and result.opened == result.wide.count >= 1
    assert result.wide_loss == pytest.approx(result.narrow_loss, rel=1e-12)   # the same function
    assert result.narrow_gradient_norm < 1e-8 and result.wide_gradient_norm < 1e-8
    assert result.escaped and result.losses[-1] < 0.9 * result.narrow_loss
    assert result.losses.shape == (1501,) and bool((result.losses[1:] <= result.losses[:-1] + 1e-15).all())
    assert result.control_losses[-1] >= result.narrow_loss * (1 - 1e-6)   # the narrow minimum holds


def test_minimize_a_summed_loss_over_uneven_batches_reaches_the_critical_point_of_the_sum(regression_data):
    """The batches of a sum-reduced loss add up (they are not averaged): the polished point is critical for
    the Hessian's loss, whose gradient the operator reports."""
    x, y = regression_data
    batches = [(x[:70], y[:70]), (x[70:150], y[70:150]), (x[150:], y[150:])]
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    summed = nn.MSELoss(reduction="sum")
    result = minimize(model, summed, batches)
    H = Hessian(result.model, summed, batches, dtype=torch.float64, method="reverse")
    assert H.loss == pytest.approx(float(summed(result.model(x), y).detach()), rel=1e-12)
    assert result.loss == pytest.approx(H.loss, rel=1e-12)
    assert float(H.gradient.norm()) < 1e-8 * 200


def test_the_escape_descent_reads_its_losses_from_the_device_once(host_syncs):
    from landscape.instruments.escape import _descend
    from landscape.foundation.params import ParamSpace
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64)
    space = ParamSpace(model)
    reads = []
    for steps in (2, 9):
        host_syncs.count = 0
        losses = _descend(model, space, nn.MSELoss(), (x, y), torch.zeros(space.dim, dtype=torch.float64), 0.1, steps)
        reads.append(host_syncs.count)
        assert losses.shape == (steps + 1,) and bool((losses[1:] <= losses[:-1]).all())
    assert reads[0] == reads[1], f"host reads grow with the steps: {reads}"
