"""Training a reparametrised copy of a network: edge-popup scores, fixed-sign magnitudes.

:func:`fit` trains tensors ``φ`` (not the model's parameters) by SGD with heavy-ball momentum and L2 weight
decay on ``φ``, where the forward pass uses the parameters ``weights(φ)`` (through
``torch.func.functional_call``) and the model's own values for every parameter ``weights`` does not return.
The model is a copy the caller owns; it is run in training mode and its parameters are never written.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from landscape.foundation.state import preserved_rng


@dataclass(frozen=True)
class FitResult:
    """The trained tensors ``φ`` and the training loss of every step (on the device, shape ``(steps,)``)."""
    trainable: dict[str, Tensor]
    losses: Tensor


def fit(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], batches: Sequence[tuple[Tensor, Tensor]],
        trainable: Mapping[str, Tensor], weights: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]], *,
        steps: int, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> FitResult:
    """``steps`` SGD updates of ``trainable`` (copied first) on ``batches`` in turn (cycled).

    Args:
        model: the network (a copy: its buffers, e.g. BatchNorm statistics, update in training mode).
        trainable: the initial ``φ`` by name, on the model's device.
        weights: ``φ -> {parameter name: value}`` used in the forward pass.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if not batches:
        raise ValueError("no training batches")
    phi = {n: t.detach().clone().requires_grad_(True) for n, t in trainable.items()}
    optimizer = torch.optim.SGD(list(phi.values()), lr=lr, momentum=momentum, weight_decay=weight_decay)
    parameter = next(model.parameters())
    losses = torch.zeros(steps, dtype=parameter.dtype, device=parameter.device)
    model.train()
    with preserved_rng():
        for step in range(steps):
            x, y = batches[step % len(batches)]
            x = x.to(parameter.device, parameter.dtype if x.is_floating_point() else None)
            y = y.to(parameter.device, parameter.dtype if y.is_floating_point() else None)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(torch.func.functional_call(model, dict(weights(phi)), (x,)), y)
            loss.backward()
            optimizer.step()
            losses[step] = loss.detach()
    return FitResult(trainable={n: t.detach() for n, t in phi.items()}, losses=losses)
