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

:func:`seek_with_escapes` wraps it: Levenberg-Marquardt in chunks, and whenever a chunk stalls (``‖g‖`` falls
by less than a factor ``stall``, or no step lowers it), a few saddle-free Newton steps on ``L`` itself (Dauphin
et al. 2014: ``d = −V diag(1 / max(|λ|, δ·max|λ|)) Vᵀ g`` with an Armijo line search on ``L``) move the point
downhill away from the stall before the root search resumes. :func:`near_null_share` says whether an
uncertified end point is gradient-flat: the share of ``‖g‖²`` in eigen-directions of ``H`` with ``|λ| ≤ rel ·
max|λ|`` (1 means ``g`` lies in the near-null space of ``H``, so ``∇½‖g‖² = H g ≈ 0`` although ``g ≠ 0``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian

from landscape.foundation.params import ParamSpace


class FlatLoss:
    """The mean loss of ``model`` over ``data = (inputs, targets)`` as a function of one flat float64 parameter
    vector, plus ``weight_decay / 2 · ‖θ‖²`` (default 0), and the model's outputs at such a vector (on a float64
    copy: the model itself is untouched)."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 data: tuple[Tensor, Tensor], weight_decay: float = 0.0) -> None:
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = weight_decay
        self.model = copy.deepcopy(model).double()
        self.loss_fn = loss_fn
        self.inputs, self.targets = data[0].double(), data[1]
        self.space = ParamSpace(self.model)   # every parameter with requires_grad, in the model's order
        self.buffers = {n: b.double() if b.is_floating_point() else b for n, b in model.named_buffers()}
        self._grad = grad(self.loss)
        self._hessian = hessian(self.loss)

    def theta(self, model: nn.Module | None = None) -> Tensor:
        """The flat float64 parameter vector of ``model`` (default: the one this loss was built from)."""
        return self.space.values(model or self.model).double()

    def outputs(self, theta: Tensor) -> Tensor:
        """The model's outputs on the inputs at parameters ``theta``."""
        return functional_call(self.model, {**self.space.to_dict(theta), **self.buffers}, (self.inputs,))

    def data_loss(self, theta: Tensor) -> Tensor:
        """The loss over all of ``data``, without the weight decay."""
        return self.loss_fn(self.outputs(theta), self.targets)

    def loss(self, theta: Tensor) -> Tensor:
        """``L(θ)``: the loss over all of ``data`` plus ``weight_decay / 2 · ‖θ‖²``."""
        loss = self.data_loss(theta)
        return loss + self.weight_decay / 2 * theta.pow(2).sum() if self.weight_decay else loss

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


def saddle_free_newton(flat: FlatLoss, theta: Tensor, steps: int, *, delta: float = 1e-3) -> Tensor:
    """``steps`` saddle-free Newton steps on ``L`` from ``theta``: ``d = −V diag(1 / max(|λ|, δ·max|λ|)) Vᵀ g``
    (a descent direction whatever the signs of the eigenvalues), step length halved from 1 until the Armijo
    condition ``L(θ + αd) ≤ L(θ) + 1e-4·α·gᵀd`` holds (no move if it fails down to ``α = 1e-8``)."""
    theta = theta.detach().double().clone()
    for _ in range(steps):
        g = flat.gradient(theta)
        eigenvalues, vectors = torch.linalg.eigh(flat.hessian(theta))
        floor = delta * float(eigenvalues.abs().max())
        d = -vectors @ ((vectors.T @ g) / eigenvalues.abs().clamp(min=floor))
        loss, slope, alpha = float(flat.loss(theta)), float(g @ d), 1.0
        while alpha >= 1e-8 and float(flat.loss(theta + alpha * d)) > loss + 1e-4 * alpha * slope:
            alpha /= 2
        if alpha < 1e-8:
            break
        theta = theta + alpha * d
    return theta


def seek_with_escapes(flat: FlatLoss, theta: Tensor, *, gradient_tol: float = 1e-6, budget: int = 150,
                      chunk: int = 25, stall: float = 0.3, escape: int = 5) -> tuple[CriticalPoint, int]:
    """Levenberg-Marquardt (:func:`seek_critical_point`) in chunks of ``chunk`` Hessians; after a chunk that
    ends uncertified with ``‖g‖`` above ``stall`` times its value at the chunk's start (or that gave up early),
    ``escape`` saddle-free Newton steps on ``L`` (:func:`saddle_free_newton`), until ``‖∇L‖ ≤ gradient_tol`` or
    ``budget`` Hessians in all. Returns the end point (certified only by ``gradient_tol``) and the number of
    escapes taken."""
    theta, used, escapes = theta.detach().double().clone(), 0, 0
    while True:
        before = float(flat.gradient(theta).norm())
        found = seek_critical_point(flat, theta, gradient_tol=gradient_tol, max_iter=min(chunk, budget - used))
        used += found.iterations
        if found.critical or used + escape >= budget:
            break
        theta = found.theta
        if found.gradient_norm > stall * before or found.iterations < chunk:
            theta = saddle_free_newton(flat, theta, escape)
            used += escape
            escapes += 1
    return replace(found, iterations=used), escapes


def near_null_share(flat: FlatLoss, theta: Tensor, rel: float = 1e-4) -> float:
    """Share of ``‖∇L(θ)‖²`` in the eigen-directions of ``∇²L(θ)`` with ``|λ| ≤ rel · max|λ|`` (0 to 1; 1 at a
    gradient-flat point, where the gradient lies in the Hessian's near-null space)."""
    g = flat.gradient(theta)
    eigenvalues, vectors = torch.linalg.eigh(flat.hessian(theta))
    coefficients = (vectors.T @ g).pow(2)
    null = eigenvalues.abs() <= rel * eigenvalues.abs().max()
    return float(coefficients[null].sum() / coefficients.sum())


def distinct(signatures: list[Tensor], tol: float) -> list[int]:
    """For each signature (a point's outputs on fixed inputs), the position of the first earlier signature
    within RMS distance ``tol`` of it, or its own position if there is none: points with the same function on
    the data (whatever the permutation or sign flips of their hidden units) share one representative."""
    representative: list[int] = []
    for i, s in enumerate(signatures):
        same = [j for j in sorted(set(representative)) if float((signatures[j] - s).pow(2).mean().sqrt()) <= tol]
        representative.append(same[0] if same else i)
    return representative
