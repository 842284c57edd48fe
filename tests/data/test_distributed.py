"""Data-parallel operators: two gloo processes on localhost against one process over all the data.

One spawn of two ranks runs every distributed check (process start-up dominates the time); each rank
writes what it saw to a file and the assertions run here, in the parent. Only loopback traffic.
"""
from __future__ import annotations

import os
import pickle
import socket
import time
import traceback
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from landscape.data import distributed
from landscape.data.distributed import init_from_env, shard
from landscape.linalg import density, eigs, trace
from landscape.operators import GGN, Fisher, Hessian

CE = nn.CrossEntropyLoss()
CE_SUM = nn.CrossEntropyLoss(reduction="sum")
CE_WEIGHTED = nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64))
F64 = torch.float64
WORLD = 2
TIMEOUT = 3.0          # seconds, of the group on which a rank stalls
GROUP_TIMEOUT = 60.0   # seconds, of the group for everything else (generous: the machine is shared)
SIZES = (7, 5, 6, 3)   # uneven batches; rank 0 gets batches 0 and 2 (13 samples), rank 1 batches 1 and 3 (8)


class Switchable(nn.Module):
    """A tanh MLP whose forward raises once ``fail`` is set, to make one rank's products fail."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("simulated failure of this rank's product")
        return self.body(x)


def _problem() -> tuple[Switchable, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The same model and batches on every rank (away from a minimum: the Hessian is indefinite)."""
    torch.manual_seed(0)
    model = Switchable().double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(sum(SIZES), 5, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (sum(SIZES),), generator=gen)
    cuts = np.cumsum((0, *SIZES))
    return model, [(x[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def _solve(op) -> dict[str, np.ndarray]:
    both = eigs(op, k=3, which="both", tol=1e-10)
    tr = trace(op, matvecs=30, seed=4)
    dens = density(op, steps=12, runs=3, seed=5)
    return {"eigenvalues": both.eigenvalues.numpy(), "converged": both.converged,
            "trace": np.array([tr.value, tr.stderr]), "nodes": dens.nodes.numpy(), "weights": dens.weights.numpy()}


def _error_of(call) -> tuple[str, str, float]:
    """Run ``call``; return the type and message of what it raised, and the seconds it took."""
    start = time.monotonic()
    try:
        call()
    except Exception as error:   # noqa: BLE001 - the test inspects it
        return type(error).__name__, str(error), time.monotonic() - start
    return "", "", time.monotonic() - start


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    seen: dict = {}
    try:
        ctx = init_from_env(backend="gloo", timeout=timedelta(seconds=GROUP_TIMEOUT))
        seen["context"] = (ctx.rank, ctx.world_size, str(ctx.device), ctx.group is dist.group.WORLD)
        model, batches = _problem()
        mine = shard(batches, ctx.rank, ctx.world_size)

        everything = tuple(torch.cat(parts) for parts in zip(*batches))   # all the data as one batch
        whole = Hessian(model, CE, everything, dtype=F64, method="reverse")
        H = Hessian(model, CE, mine, dtype=F64, method="reverse", process_group=ctx.group)
        seen["samples"] = (H.num_samples, H.local_samples)
        seen["auto"] = Hessian(model, CE, mine, dtype=F64, process_group=ctx.group).method_choice.candidates
        seen["loss"] = (whole.loss, H.loss)
        seen["gradient"] = (whole.gradient.numpy(), H.gradient.numpy())
        seen["whole"], seen["sharded"] = _solve(whole), _solve(H)
        V = torch.randn(whole.shape[0], 3, generator=torch.Generator().manual_seed(6), dtype=F64)
        for name, (make, options) in {"ggn": (GGN, {"method": "reverse"}), "fisher": (Fisher, {})}.items():
            one = make(model, CE, everything, dtype=F64, **options)
            many = make(model, CE, mine, dtype=F64, process_group=ctx.group, **options)
            seen[name] = ((one.matmat(V)).numpy(), many.matmat(V).numpy())
        # sum-reduced and class-weighted losses: each rank weighs its batches by the totals of all ranks
        for name, (make, loss_fn) in {"sum hessian": (Hessian, CE_SUM), "sum ggn": (GGN, CE_SUM),
                                      "sum fisher": (Fisher, CE_SUM), "weighted hessian": (Hessian, CE_WEIGHTED)
                                      }.items():
            one = make(model, loss_fn, everything, dtype=F64)
            many = make(model, loss_fn, mine, dtype=F64, process_group=ctx.group)
            seen[name] = ((one.matmat(V)).numpy(), many.matmat(V).numpy())
            seen[name + " loss"] = (np.array([one.loss, *one.gradient.tolist()]),
                                    np.array([many.loss, *many.gradient.tolist()]))

        # different seeds on the ranks: the operator sees different vectors
        seen["seeds"] = _error_of(lambda: eigs(H, k=1, seed=ctx.rank))
        # different parameters on the ranks
        other = _problem()[0]
        with torch.no_grad():
            other.body[0].bias[0] += ctx.rank
        seen["parameters"] = _error_of(lambda: Hessian(other, CE, mine, dtype=F64, process_group=ctx.group))
        # a mean-reduced loss on one rank, a sum-reduced one on the other
        seen["reductions"] = _error_of(lambda: Hessian(model, CE if ctx.rank == 0 else CE_SUM, mine, dtype=F64,
                                                       process_group=ctx.group))
        # rank 1's products raise: rank 0 stops at once, rank 1 raises its own error; the group survives
        fresh = Hessian(model, CE, mine, dtype=F64, method="reverse", cache_bytes=0, process_group=ctx.group)
        model.fail = ctx.rank == 1
        seen["failure"] = _error_of(lambda: eigs(fresh, k=1))
        model.fail = False
        seen["after_failure"] = float((fresh @ V[:, 0]).norm())

        # rank 1 stalls past the timeout of a short-timeout group: rank 0 raises within the timeout
        quick = dist.new_group(timeout=timedelta(seconds=TIMEOUT))
        dist.barrier()
        Hq = Hessian(model, CE, mine, dtype=F64, method="reverse", process_group=quick)
        if ctx.rank == 1:
            time.sleep(TIMEOUT + 1.5)   # alive but absent until rank 0 has given up
        else:
            seen["stall"] = _error_of(lambda: Hq @ V[:, 0])
    except Exception:   # noqa: BLE001 - reported to the parent
        seen["error"] = traceback.format_exc()
    with open(Path(out) / f"rank{rank}.pkl", "wb") as f:
        pickle.dump(seen, f)
    os._exit(0)   # the stalled group cannot be torn down cleanly, and nothing else needs to run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    context = mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("the ranks hung")
    seen = [pickle.loads((out / f"rank{r}.pkl").read_bytes()) for r in range(WORLD)]
    for r, s in enumerate(seen):
        assert "error" not in s, f"rank {r} failed:\n{s['error']}"
    return seen


def test_ranks_join_from_torchrun_variables(ranks):
    assert [s["context"] for s in ranks] == [(0, 2, "cpu", True), (1, 2, "cpu", True)]


def test_sample_counts_loss_and_gradient_are_those_of_all_the_data(ranks):
    assert [s["samples"] for s in ranks] == [(21, 13), (21, 8)]
    for s in ranks:
        whole, sharded = s["loss"]
        assert abs(whole - sharded) <= 1e-14 * abs(whole)
        g_whole, g_sharded = s["gradient"]
        assert np.linalg.norm(g_whole - g_sharded) <= 1e-13 * np.linalg.norm(g_whole)


def test_two_ranks_give_the_eigenvalues_trace_and_density_of_one_process(ranks):
    for s in ranks:
        whole, sharded = s["whole"], s["sharded"]
        assert whole["converged"] and sharded["converged"]
        scale = np.abs(whole["eigenvalues"]).max()
        assert whole["eigenvalues"].min() < 0 < whole["eigenvalues"].max()
        assert np.allclose(sharded["eigenvalues"], whole["eigenvalues"], rtol=0, atol=1e-12 * scale)
        assert np.allclose(sharded["trace"], whole["trace"], rtol=1e-11, atol=0)
        assert np.allclose(sharded["nodes"], whole["nodes"], rtol=0, atol=1e-11 * scale)
        assert np.allclose(sharded["weights"], whole["weights"], rtol=0, atol=1e-10)


def test_auto_method_runs_reverse_mode_on_every_rank_instead_of_timing_trials(ranks):
    """Timed trials differ between ranks, which then ran different products and deadlocked their all_reduces."""
    assert [s["auto"] for s in ranks] == [["reverse"], ["reverse"]]


def test_every_rank_holds_the_same_result(ranks):
    for key in ("eigenvalues", "trace", "nodes", "weights"):
        assert np.array_equal(ranks[0]["sharded"][key], ranks[1]["sharded"][key])


@pytest.mark.parametrize("name", ["ggn", "fisher"])
def test_ggn_and_fisher_products_over_two_ranks(ranks, name):
    for s in ranks:
        one, many = s[name]
        assert np.linalg.norm(many - one) <= 1e-13 * np.linalg.norm(one)


@pytest.mark.parametrize("name", ["sum hessian", "sum ggn", "sum fisher", "weighted hessian"])
def test_sum_reduced_and_class_weighted_losses_over_two_ranks(ranks, name):
    for s in ranks:
        for one, many in (s[name], s[name + " loss"]):
            assert np.linalg.norm(many - one) <= 1e-13 * np.linalg.norm(one)


def test_ranks_that_disagree_are_refused(ranks):
    for s in ranks:
        kind, message, _ = s["seeds"]
        assert kind == "DistributedError" and "other vectors" in message and "seed" in message
        kind, message, _ = s["parameters"]
        assert kind == "DistributedError" and "different parameters" in message
        kind, message, _ = s["reductions"]
        assert kind == "DistributedError" and "reduce differently" in message


def test_a_rank_whose_product_raises_stops_the_others_at_once(ranks):
    kind, message, seconds = ranks[0]["failure"]
    assert kind == "DistributedError" and "rank(s) [1]" in message and seconds < TIMEOUT
    kind, message, _ = ranks[1]["failure"]
    assert kind == "RuntimeError" and "simulated failure" in message
    assert ranks[0]["after_failure"] == ranks[1]["after_failure"] > 0   # the group still works


def test_a_stalled_rank_makes_the_other_raise_within_the_timeout(ranks):
    kind, message, seconds = ranks[0]["stall"]
    assert kind == "DistributedError" and "timeout" in message
    assert TIMEOUT * 0.9 <= seconds < TIMEOUT + 3


# --- sharding and single-process helpers (no process group) ---------------------------------------------

def test_shard_splits_a_batch_into_contiguous_parts_that_cover_it():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    parts = [shard((x, y), r, 3) for r in range(3)]
    assert [p[0].shape[0] for p in parts] == [3, 3, 4]
    assert torch.equal(torch.cat([p[1] for p in parts]), y)


def test_shard_deals_batches_round_robin_and_datasets_contiguously():
    batches = [(torch.zeros(i + 1, 2), torch.zeros(i + 1)) for i in range(5)]
    assert [b[0].shape[0] for b in shard(batches, 1, 2)] == [2, 4]
    dataset = TensorDataset(torch.arange(7.0), torch.arange(7))
    part = shard(dataset, 1, 2)
    assert isinstance(part, Subset) and list(part.indices) == [3, 4, 5, 6]


def test_shard_refuses_loaders_and_too_little_data():
    dataset = TensorDataset(torch.arange(7.0), torch.arange(7))
    with pytest.raises(TypeError, match="dataset"):
        shard(DataLoader(dataset), 0, 2)
    with pytest.raises(ValueError, match="at least one"):
        shard([(torch.zeros(1, 2), torch.zeros(1))], 0, 2)
    with pytest.raises(ValueError, match="rank"):
        shard(dataset, 2, 2)


def test_init_from_env_without_torchrun_is_a_single_process(monkeypatch):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    ctx = init_from_env(backend="gloo")
    assert (ctx.rank, ctx.world_size, ctx.group) == (0, 1, None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="torchrun"):
        init_from_env(backend="gloo")


def test_process_group_needs_an_initialised_group():
    model, batches = _problem()
    with pytest.raises(RuntimeError, match="not initialised"):
        Hessian(model, CE, batches, dtype=F64, process_group=object())


def test_seed_all_makes_initialisations_equal():
    distributed.seed_all(3)
    a = nn.Linear(4, 4).weight.detach().clone()
    distributed.seed_all(3)
    assert torch.equal(a, nn.Linear(4, 4).weight)


def test_backend_follows_the_device_nccl_for_cuda_tensors_gloo_for_cpu():
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"


def test_init_from_env_under_torchrun_with_cuda_joins_nccl_on_the_local_gpu(monkeypatch):
    joined = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: joined.setdefault("set_device", device))
    monkeypatch.setattr(dist, "is_initialized", lambda: "backend" in joined)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: joined.update(kwargs))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    for name, value in zip(distributed.ENV_VARS, ("1", "2", "1", "127.0.0.1", "29500")):
        monkeypatch.setenv(name, value)
    ctx = init_from_env()
    assert joined["backend"] == "nccl" and joined["device_id"] == torch.device("cuda", 1)
    assert joined["set_device"] == torch.device("cuda", 1)
    assert (ctx.rank, ctx.world_size, ctx.device) == (1, 2, torch.device("cuda", 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="NCCL needs a CUDA device")
def test_a_one_rank_nccl_group_gives_the_products_of_one_process():
    model, batches = _problem()
    model = model.cuda()
    cuda_batches = [(x.cuda(), y.cuda()) for x, y in batches]
    alone = Hessian(model, CE, cuda_batches, dtype=F64)
    dist.init_process_group(backend=distributed.backend_for(alone.device), store=dist.HashStore(), rank=0,
                            world_size=1, device_id=alone.device)
    try:
        grouped = Hessian(model, CE, cuda_batches, dtype=F64, process_group=dist.group.WORLD)
        V = torch.randn(alone.shape[0], 3, dtype=F64, device=alone.device)
        assert torch.allclose(grouped.matmat(V), alone.matmat(V), rtol=1e-12, atol=1e-12)
        assert grouped.num_samples == alone.num_samples
    finally:
        dist.destroy_process_group()
