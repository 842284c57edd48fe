"""Exact critical points of small models: Levenberg-Marquardt on the gradient, certification, deduplication.

Shared by the reproductions that must know whether a point really is a critical point (``index_vs_loss``,
``escape_vs_width``). Everything is dense and float64, for models of at most a few hundred parameters: the
loss is written as a function of one flat parameter vector ``θ`` (:class:`FlatLoss`), its gradient ``g`` and
Hessian ``H`` come from ``torch.func`` exactly, and ``H`` is diagonalised by ``torch.linalg.eigh``.

:func:`seek_critical_point` solves ``g(θ) = 0`` by Levenberg-Marquardt on the residual ``g`` (Jacobian ``H``),
i.e. Gauss-Newton on ``½‖g‖²``: with ``H = V Λ Vᵀ`` the step is ``d = −V diag(λ / (λ² + μ)) Vᵀ g``, which is
the Newton-MR / pseudo-inverse step ``−H⁺ g`` as ``μ → 0`` and a short step along ``−H g = −∇½‖g‖²`` for large
``μ``. It is attracted to critical points of every index (Dauphin et al. 2014 used Newton's method for the
same purpose) and converges quadratically near a non-degenerate one; a step is kept only if it lowers
``‖g‖``, else ``μ`` grows. A search succeeds only when ``‖g‖ ≤ gradient_tol``; otherwise the point is reported
as not critical (a local minimum of ``‖g‖²`` with ``g ≠ 0``, a "gradient-flat" point in the words of Frye et
al. 2019, or too slow to converge within the budget) and must be excluded, not counted.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian


class FlatLoss:
    """The mean loss of ``model`` over ``data = (inputs, targets)`` as a function of one flat float64 parameter
    vector, and the model's outputs at such a vector (on a float64 copy: the model itself is untouched)."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 data: tuple[Tensor, Tensor]) -> None:
        self.model = copy.deepcopy(model).double()
        self.loss_fn = loss_fn
        self.inputs, self.targets = data[0].double(), data[1]
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.shapes = [p.shape for n, p in model.named_parameters() if p.requires_grad]
        self.buffers = {n: b.double() if b.is_floating_point() else b for n, b in model.named_buffers()}
        self._grad = grad(self.loss)
        self._hessian = hessian(self.loss)

    def theta(self, model: nn.Module | None = None) -> Tensor:
        """The flat float64 parameter vector of ``model`` (default: the one this loss was built from)."""
        params = dict((model or self.model).named_parameters())
        return torch.cat([params[n].detach().double().reshape(-1) for n in self.names])

    def outputs(self, theta: Tensor) -> Tensor:
        """The model's outputs on the inputs at parameters ``theta``."""
        params, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            params[name] = theta[start:start + shape.numel()].reshape(shape)
            start += shape.numel()
        return functional_call(self.model, {**params, **self.buffers}, (self.inputs,))

    def loss(self, theta: Tensor) -> Tensor:
        """``L(θ)``, the loss over all of ``data``."""
        return self.loss_fn(self.outputs(theta), self.targets)

    def gradient(self, theta: Tensor) -> Tensor:
        """``∇L(θ)``, exact."""
        return self._grad(theta).detach()

    def hessian(self, theta: Tensor) -> Tensor:
        """``∇²L(θ)``, the exact dense Hessian (forward over reverse), symmetrised."""
        dense = self._hessian(theta).detach()
        return (dense + dense.T) / 2


@dataclass(frozen=True)
class CriticalPoint:
    """Where a search ended and how critical it is.

    Attributes:
        theta: the final parameters (flat, float64).
        loss: ``L(θ)``.
        gradient_norm: ``‖∇L(θ)‖₂`` (loss units per unit parameter).
        eigenvalues: the Hessian's eigenvalues at ``θ``, ascending.
        iterations: Levenberg-Marquardt iterations taken (Hessians formed).
        critical: ``gradient_norm <= gradient_tol`` was reached.
    """
    theta: Tensor
    loss: float
    gradient_norm: float
    eigenvalues: Tensor
    iterations: int
    critical: bool

    def index(self, tol: float) -> float:
        """Fraction of eigenvalues below ``-tol * max|λ|``."""
        return float((self.eigenvalues < -tol * self.eigenvalues.abs().max()).double().mean())


def seek_critical_point(flat: FlatLoss, theta: Tensor, *, gradient_tol: float = 1e-6, max_iter: int = 100,
                        mu: float = 1e-4) -> CriticalPoint:
    """Levenberg-Marquardt on ``∇L(θ) = 0`` from ``theta`` (see the module docstring) until ``‖∇L‖ ≤
    gradient_tol``, ``max_iter`` Hessians, or a damping so large that no step lowers ``‖∇L‖`` any more.

    ``mu`` is the initial damping relative to ``max λ²``. The returned eigenvalues are those of the Hessian at
    the returned point (one more Hessian than iterations when the loop moved)."""
    theta = theta.detach().double().clone()
    g = flat.gradient(theta)
    norm = float(g.norm())
    iterations, damping = 0, None
    while norm > gradient_tol and iterations < max_iter:
        eigenvalues, vectors = torch.linalg.eigh(flat.hessian(theta))
        iterations += 1
        scale = float(eigenvalues.abs().max()) ** 2
        damping = mu * scale if damping is None else damping
        coefficients = vectors.T @ g
        while damping < 1e12 * scale:
            step = -vectors @ (eigenvalues * coefficients / (eigenvalues ** 2 + damping))
            trial = theta + step
            g_trial = flat.gradient(trial)
            if float(g_trial.norm()) < norm:
                theta, g, norm = trial, g_trial, float(g_trial.norm())
                damping = max(damping / 10, 1e-15 * scale)
                break
            damping *= 10
        else:
            break
    eigenvalues = torch.linalg.eigvalsh(flat.hessian(theta))
    return CriticalPoint(theta=theta, loss=float(flat.loss(theta)), gradient_norm=norm, eigenvalues=eigenvalues,
                         iterations=iterations, critical=norm <= gradient_tol)


def distinct(signatures: list[Tensor], tol: float) -> list[int]:
    """For each signature (a point's outputs on fixed inputs), the position of the first earlier signature
    within RMS distance ``tol`` of it, or its own position if there is none: points with the same function on
    the data (whatever the permutation or sign flips of their hidden units) share one representative."""
    representative: list[int] = []
    for i, s in enumerate(signatures):
        same = [j for j in sorted(set(representative)) if float((signatures[j] - s).pow(2).mean().sqrt()) <= tol]
        representative.append(same[0] if same else i)
    return representative
