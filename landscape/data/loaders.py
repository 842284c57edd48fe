"""A mini-batch loader whose order is a function of one seed, with a state small enough to checkpoint.

Instability analysis (Frankle et al. 2020) compares runs that differ in data order alone, so the order
must not depend on the initialisation seed, on the global random-number generators, or on anything that
ran before. Here epoch ``e`` visits the samples in the order ``torch.randperm(N)`` drawn from a private
generator seeded by ``(seed, e)``, and the whole state is the number of batches drawn so far: restoring it
reproduces exactly the batches that remain.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from landscape.data.batches import Batch


class BatchLoader(Iterator[Batch]):
    """An endless stream of ``(inputs, targets)`` mini-batches of ``batch_size`` samples, reshuffled per epoch.

    Each epoch is a fresh permutation of the samples (seeded by ``(seed, epoch)`` only) cut into
    ``N // batch_size`` consecutive batches; the last incomplete batch of an epoch is dropped, so every
    step sees exactly ``batch_size`` samples (BatchNorm-safe, uniform gradient noise). Batches live on
    the device of ``inputs``.

    Args:
        inputs: ``(N, ...)`` tensor.
        targets: ``(N, ...)`` tensor.
        batch_size: samples per batch, ``1 <= batch_size <= N``.
        seed: the data-order seed, a non-negative integer.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, seed: int):
        if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets need the same first (sample) dimension, got shapes "
                             f"{tuple(inputs.shape)} and {tuple(targets.shape)}")
        n = int(inputs.shape[0])
        if n == 0:
            raise ValueError("the data set is empty (0 samples)")
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be between 1 and the number of samples ({n}), got {batch_size}")
        if seed < 0:
            raise ValueError(f"the data-order seed must be non-negative, got {seed}")
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.seed, self.num_samples = int(batch_size), int(seed), n
        self.position = 0
        self._order: tuple[int, Tensor] | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Number of (full) batches in one epoch."""
        return self.num_samples // self.batch_size

    def epoch_order(self, epoch: int) -> Tensor:
        """The permutation of sample indices that epoch ``epoch`` (from 0) visits, on the CPU."""
        if self._order is None or self._order[0] != epoch:
            state = np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)[0]
            generator = torch.Generator().manual_seed(int(state))
            self._order = (epoch, torch.randperm(self.num_samples, generator=generator))
        return self._order[1]

    def __next__(self) -> Batch:
        epoch, index = divmod(self.position, self.batches_per_epoch)
        idx = self.epoch_order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        self.position += 1
        idx = idx.to(self.inputs.device)
        return self.inputs[idx], self.targets[idx]

    def state_dict(self) -> dict[str, int]:
        """Everything that determines the remaining batches (with the data): seed, batch size, position."""
        return {"seed": self.seed, "batch_size": self.batch_size, "num_samples": self.num_samples,
                "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved state; fails if it was saved for another seed, batch size or data size."""
        mine = self.state_dict()
        diff = {k: (state.get(k), mine[k]) for k in ("seed", "batch_size", "num_samples") if state.get(k) != mine[k]}
        if diff:
            raise ValueError("loader state does not fit this loader (saved, current): "
                             + ", ".join(f"{k}={v[0]} vs {v[1]}" for k, v in diff.items()))
        if int(state["position"]) < 0:
            raise ValueError(f"loader position must be non-negative, got {state['position']}")
        self.position = int(state["position"])
