"""Choosing between implementations of the same product by timing them on the model at hand.

Which way of differentiating is fastest depends on the model, the operator and the number of vectors.
Measured on this project's CPU (torch 2.13): for the Hessian of an MLP a second backward on the retained
graph costs about 1.8 gradients per vector and forward-over-reverse about 3; for the GGN of a small CNN,
forward mode vmapped over 10 vectors was 1.7x cheaper per vector than the double-vjp trick; for the
Hessian of that CNN the two were within 10% of each other. Each candidate is timed on one batch at a
single vector and at a block of ``probe`` vectors, giving a cost ``fixed + per_vector * b`` seconds; a
product of ``b`` vectors then uses the candidate with the smallest predicted cost.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MethodCost:
    """Measured wall time of one batch product of ``b`` vectors: ``fixed + per_vector * b`` seconds."""
    fixed: float
    per_vector: float

    def seconds(self, vectors: int) -> float:
        return self.fixed + self.per_vector * vectors


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (no-op on CPU), so that wall time measures the work."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def measure(runs: Mapping[str, Callable[[Tensor], object]], dim: int, dtype: torch.dtype,
            device: torch.device, probe: int = 4, repeats: int = 2) -> dict[str, MethodCost]:
    """Time each candidate on ``(1, dim)`` and ``(probe, dim)`` blocks of random rows and fit
    ``fixed + per_vector * b``. After one warm-up each, the candidates run interleaved, ``repeats``
    rounds, keeping each one's best time, so that a load on the machine that comes and goes does not
    favour the one that happened to run in a quiet moment. A candidate that fails its warm-up with a
    ``RuntimeError`` (an operation without a forward-mode derivative, say) is left out; if all fail, the
    first failure is raised."""
    gen = torch.Generator(device=device).manual_seed(0)
    blocks = {b: torch.randn(b, dim, dtype=dtype, device=device, generator=gen) for b in (1, probe)}
    failures = []
    for name, run in list(runs.items()):
        try:
            run(blocks[1])
        except RuntimeError as error:
            failures.append(error)
            runs = {n: r for n, r in runs.items() if n != name}
    if not runs:
        raise failures[0]
    best = {(name, b): float("inf") for name in runs for b in blocks}
    for _ in range(repeats):
        for name, run in runs.items():
            for b, block in blocks.items():
                synchronize(device)
                start = time.perf_counter()
                run(block)
                synchronize(device)
                best[name, b] = min(best[name, b], time.perf_counter() - start)
    costs = {}
    for name in runs:
        per_vector = max((best[name, probe] - best[name, 1]) / (probe - 1), 0.0)
        costs[name] = MethodCost(fixed=max(best[name, 1] - per_vector, 0.0), per_vector=per_vector)
    return costs


def fastest(costs: Mapping[str, MethodCost], vectors: int) -> str:
    """The method with the smallest predicted time for ``vectors`` vectors."""
    return min(costs, key=lambda name: costs[name].seconds(vectors))
