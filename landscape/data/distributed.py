"""Data-parallel curvature on ``torch.distributed``: starting a process group, sharding data, collectives.

Every curvature operator accepts ``process_group=``. Each rank passes the operator its own shard of the
data; the operator sums sample counts over the ranks when it is built, so that with ``N`` the total number
of samples and ``n_b`` the size of batch ``b`` on any rank, every product is

    M v = sum over ranks of sum_b (n_b / N) M_b v,

one ``all_reduce`` (sum) per product, the weights applied locally: the same matrix as one process over the
whole data, to round-off. The solvers (``eigs``, ``trace``, ``density``, ``eigencount``) know nothing of
this: every rank runs the same call with the same seed, and every rank gets the same result.

With torchrun (the README shows this command; ``analyze`` is the CLI's analysis command)::

    torchrun --nproc-per-node 2 -m landscape analyze ...

or in a script of your own, launched the same way (``torchrun --nproc-per-node 2 script.py``)::

    import torch.distributed as dist
    from landscape.data import distributed
    from landscape.linalg import eigs
    from landscape.operators import Hessian

    ctx = distributed.init_from_env()                 # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT
    distributed.seed_all(0)                           # the same initialisation on every rank
    model = build().to(ctx.device).eval()
    H = Hessian(model, loss_fn, distributed.shard(batches, ctx.rank, ctx.world_size),
                process_group=ctx.group)
    top = eigs(H, k=5)                                # the same call on every rank
    if ctx.rank == 0:
        print(top.eigenvalues)
    dist.destroy_process_group()

Backends: gloo for CPU tensors, NCCL for CUDA tensors (``init_from_env`` picks by device; nothing in the
operators assumes one). Ranks must hold the same model (checked at construction) and should run on the
same device type, so that their seeded random vectors and their arithmetic agree (checked at every
product).

Failures. A rank whose product raises (out of memory, a bad batch) still joins the product's
``all_reduce``, flagging its failure, so the others raise :class:`DistributedError` naming it at once; the
failed rank raises its own error. A rank that crashes or stalls before a collective is caught by the
process group's timeout: give ``init_process_group`` (or :func:`init_from_env`) a ``timeout`` longer
than the longest a rank can spend between two collectives (building the operator: two passes over its
shard, plus the timing of the product methods, plus building the cache; then one product), e.g.
``timeout=timedelta(minutes=10)``; gloo's default is 30 minutes. The others then raise
:class:`DistributedError` instead of hanging. With NCCL, the watchdog may abort the process on a timeout
(``TORCH_NCCL_ASYNC_ERROR_HANDLING``), which torchrun reports.
"""
from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from landscape.data.batches import as_batches

DEFAULT_TIMEOUT = timedelta(minutes=10)
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RuntimeError):
    """A collective over the ranks failed: another rank failed, stalled past the timeout, or disagrees."""


@dataclass(frozen=True)
class Context:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node, the
    ``device`` to put the model on, and ``group`` (``None`` for a single process) for ``process_group=``."""
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    group: dist.ProcessGroup | None


def init_from_env(backend: str | None = None, timeout: timedelta = DEFAULT_TIMEOUT) -> Context:
    """Join the job torchrun started: read ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``, and initialise the default process group (or reuse it if already initialised).

    Without those variables, or with ``WORLD_SIZE=1``, returns a single-process context (``group=None``).

    Args:
        backend: ``"gloo"``, ``"nccl"``, ...; default: NCCL when CUDA is available (device
            ``cuda:LOCAL_RANK``), else gloo (device ``cpu``).
        timeout: how long a collective waits for the other ranks before this rank raises; see the module
            docstring for how to choose it.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and backend in (None, "nccl")
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    backend = backend or backend_for(device)
    if world == 1 and not dist.is_initialized():
        return Context(0, 1, 0, device, None)
    if not dist.is_initialized():
        missing = [v for v in ENV_VARS if v not in os.environ]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={world} but {missing} are not set: launch with torchrun "
                               "(torchrun --nproc-per-node N ...), which sets them")
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timeout, device_id=device if cuda else None)
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, device, dist.group.WORLD)


def backend_for(device: torch.device) -> str:
    """The collective backend for tensors on ``device``: NCCL for CUDA tensors (GPU to GPU, over NVLink or
    the network), gloo for CPU tensors."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def check_group(group: Any, device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)`` of this process in ``group``, after checking the group can carry tensors on
    ``device`` (NCCL needs CUDA tensors)."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("process_group given but torch.distributed is not initialised: call "
                           "torch.distributed.init_process_group (or landscape.data.distributed.init_from_env) first")
    if not isinstance(group, dist.ProcessGroup):
        raise TypeError(f"process_group must be a torch.distributed.ProcessGroup (e.g. dist.group.WORLD), "
                        f"got {type(group).__name__}")
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("this process is not a member of process_group")
    backend = str(dist.get_backend(group))
    if "nccl" in backend and "gloo" not in backend and device.type != "cuda":
        raise ValueError(f"the process group's backend is {backend}, which carries CUDA tensors only, but the "
                         f"operator runs on {device}: use a gloo group for CPU operators")
    return rank, dist.get_world_size(group)


def shard(data: Any, rank: int, world_size: int) -> Any:
    """Rank ``rank``'s part of ``data``, for an operator built with ``process_group=``. No sample is dropped
    or repeated, so the ranks' shards together are exactly ``data``:

    * one ``(inputs, targets)`` batch: samples ``[rank N / W, (rank + 1) N / W)`` (contiguous, sizes
      differing by at most one);
    * a sequence of batches (list, tuple): batches ``rank, rank + W, rank + 2W, ...``;
    * a map-style ``torch.utils.data.Dataset``: a contiguous :class:`~torch.utils.data.Subset`, to wrap in
      a ``DataLoader(..., shuffle=False)`` (``DistributedSampler`` would pad with repeated samples).

    A ``DataLoader`` is refused (shard its dataset instead). Raises if a rank would get nothing; the
    check depends on ``len(data)`` and ``world_size`` only, so every rank raises alike.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if isinstance(data, DataLoader):
        raise TypeError("shard the DataLoader's dataset, then wrap the shard: "
                        "DataLoader(shard(dataset, rank, world_size), batch_size=..., shuffle=False)")
    if isinstance(data, (tuple, list)) and as_batches(data).is_single_batch:
        x, y = data
        lo, hi = _bounds(x.shape[0], rank, world_size, "samples")
        return x[lo:hi], y[lo:hi]
    if isinstance(data, Sequence):
        _bounds(len(data), rank, world_size, "batches")
        return list(data[rank::world_size])
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        lo, hi = _bounds(len(data), rank, world_size, "samples")
        return Subset(data, range(lo, hi))
    raise TypeError(f"shard takes an (inputs, targets) batch, a sequence of batches or a map-style Dataset, "
                    f"got {type(data).__name__}")


def _bounds(count: int, rank: int, world_size: int, what: str) -> tuple[int, int]:
    if count < world_size:
        raise ValueError(f"{count} {what} cannot be shared among {world_size} ranks: every rank needs at least one")
    return rank * count // world_size, (rank + 1) * count // world_size


def seed_all(seed: int) -> None:
    """Seed torch (CPU and accelerators), NumPy's global generator and Python's ``random`` with ``seed``:
    with the same seed on every rank, models initialise identically."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


class StatusBuffer:
    """A payload to sum over the ranks and one short status row per rank, in one flat buffer, so that a
    single ``all_reduce`` carries both (each rank writes its status in its own row, zeros elsewhere, so
    the sum gathers every rank's row exactly).

    Args:
        shape: of the payload, :attr:`body`, which the caller fills in place. status: length of a row.
        group: the process group. dtype, device: of the buffer.
    """

    def __init__(self, shape: tuple[int, ...], status: int, group: dist.ProcessGroup, dtype: torch.dtype,
                 device: torch.device):
        self.group = group
        self.rank, self.world_size = dist.get_rank(group), dist.get_world_size(group)
        size = int(np.prod(shape))
        self._flat = torch.zeros(size + self.world_size * (1 + status), dtype=dtype, device=device)
        self.body = self._flat[:size].view(shape)
        self._table = self._flat[size:].view(self.world_size, 1 + status)

    def reduce(self, status: Tensor, failure: BaseException | None, what: str) -> np.ndarray:
        """Sum :attr:`body` over the ranks in place and return every rank's ``status`` as a
        ``(world_size, status)`` float64 host array (one host synchronisation).

        ``failure`` is the exception this rank met while filling the body (``None`` if none); the rank
        still takes part, flagging it, so that no rank waits for it. Raises: this rank's own ``failure``;
        :class:`DistributedError` naming the failed ranks if another rank had one, or if the collective
        itself failed (a rank crashed, or did not arrive within the process group's timeout). ``what``
        names the computation in messages.
        """
        if failure is None:
            self._table[self.rank, 1:] = status
        else:
            self._flat.zero_()
            self._table[self.rank, 0] = 1
        try:
            dist.all_reduce(self._flat, group=self.group)
            host = self._table.cpu().double().numpy()
        except RuntimeError as error:
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: the all_reduce of {what} failed: another rank crashed, "
                "raised outside the operator, or did not reach it within the process group's timeout; that "
                f"rank's own output says why. ({error})") from error
        if failure is not None:
            raise failure
        failed = np.flatnonzero(host[:, 0])
        if failed.size:
            raise DistributedError(f"rank(s) {failed.tolist()} of {self.world_size} failed while computing {what}; "
                                   "their own errors say why")
        return host[:, 1:]
