"""Single-vector or block Lanczos for :func:`landscape.linalg.eigs`, chosen by measured wall time (issue 17).

Block Lanczos (blocks of ``b``) needs about :data:`BLOCK_MATVEC_RATIO` times the matvecs of thick-restart
Lanczos: measured on the MNIST-1D benchmark models, k = 5, tol 1e-4 and 1e-3, certified, 1.6x to 2.2x
(one seed of the CNN's bottom five 0.84x; ``analyses/README.md``, ``benchmark_certification.py``). It wins
in wall time only where one product of ``b`` vectors costs less than ``b / BLOCK_MATVEC_RATIO`` products of
one vector, which a GPU can offer and a CPU seldom does. So ``method="auto"`` times both on the operator:

* ``single``: the best of :data:`TRIALS` products of one vector (wall seconds, device synchronised);
* ``block``: the best of :data:`TRIALS` products of ``b`` vectors;
* ``cost_ratio = block / (b single)``, the cost per vector of a block product relative to a single one;

and picks ``"block"`` when ``cost_ratio * BLOCK_MATVEC_RATIO < 1`` (block Lanczos then expected to take
``cost_ratio * BLOCK_MATVEC_RATIO`` of the single-vector time), else ``"lanczos"``. The measurement costs
``TRIALS (b + 1)`` products (12 for ``b = 5``), counted in the result's ``matvecs``; it is made once per
operator object and block size and kept (a weak reference: the operator is not modified and may be
freed), so later solves on the same operator measure nothing. Not counted: the solvers' own work per step
(orthogonalisation, the projected eigenproblem), which is larger per matvec for block Lanczos. The products
are of random vectors from their own generator, so the solve's random starts do not depend on the choice.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from landscape.linalg.operator import Counted
from landscape.operators.methods import timed

BLOCK_MATVEC_RATIO = 2.0   # matvecs of method="block" over those of method="lanczos" (CPU, measured, see above)
TRIALS = 2                 # timed products of each kind; the best counts (the first may pay one-time costs)

_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # operator -> {block size: BlockTiming}


@dataclass(frozen=True)
class BlockTiming:
    """Best wall seconds of a product of one vector and of ``block_size`` vectors on one operator."""
    block_size: int
    single_seconds: float
    block_seconds: float

    @property
    def cost_ratio(self) -> float:
        """Cost per vector of a block product relative to a single product: ``block / (b single)``."""
        return self.block_seconds / max(self.block_size * self.single_seconds, 1e-12)


@dataclass(frozen=True)
class MethodDecision:
    """The method ``"auto"`` picked, why (with the numbers), the timing, and the products measuring cost."""
    method: str
    reason: str
    timing: BlockTiming | None
    matvecs: int


def measure(A: Counted, block_size: int, seed: int) -> tuple[BlockTiming, int]:
    """The :class:`BlockTiming` of ``A``'s operator for blocks of ``block_size``: from the cache, or measured
    now by ``TRIALS (block_size + 1)`` products; returns it and the products it cost."""
    cached = _cache(A.op)
    if cached is not None and block_size in cached:
        return cached[block_size], 0
    before = A.matvecs
    generator = A.generator(seed)
    X = torch.randn(A.n, block_size, generator=generator, dtype=A.dtype, device=A.device)
    single = min(timed(lambda: A.matmat(X[:, :1]), A.device)[1] for _ in range(TRIALS))
    block = min(timed(lambda: A.matmat(X), A.device)[1] for _ in range(TRIALS))
    timing = BlockTiming(block_size, single, block)
    if cached is not None:
        cached[block_size] = timing
    return timing, A.matvecs - before


def choose(A: Counted, block_size: int, seed: int) -> MethodDecision:
    """``"block"`` when a product of ``block_size`` vectors is cheap enough per vector to make up for
    :data:`BLOCK_MATVEC_RATIO` times the matvecs, else ``"lanczos"`` (see the module docstring)."""
    timing, spent = measure(A, block_size, seed)
    expected = timing.cost_ratio * BLOCK_MATVEC_RATIO
    method = "block" if expected < 1 else "lanczos"
    name = {"block": "block Lanczos", "lanczos": "single-vector Lanczos"}[method]
    how = f"measured now ({spent} products)" if spent else "measured at an earlier call on this operator"
    reason = (f"auto: a product of {block_size} vectors took {timing.block_seconds * 1e3:.3g} ms, "
              f"{timing.cost_ratio:.2f}x the time of {block_size} single products "
              f"({timing.single_seconds * 1e3:.3g} ms each; {how}); block Lanczos needs about "
              f"{BLOCK_MATVEC_RATIO:g}x the matvecs, so its expected time is {expected:.2f}x: {name}")
    return MethodDecision(method, reason, timing, spent)


def _cache(op: object) -> dict[int, BlockTiming] | None:
    """The operator's entry of the measurement cache, or None when the operator cannot be weakly referenced."""
    try:
        return _MEASURED.setdefault(op, {})
    except TypeError:
        return None
