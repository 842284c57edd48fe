"""Choosing between implementations of the same product by timing the first real products.

Which way of differentiating is fastest depends on the model, the operator and the number of vectors.
Measured on this project's CPU (torch 2.13): for the Hessian of an MLP a second backward on the retained
graph costs about 1.8 gradients per vector and forward-over-reverse about 3; for the GGN of a small CNN,
forward mode vmapped over 10 vectors was 1.7x cheaper per vector than the double-vjp trick; for the
Hessian of that CNN the two were within 10% of each other.

So nothing is timed in advance. Products are grouped by their number of vectors ``b`` into octaves
(``b = 1``, ``2-3``, ``4-7``, ...). The first products of each octave run each candidate ``trials`` times,
one candidate after the other, each timed (wall clock, device synchronised); then the octave keeps the
candidate with the smallest best time. Every trial is a product the caller asked for, so choosing costs no
extra products, only the slower candidate's extra time on its ``trials`` products. The first run of a
candidate also pays its one-time costs (allocations, tracing), which is why the best of ``trials >= 2`` is
compared. A candidate that raises ``RuntimeError`` (an operation without a forward-mode derivative, say) is
excluded for good, and so is forward mode when its product is not finite while the reverse-mode one is (a
vmapped ``jvp`` overflowing in bfloat16: on a small ResNet, measured in ``analyses/benchmark_gpu.py``).

Some candidates have a one-time setup per process: forward mode runs through ``torch.func``, whose first use
imports ``torch._dynamo``, measured here at 3 to 6 seconds, more than a whole top-5 eigen solve of a small
network. Such a candidate (``setup=``) is tried only once its setup is paid (by anything in the process) or
when the other candidates' products take at least :data:`WORTH_A_SETUP` seconds, so that the choice can repay
it; otherwise the octave is decided among the others. And no candidate is tried after the first when that
one's products take under :data:`WORTH_A_TRIAL` seconds: the trials of a slower candidate would cost more than
a faster one could save over a typical solve (on the MNIST-1D MLP of ``analyses/benchmark_solvers.py``, 4 ms
products, trying forward mode made a top-5 solve 7% slower).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import torch

TRIALS = 2
WORTH_A_SETUP = 0.25   # seconds per product from which a candidate's one-time setup is worth trying it
WORTH_A_TRIAL = 0.02   # seconds per product from which another candidate is worth trying at all


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (no-op on CPU), so that wall time measures the work."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def octave(vectors: int) -> int:
    """The group of product sizes ``b`` shares one choice: ``floor(log2 b)``."""
    return vectors.bit_length() - 1


class MethodChoice:
    """The choice among ``candidates`` per octave of product sizes, learnt from timed products.

    Attributes:
        candidates: the methods still in the running, in trial order. chosen: ``{octave: method}`` once decided.
        seconds: ``{(method, octave): [wall seconds of each timed product]}``.
        failures: ``{method: the RuntimeError that excluded it}``.
    """

    def __init__(self, candidates: Sequence[str], trials: int = TRIALS,
                 setup: Mapping[str, Callable[[], bool]] | None = None):
        """``setup``: ``{method: whether its one-time setup is already paid}`` for candidates that have one."""
        if not candidates or trials < 1:
            raise ValueError("need at least one candidate and one trial")
        self.candidates = list(candidates)
        self.trials = trials
        self.setup = dict(setup or {})
        self.chosen: dict[int, str] = {}
        self.seconds: dict[tuple[str, int], list[float]] = {}
        self.failures: dict[str, Exception] = {}

    def method_for(self, vectors: int) -> str:
        """The method for a product of ``vectors`` vectors: the chosen one, or the next one to try."""
        group = octave(vectors)
        if group in self.chosen:
            return self.chosen[group]
        if len(self.candidates) == 1:
            return self.candidates[0]
        ready = sorted(self.candidates, key=self._unpaid)   # stable: candidates with an unpaid setup last
        return next(m for m in ready if len(self.seconds.get((m, group), ())) < self.trials)

    def deciding(self, vectors: int) -> bool:
        """Whether a product of ``vectors`` vectors is still a timed trial."""
        return octave(vectors) not in self.chosen and len(self.candidates) > 1

    def record(self, method: str, vectors: int, seconds: float) -> dict[str, float] | None:
        """Add a timed product; when every candidate has had its trials in this octave, return their best
        times (``{method: seconds}``) for :meth:`decide`, else ``None``."""
        group = octave(vectors)
        self.seconds.setdefault((method, group), []).append(seconds)
        tried = {m: min(self.seconds[m, group]) for m in self.candidates
                 if len(self.seconds.get((m, group), ())) >= self.trials}
        untried = [m for m in self.candidates if m not in tried]
        fastest = min(tried.values(), default=None)
        if fastest is not None and (fastest < WORTH_A_TRIAL or all(self._unpaid(m) and fastest < WORTH_A_SETUP
                                                                  for m in untried)):
            return tried
        return None

    def decide(self, vectors: int, best: dict[str, float]) -> str:
        """Fix the octave of ``vectors`` on the fastest of ``best`` (best wall seconds per candidate)."""
        self.chosen[octave(vectors)] = min(best, key=best.__getitem__)
        return self.chosen[octave(vectors)]

    def _unpaid(self, method: str) -> bool:
        return method in self.setup and not self.setup[method]()

    def exclude(self, method: str, error: Exception) -> None:
        """Leave ``method`` out from now on (it raised ``error``); the last candidate is never excluded."""
        if len(self.candidates) == 1:
            raise error
        self.candidates.remove(method)
        self.failures[method] = error
        self.chosen = {group: m for group, m in self.chosen.items() if m != method}


def timed(run: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """``run()`` and its wall seconds, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    out = run()
    synchronize(device)
    return out, time.perf_counter() - start
