"""Training with the signs fixed: "signs-only" (Zhou et al. 2019) and "keep the sign bit, retrain the rest".

Zhou et al. (2019, "Deconstructing lottery tickets: zeros, signs, and the supermask") found that a ticket's
mask and the *signs* of its initial weights carry most of what makes it train well: their signs-only
network sets each kept weight to ``sign(w_0) σ_l`` (``σ_l`` the standard deviation of layer ``l``'s initial
weights, :func:`~landscape.pruning.controls.signs_only`). The idea our users discuss, "keep the first bit and
retrain the rest", keeps the sign bit of each weight of a network (e.g. the trained one) and relearns the
magnitudes from fresh ones (:func:`sign_bit_start`).

:func:`train_fixed_signs` trains a copy with the signs held fixed: each chosen weight is
``w = s ⊙ |v|``, ``s = sign(w_start) ∈ {−1, 0, 1}`` fixed and the magnitudes ``v`` trained (a magnitude driven
through zero reflects back, so ``sign(w)`` stays ``s`` up to exact zeros; pruned weights, ``s = 0``, stay zero).
Other trainable parameters (biases, normalisation) train freely. SGD with heavy-ball momentum and L2 weight
decay on ``v``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from landscape.pruning.masks import Prunable, apply_masks, prunable_names
from landscape.pruning.reparametrized import fit


@torch.no_grad()
def sign_bit_start(signs_from: nn.Module, magnitudes_from: nn.Module, masks: Mapping[str, Tensor] | None = None,
                   prunable: Prunable = None) -> nn.Module:
    """A copy of ``magnitudes_from`` whose prunable weights are ``sign(w_signs) ⊙ |w_magnitudes|`` (the sign bit of
    one network on the magnitudes of another), with ``masks`` applied when given."""
    out = copy.deepcopy(magnitudes_from)
    signs = dict(signs_from.named_parameters())
    named = dict(out.named_parameters())
    for n in (list(masks) if masks is not None else prunable_names(out, prunable)):
        named[n].copy_(torch.sign(signs[n].detach().to(named[n].device, named[n].dtype)) * named[n].abs())
    return apply_masks(out, masks) if masks is not None else out


@dataclass(frozen=True)
class FixedSignResult:
    """The trained copy (training mode, on the original's device) and the loss of every step (device tensor)."""
    model: nn.Module
    losses: Tensor


def train_fixed_signs(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                      batches: Sequence[tuple[Tensor, Tensor]], *, steps: int, lr: float, momentum: float = 0.9,
                      weight_decay: float = 0.0, fixed: Prunable = None) -> FixedSignResult:
    """Train a copy of ``model`` for ``steps`` SGD updates with the signs of the ``fixed`` weights (default: the
    prunable ones, every weight with two or more dimensions) held at their signs in ``model``; ``model`` is not
    modified."""
    scratch = copy.deepcopy(model)
    names = set(prunable_names(scratch, fixed))
    named = {n: p for n, p in scratch.named_parameters() if p.requires_grad}
    signs = {n: torch.sign(named[n].detach()) for n in names}
    start = {n: (p.detach().abs() if n in names else p.detach()) for n, p in named.items()}

    def weights(phi: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {n: signs[n] * v.abs() if n in names else v for n, v in phi.items()}

    result = fit(scratch, loss_fn, batches, start, weights, steps=steps, lr=lr, momentum=momentum,
                 weight_decay=weight_decay)
    with torch.no_grad():
        for n, value in weights(result.trainable).items():
            named[n].copy_(value)
    return FixedSignResult(model=scratch, losses=result.losses)
