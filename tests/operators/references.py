"""Small reference models and dense curvature matrices built with torch.func, in float64."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

RTOL = 1e-10   # products against dense references, relative in the 2-norm


class TinyAttention(nn.Module):
    """Two-head self-attention through ``F.scaled_dot_product_attention`` (4-D inputs, so that torch 2.13
    on CPU would pick its fused flash kernel, which has neither double backward nor forward-mode AD),
    then a linear read-out."""

    def __init__(self, tokens: int = 4, width: int = 6, heads: int = 2, classes: int = 3):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(tokens * width, classes)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        q, k, v = (t.view(batch, tokens, self.heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(1))


class WithUnused(nn.Module):
    """An MLP with a parameter that takes no part in the loss."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
        self.unused = nn.Parameter(torch.randn(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def tanh_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))


def bn_cnn() -> nn.Module:
    """A 1-D CNN with BatchNorm, its running statistics moved away from (0, 1), in eval mode."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(1, 3, 3, padding=1), nn.BatchNorm1d(3), nn.Tanh(), nn.Flatten(),
                          nn.Linear(3 * 8, 3))
    with torch.no_grad():
        for _ in range(3):
            model(2 + 3 * torch.randn(16, 1, 8))
    return model.eval()


def uneven(x: Tensor, y: Tensor, cuts: tuple[int, ...]) -> list[tuple[Tensor, Tensor]]:
    """Split into batches at ``cuts`` (uneven sizes, the last one smaller)."""
    edges = (0, *cuts, x.shape[0])
    return [(x[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]


class Flat:
    """The model as a float64 function of one flat vector of the selected parameters (others fixed)."""

    def __init__(self, model: nn.Module, names: list[str] | None = None):
        self.model = model
        self.fixed = {n: t.detach().double() if t.is_floating_point() else t
                      for n, t in [*model.named_parameters(), *model.named_buffers()]}
        self.names = names or [n for n, _ in model.named_parameters()]
        self.theta = torch.cat([self.fixed[n].reshape(-1) for n in self.names])

    def outputs(self, theta: Tensor, x: Tensor) -> Tensor:
        params, start = {}, 0
        for n in self.names:
            size = self.fixed[n].numel()
            params[n] = theta[start:start + size].view_as(self.fixed[n])
            start += size
        with sdpa_kernel(SDPBackend.MATH):   # the fused CPU kernel cannot be differentiated twice
            return functional_call(self.model, {**self.fixed, **params}, (x.double(),))

    def loss(self, loss_fn: Callable, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        y = y.double() if y.is_floating_point() else y
        return lambda theta: loss_fn(self.outputs(theta, x), y)


def dense_hessian(model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor,
                  names: list[str] | None = None) -> Tensor:
    flat = Flat(model, names)
    return torch.func.hessian(flat.loss(loss_fn, x, y))(flat.theta)


def dense_ggn(model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor) -> Tensor:
    """``J^T H_L J`` from the dense Jacobian of the outputs and the dense output-space Hessian."""
    flat = Flat(model)
    outputs = flat.outputs(flat.theta, x).detach()
    J = torch.func.jacrev(lambda t: flat.outputs(t, x))(flat.theta).reshape(outputs.numel(), -1)
    target = y.double() if y.is_floating_point() else y
    H_L = torch.func.hessian(lambda z: loss_fn(z, target))(outputs).reshape(outputs.numel(), outputs.numel())
    return J.T @ H_L @ J


def per_sample_gradients(model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor) -> Tensor:
    """``(N, dim)`` gradients of ``loss_fn`` on each sample as a batch of one, by ``jacrev`` per sample."""
    flat = Flat(model)
    return torch.stack([torch.func.jacrev(flat.loss(loss_fn, x[i:i + 1], y[i:i + 1]))(flat.theta)
                        for i in range(x.shape[0])])


def relative_error(a: Tensor, b: Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def assert_products_match(op, dense: Tensor, vectors: int = 3) -> None:
    """``op @ v`` and ``op.matmat(V)`` agree with ``dense`` to RTOL, on random vectors."""
    gen = torch.Generator().manual_seed(5)
    V = torch.randn(dense.shape[0], vectors, dtype=torch.float64, generator=gen)
    assert relative_error(op @ V[:, 0], dense @ V[:, 0]) < RTOL
    assert relative_error(op.matmat(V), dense @ V) < RTOL
