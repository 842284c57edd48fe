"""Loss and accuracy of a model over a data argument: the full-data loss, reduced as ``loss_fn`` reduces a
batch (:mod:`landscape.operators.reduction`), as the curvature operators measure it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from landscape.data.batches import as_batches, to_device
from landscape.foundation.devices import widest_float
from landscape.foundation.state import model_mode
from landscape.operators.reduction import batch_normaliser, loss_reduction

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Evaluation:
    """Loss over all samples (their mean, or their sum for a sum-reduced ``loss_fn``), accuracy (``None``
    unless targets are class labels), sample count."""
    loss: float
    accuracy: float | None
    samples: int

    @property
    def error(self) -> float | None:
        """Classification error, ``1 - accuracy``."""
        return None if self.accuracy is None else 1.0 - self.accuracy


def is_classification(outputs: Tensor, targets: Tensor) -> bool:
    """Targets are integer class labels for (N, C) logits."""
    return outputs.ndim == 2 and targets.ndim == 1 and not targets.is_floating_point()


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, data: Any, *, training: bool = False) -> Evaluation:
    """Evaluate ``loss_fn`` (mean- or sum-reduced) over all of ``data``; the model runs in eval mode unless
    ``training=True`` and its modes are restored afterwards.

    The loss is that of the whole data set: for a mean-reduced ``loss_fn`` the batch means weighted by what
    each divides by (``n_b / N`` for a per-sample mean), not the mean of per-batch means; for a sum-reduced
    one the sum of the batch sums. Sums accumulate on the model's device (float64 where it has it) and are read
    once at the end: no host synchronisation per batch.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    reduction = loss_reduction(loss_fn)
    total_loss = torch.zeros((), dtype=widest_float(device), device=device)
    normaliser = torch.zeros((), dtype=total_loss.dtype, device=device)   # D, of a mean-reduced loss
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples, labelled = 0, True
    with model_mode(model, training):
        for batch in as_batches(data):
            x, y = to_device(batch, device, dtype)
            out = model(x)
            n = int(x.shape[0])
            loss = loss_fn(out, y).to(total_loss.dtype)
            if reduction == "sum":
                total_loss += loss
            else:
                d = batch_normaliser(loss_fn, y)
                total_loss += loss * d
                normaliser += d
            samples += n
            if labelled and is_classification(out, y):
                correct += (out.argmax(dim=1) == y).sum()
            else:
                labelled = False
    total, divisor = torch.stack([total_loss, normaliser]).tolist()
    loss = total if reduction == "sum" else total / divisor if divisor else math.nan   # every target ignored
    if not math.isfinite(loss):
        raise FloatingPointError(f"the loss is not finite ({loss}) over the data given")
    return Evaluation(loss=loss, accuracy=int(correct) / samples if labelled else None, samples=samples)
