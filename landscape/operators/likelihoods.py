"""Reading a loss as a negative log-likelihood, to sample targets from the model's predictive distribution.

Supported (reduction ``"mean"`` or ``"sum"``, per-sample loss = the loss on a batch of one):

* ``nn.CrossEntropyLoss()`` / ``F.cross_entropy``: categorical, ``p(y | z) = softmax(z)_y`` (class
  dimension 1, extra dimensions independent), without class weights or label smoothing. With ``P`` extra
  positions per sample a mean-reduced per-sample loss is the negative log-likelihood over ``P``, whose
  Fisher is ``1/P`` times its GGN; the summed loss is the likelihood itself.
* ``nn.MSELoss()`` / ``F.mse_loss``: Gaussian. The mean-reduced per-sample loss ``(1/D) ||z - y||^2`` over
  ``D`` output entries is, up to a constant, the negative log-likelihood of ``y ~ N(z, (D/2) I)``, the
  sum-reduced ``||z - y||^2`` that of ``y ~ N(z, (1/2) I)``; that variance is what makes the expected
  Fisher equal the GGN of the same loss.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.operators.reduction import loss_reduction

Sampler = Callable[[Tensor, int, torch.Generator], Tensor]


def categorical(outputs: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """``samples`` labels per input from ``softmax(outputs, dim=1)``: ``(samples * B, *rest)``, sample-major."""
    logits = outputs.movedim(1, -1)
    probs = torch.softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
    labels = torch.multinomial(probs, samples, replacement=True, generator=generator)   # (B * rest, samples)
    return labels.T.reshape(samples * outputs.shape[0], *logits.shape[1:-1])


def gaussian(outputs: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """``samples`` targets per input from ``N(outputs, (D/2) I)``, ``D`` entries per sample: ``(samples * B, ...)``
    (the likelihood of the mean-reduced squared error)."""
    return _gaussian(outputs, samples, generator, outputs[0].numel() / 2)


def gaussian_of_sum(outputs: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """``samples`` targets per input from ``N(outputs, (1/2) I)``: the likelihood of the summed squared error."""
    return _gaussian(outputs, samples, generator, 0.5)


def _gaussian(outputs: Tensor, samples: int, generator: torch.Generator, variance: float) -> Tensor:
    noise = torch.randn((samples, *outputs.shape), dtype=outputs.dtype, device=outputs.device,
                        generator=generator)
    return (outputs + math.sqrt(variance) * noise).reshape(samples * outputs.shape[0], *outputs.shape[1:])


def sampler_for(loss_fn: Callable[[Tensor, Tensor], Tensor], reduction: str | None = None) -> Sampler:
    """The target sampler of the likelihood whose negative log ``loss_fn`` is, reduced by ``reduction``
    (``None``: as :func:`~landscape.operators.reduction.loss_reduction` reads it); raises if there is none."""
    reduction = loss_reduction(loss_fn, reduction)
    if loss_fn is F.cross_entropy:
        return categorical
    if loss_fn is F.mse_loss:
        return gaussian
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        if loss_fn.weight is not None or loss_fn.label_smoothing != 0 or loss_fn.ignore_index >= 0:
            raise ValueError("the true Fisher reads CrossEntropyLoss as a categorical likelihood: it needs "
                             "no class weights, no label smoothing, a negative ignore_index")
        return categorical
    if isinstance(loss_fn, nn.MSELoss):
        return gaussian if reduction == "mean" else gaussian_of_sum
    raise TypeError(f"kind='true' needs the loss as a negative log-likelihood; supported: nn.CrossEntropyLoss, "
                    f"nn.MSELoss, F.cross_entropy, F.mse_loss; got {loss_fn!r}. Use kind='empirical' or the GGN.")
