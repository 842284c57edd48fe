"""Loss and accuracy of a model over a data argument, weighted by batch size."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from landscape.data.batches import as_batches, to_device
from landscape.devices import widest_float
from landscape.state import model_mode

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Evaluation:
    """Mean loss over all samples, accuracy (``None`` unless targets are class labels), sample count."""
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
    """Evaluate ``loss_fn`` (mean-reduced) over all of ``data``; the model runs in eval mode unless
    ``training=True`` and its modes are restored afterwards.

    The loss is the sample-weighted mean over batches, i.e. the loss of the whole data set, not the
    mean of per-batch means. Sums accumulate on the model's device (float64 where it has it) and are read
    once at the end: no host synchronisation per batch.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    total_loss = torch.zeros((), dtype=widest_float(device), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples, labelled = 0, True
    with model_mode(model, training):
        for batch in as_batches(data):
            x, y = to_device(batch, device, dtype)
            out = model(x)
            n = int(x.shape[0])
            total_loss += loss_fn(out, y).to(total_loss.dtype) * n
            samples += n
            if labelled and is_classification(out, y):
                correct += (out.argmax(dim=1) == y).sum()
            else:
                labelled = False
    loss = float(total_loss) / samples
    if not math.isfinite(loss):
        raise FloatingPointError(f"the loss is not finite ({loss}) over the data given")
    return Evaluation(loss=loss, accuracy=int(correct) / samples if labelled else None, samples=samples)
