"""The :class:`Dataset` every data source returns: a train and a test split as tensors, and the loss they call for."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from landscape.data.batches import Batch
from landscape.models.language import NextTokenLoss


@dataclass(frozen=True)
class Dataset:
    """A data set with a train and a test split.

    Attributes:
        name: registry name.
        train: ``(inputs, targets)``: float32 inputs ``(N, *input_shape)``; int64 class labels ``(N,)``
            or, for regression, float32 targets ``(N, outputs)``.
        test: the same for the test split.
        num_classes: number of classes, or ``None`` for regression targets.
        input_shape: shape of one input, without the batch dimension.
        description: one paragraph saying what the data are and where they come from.
        next_token: the inputs are token ids ``(N, T)``, the targets the same sequences (labels), the model's
            outputs logits ``(N, T, num_classes)`` and the loss next-token cross-entropy
            (:func:`landscape.models.language.next_token_loss`); ``num_classes`` is the vocabulary size.
    """
    name: str
    train: Batch
    test: Batch
    num_classes: int | None
    input_shape: tuple[int, ...]
    description: str
    next_token: bool = False

    @property
    def output_dim(self) -> int:
        """Number of model outputs the data need: the class count, or the number of regression targets."""
        return self.num_classes if self.num_classes is not None else int(self.train[1].shape[1])

    def loss_fn(self) -> nn.Module:
        """The natural mean-reduced loss: cross-entropy for class labels, mean squared error for regression,
        next-token cross-entropy for token sequences."""
        if self.next_token:
            return NextTokenLoss()
        return nn.CrossEntropyLoss() if self.num_classes is not None else nn.MSELoss()
