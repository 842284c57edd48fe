"""Hessian products against dense torch.func Hessians (float64, relative error < 1e-10)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.operators import Hessian, autodiff, methods

from .references import RTOL, WithUnused, assert_products_match, dense_hessian, relative_error, uneven

CE = nn.CrossEntropyLoss()
F64 = torch.float64


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_hessian_matches_dense_on_tanh_mlp_with_negative_eigenvalues(mlp, classification, method):
    x, y = classification
    dense = dense_hessian(mlp, CE, x, y)
    assert torch.linalg.eigvalsh(dense)[0] < -1e-3   # away from a minimum
    H = Hessian(mlp, CE, (x, y), dtype=F64, method=method)
    assert H.shape == (dense.shape[0],) * 2 and H.dtype == F64
    assert_products_match(H, dense)


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_hessian_matches_dense_on_batchnorm_cnn_in_eval_mode(cnn_problem, method):
    model, x, y = cnn_problem
    H = Hessian(model, CE, (x, y), dtype=F64, method=method)
    assert_products_match(H, dense_hessian(model, CE, x, y))


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_attention_model_matches_dense_under_math_sdpa_kernel(attention_problem, method):
    model, x, y = attention_problem
    H = Hessian(model, CE, (x, y), dtype=F64, method=method)
    assert_products_match(H, dense_hessian(model, CE, x, y))


@pytest.mark.parametrize("cache_bytes", [2 ** 30, 0])
@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_uneven_batches_give_the_full_data_hessian(mlp, classification, method, cache_bytes):
    x, y = classification
    one = Hessian(mlp, CE, (x, y), dtype=F64, method=method)
    several = Hessian(mlp, CE, uneven(x, y, (8, 16)), dtype=F64, method=method, cache_bytes=cache_bytes)
    assert several.num_samples == 20 and (several.cached_bytes > 0) == (cache_bytes > 0)
    assert_products_match(several, one.to_dense())
    assert abs(several.loss - one.loss) < 1e-12
    assert relative_error(several.gradient, one.gradient) < RTOL


def test_unused_parameter_gives_zero_rows(classification):
    torch.manual_seed(0)
    model = WithUnused()
    x, y = classification[0][:, :4], classification[1]
    for method in ("reverse", "forward"):
        H = Hessian(model, CE, (x, y), dtype=F64, method=method)
        assert H.space.names[0] == "unused"   # a module's own parameters come before its children's
        D = H.to_dense()
        assert torch.all(D[:2] == 0) and torch.all(D[:, :2] == 0)
        assert relative_error(D[2:, 2:], dense_hessian(model.body, CE, x, y)) < RTOL


def test_masked_operator_is_the_principal_submatrix_on_surviving_coordinates(mlp, classification):
    x, y = classification
    mask = (torch.rand(6, 5, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    H = Hessian(mlp, CE, (x, y), dtype=F64, masks={"0.weight": mask}, method="reverse")
    keep = torch.cat([mask.reshape(-1) > 0, torch.ones(6 + 18 + 3, dtype=torch.bool)])
    assert H.shape[0] == int(keep.sum())
    sub = dense_hessian(mlp, CE, x, y)[keep][:, keep]
    assert_products_match(H, sub)


def test_parameter_subset_by_names_and_by_predicate(mlp, classification):
    x, y = classification
    dense = dense_hessian(mlp, CE, x, y, names=["2.weight", "2.bias"])
    by_names = Hessian(mlp, CE, (x, y), dtype=F64, params=["2.weight", "2.bias"], method="forward")
    by_predicate = Hessian(mlp, CE, (x, y), dtype=F64, params=lambda n, p: n.startswith("2."))
    assert_products_match(by_names, dense)
    assert_products_match(by_predicate, dense)


def test_auto_method_learns_from_the_first_products_and_keeps_them_exact(mlp, classification, monkeypatch):
    monkeypatch.setattr(autodiff, "forward_mode_ready", lambda: True)
    monkeypatch.setattr(methods, "WORTH_A_TRIAL", 0.0)   # these products take microseconds
    H = Hessian(mlp, CE, classification, dtype=F64)
    assert H.method_choice.chosen == {} and H.matvecs == 0   # construction times nothing
    dense = dense_hessian(mlp, CE, *classification)
    used = []
    for _ in range(4):   # two trials of each method at one vector, then the choice
        used.append(H.method_for(1))
        v = torch.randn(dense.shape[0], dtype=F64)
        assert relative_error(H @ v, dense @ v) < 1e-10
    assert used == ["reverse", "reverse", "forward", "forward"] and H.matvecs == 4
    assert set(H.method_choice.chosen) == {0} and H.method_for(1) in ("reverse", "forward")
    assert H.method_choice.deciding(10) and not H.method_choice.deciding(1)
    assert_products_match(H, dense)


@pytest.mark.parametrize("ready, worth_a_trial", [(False, 0.0), (True, methods.WORTH_A_TRIAL)])
def test_auto_method_does_not_try_forward_mode_when_it_cannot_repay(mlp, classification, monkeypatch, ready,
                                                                   worth_a_trial):
    """Forward mode's first use imports torch._dynamo (seconds), and trying it costs products: neither is worth
    it when reverse products take microseconds (every product is reported as taking 1 microsecond, so that the
    test does not depend on this machine's speed)."""
    monkeypatch.setattr(autodiff, "forward_mode_ready", lambda: ready)
    monkeypatch.setattr(methods, "WORTH_A_TRIAL", worth_a_trial)
    monkeypatch.setattr(autodiff, "timed", lambda run, device: (run(), 1e-6))
    H = Hessian(mlp, CE, classification, dtype=F64)
    v = torch.randn(H.shape[0], dtype=F64)
    used = []
    for _ in range(3):
        used.append(H.method_for(1))
        H @ v
    assert used == ["reverse"] * 3 and H.method_choice.chosen == {0: "reverse"}


def test_batch_statistics_opt_in_gives_the_hessian_of_the_batch_statistics_loss(classification):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).train()
    x, y = classification
    before = model[1].running_mean.clone()
    H = Hessian(model, CE, (x, y), dtype=F64, allow_batch_statistics=True)
    assert H.method_for(10) == "reverse"
    loss = lambda t: CE(_flat_call(model, t, x), y)   # noqa: E731
    theta = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    dense = torch.autograd.functional.hessian(loss, theta, vectorize=True)
    assert_products_match(H, dense)
    assert torch.equal(model[1].running_mean, before) and model.training


def _flat_call(model: nn.Module, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    params, start = {}, 0
    for n, p in model.named_parameters():
        params[n] = theta[start:start + p.numel()].view_as(p)
        start += p.numel()
    buffers = {n: b.double().clone() if b.is_floating_point() else b.clone() for n, b in model.named_buffers()}
    return torch.func.functional_call(model, {**buffers, **params}, (x.double(),))


def test_float32_operator_is_close_to_the_float64_one(mlp, classification):
    H32 = Hessian(mlp, CE, classification, method="reverse")
    H64 = Hessian(mlp, CE, classification, dtype=F64, method="reverse")
    assert H32.dtype == torch.float32
    v = torch.randn(H64.shape[0], dtype=F64)
    assert relative_error((H32 @ v.float()).double(), H64 @ v) < 1e-5


def test_auto_method_leaves_out_forward_mode_where_it_fails_and_stays_exact(monkeypatch):
    """torch 2.13 has no forward-mode derivative through ``mse_loss``'s backward ("ZeroTensors are
    immutable"): ``method="auto"`` must fall back to reverse mode, not crash."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    x, y = torch.randn(32, 4, dtype=F64), torch.randn(32, 1, dtype=F64)
    monkeypatch.setattr(autodiff, "forward_mode_ready", lambda: True)
    monkeypatch.setattr(methods, "WORTH_A_TRIAL", 0.0)   # these products take microseconds
    H = Hessian(model, nn.MSELoss(), (x, y), dtype=F64)
    dense = dense_hessian(model, nn.MSELoss(), x, y)
    for _ in range(3):
        v = torch.randn(dense.shape[0], dtype=F64)
        assert relative_error(H @ v, dense @ v) < 1e-10
    assert H.method_choice.candidates == ["reverse"] and "forward" in H.method_choice.failures
    assert H.method_for(1) == "reverse"
    assert_products_match(H, dense)


class _SquareWithBrokenTangent(torch.autograd.Function):
    """``x**2`` whose reverse mode is right and whose forward mode returns NaN, like a forward-mode product
    that overflows (vmapped ``jvp`` in bfloat16 on a small ResNet, measured in analyses/benchmark_gpu.py)."""
    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, t):
        return t * float("nan")


def test_auto_method_leaves_out_forward_mode_when_its_products_are_not_finite(monkeypatch):
    class Net(nn.Module):
        def __init__(self, square):
            super().__init__()
            self.a, self.b, self.square = nn.Linear(3, 4), nn.Linear(4, 2), square

        def forward(self, x):
            return self.b(self.square(self.a(x)))

    torch.manual_seed(0)
    model = Net(_SquareWithBrokenTangent.apply).double()
    twin = Net(torch.square).double()   # the same function with torch's own derivatives, for the reference
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(10, 3, dtype=F64), torch.randint(0, 2, (10,))
    monkeypatch.setattr(autodiff, "forward_mode_ready", lambda: True)
    monkeypatch.setattr(methods, "WORTH_A_TRIAL", 0.0)
    with pytest.raises(FloatingPointError, match="not finite"):
        Hessian(model, CE, (x, y), method="forward") @ torch.randn(26, dtype=F64)
    H = Hessian(model, CE, (x, y))
    dense = dense_hessian(twin, CE, x, y)
    for _ in range(4):
        v = torch.randn(dense.shape[0], dtype=F64)
        assert relative_error(H @ v, dense @ v) < 1e-10
    assert H.method_choice.candidates == ["reverse"] and "forward" in H.method_choice.failures
