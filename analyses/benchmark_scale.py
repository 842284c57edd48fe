"""Scale: the top Hessian eigenvalue of a ResNet-18-sized network on this CPU, against PyHessian, and two
gloo ranks against one process.

    python analyses/benchmark_scale.py [--quick] [--threads 2] [--tol 1e-3]

Model: ResNet-18 in its CIFAR form (3x3 stem, no max-pool, four stages of two basic blocks, 64 to 512
channels, BatchNorm in eval mode, linear ``head``): 11,173,962 parameters, float32, cross-entropy, on
N=32 random CIFAR-shaped samples (3x32x32, 10 classes). ``--quick`` (a CI smoke run, under a minute)
uses base width 8 (175k parameters), N=8 and at most 20 PyHessian iterations.

Part 1, one process each (forked, so that each peak resident set size is its own; ``ru_maxrss``):

* landscape, ``Hessian(model, loss, (x, y), method="reverse")`` (the product on the retained graph, as
  PyHessian does) and ``eigs(H, k=1, tol)``: converged on the residual ``||Hv - lambda v|| <= tol lambda``;
* landscape, memory-bounded: ``eigs(H, k=1, tol=1e-2, ncv=8, basis_dtype=torch.bfloat16)``, the basis
  ``(ncv + 1) n`` bfloat16 numbers instead of ``21 n`` float32 ones;
* PyHessian 0.1, ``hessian(model, loss, data=(x, y), cuda=False).eigenvalues(top_n=1)``: power iteration
  stopped when the eigenvalue changes by less than 1e-3 (relative) between iterations (at most 100).

For each: wall and CPU seconds to build and to solve, products, the eigenvalue, the relative residual
``||Hv - lambda v|| / |lambda|`` of the returned vector (one more product, after the peak is read), the
peak RSS and its rise over the RSS with the model and data built.

Part 2: two gloo ranks on localhost (forked, one thread each, 16 samples each, ``process_group=``) run the
same ``eigs(H, k=1, tol)`` as part 1's first run (one process, ``--threads`` threads, all 32 samples):
the eigenvalues (equal on both ranks, and to one process's up to float32 round-off), wall seconds per
product, and the communication per product: the time spent in ``all_reduce`` inside the products
(including waiting for the slower rank), and one ``all_reduce`` of the same size alone after a barrier.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from landscape.data.distributed import shard
from landscape.linalg import eigs
from landscape.models.architectures import ResNet18
from landscape.operators import Hessian

CE = nn.CrossEntropyLoss()


@dataclass(frozen=True)
class Size:
    width: int
    samples: int
    pyhessian_iterations: int


FULL, QUICK = Size(64, 32, 100), Size(8, 8, 20)


def problem(size: Size) -> tuple[nn.Module, Tensor, Tensor]:
    """The model (eval mode) and random CIFAR-shaped data, the same in every process."""
    torch.manual_seed(0)
    model = ResNet18(3, 10, size.width).eval()
    gen = torch.Generator().manual_seed(1)
    return model, torch.randn(size.samples, 3, 32, 32, generator=gen), torch.randint(0, 10, (size.samples,),
                                                                                     generator=gen)


def resident_mb() -> float:
    """The current resident set size, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_mb() -> float:
    """The peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    """Wall and CPU seconds since the last ``lap``."""

    def __init__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu
        return out


def landscape_run(size: Size, threads: int, options: dict) -> dict:
    torch.set_num_threads(threads)
    model, x, y = problem(size)
    baseline = resident_mb()
    clock = Clock()
    H = Hessian(model, CE, (x, y), method="reverse")
    build = clock.lap()
    top = eigs(H, k=1, **options)
    solve = clock.lap()
    peak = peak_mb()
    v, lam = top.eigenvectors[:, 0], float(top.eigenvalues[0])
    residual = float(torch.linalg.vector_norm(H @ v - lam * v)) / abs(lam)
    return {"build": build, "solve": solve, "matvecs": top.matvecs, "eigenvalue": lam, "residual": residual,
            "converged": top.converged, "peak": peak, "rise": peak - baseline, "dim": H.shape[0]}


def pyhessian_run(size: Size, threads: int) -> dict:
    from pyhessian import hessian as PyHessian
    from pyhessian.utils import group_product, normalization

    module = sys.modules["pyhessian.hessian"]   # the module; the package's attribute is the class

    torch.set_num_threads(threads)
    model, x, y = problem(size)
    baseline = resident_mb()
    products = [0]
    product = module.hessian_vector_product

    def counted(*args):
        products[0] += 1
        return product(*args)

    module.hessian_vector_product = counted
    clock = Clock()
    ph = PyHessian(model, CE, data=(x, y), cuda=False)
    build = clock.lap()
    values, vectors = ph.eigenvalues(maxIter=size.pyhessian_iterations, tol=1e-3, top_n=1)
    solve = clock.lap()
    peak = peak_mb()
    v = normalization(vectors[0])
    Hv = product(ph.gradsH, ph.params, v)
    lam = float(values[0])
    residual = sum(float(((a - lam * b) ** 2).sum()) for a, b in zip(Hv, v)) ** 0.5 / abs(lam)
    assert abs(float(group_product(v, v)) - 1) < 1e-4
    return {"build": build, "solve": solve, "matvecs": products[0], "eigenvalue": lam, "residual": residual,
            "converged": products[0] < size.pyhessian_iterations, "peak": peak, "rise": peak - baseline}


def rank_run(rank: int, world: int, port: int, size: Size, tol: float) -> dict:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(minutes=30))
    model, x, y = problem(size)
    collective = dist.all_reduce
    spent = [0.0]

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = collective(*args, **kwargs)
        spent[0] += time.perf_counter() - start
        return out

    dist.all_reduce = timed   # what the operator calls, through landscape.data.distributed
    H = Hessian(model, CE, shard((x, y), rank, world), method="reverse", process_group=dist.group.WORLD)
    spent[0] = 0.0
    clock = Clock()
    top = eigs(H, k=1, tol=tol)
    solve = clock.lap()
    in_products = spent[0]
    buffer = torch.zeros(H.shape[0] + 3 * world)   # a product's payload and status rows
    alone = []
    for _ in range(5):
        dist.barrier()
        start = time.perf_counter()
        collective(buffer)
        alone.append(time.perf_counter() - start)
    dist.destroy_process_group()
    return {"eigenvalue": float(top.eigenvalues[0]), "matvecs": top.matvecs, "solve": solve,
            "in_products": in_products, "alone": sorted(alone)[len(alone) // 2], "samples": H.local_samples}


def forked(targets: list[Callable[[], dict]]) -> list[dict]:
    """Run each ``target()`` in its own forked child, all at once; their results, in order. Fails if a
    child dies without one (its traceback is on stderr)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=lambda i=i, t=t: queue.put((i, t()))) for i, t in enumerate(targets)]
    for child in children:
        child.start()
    results: dict[int, dict] = {}
    while len(results) < len(children):
        try:
            i, result = queue.get(timeout=1)
            results[i] = result
        except Exception:   # queue.Empty: is anyone still working?
            if not any(child.is_alive() for child in children) and queue.empty():
                raise RuntimeError("a benchmark process died without a result") from None
    for child in children:
        child.join()
    return [results[i] for i in range(len(children))]


def in_process(target: Callable[..., dict], *args) -> dict:
    """``target(*args)`` in a forked child (its own peak memory); its result."""
    return forked([lambda: target(*args)])[0]


def ranks(size: Size, tol: float, world: int = 2) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return forked([lambda r=r: rank_run(r, world, port, size, tol) for r in range(world)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small width and data, for a CI smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Using backward")   # PyHessian's create_graph=True on .grad
    size = QUICK if args.quick else FULL
    started = time.perf_counter()
    params = sum(p.numel() for p in ResNet18(3, 10, size.width).parameters())
    print(f"torch {torch.__version__}; ResNet-18 (CIFAR form, width {size.width}), {params:,} parameters, float32; "
          f"N={size.samples} random samples 3x32x32, 10 classes; {args.threads} threads; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    runs = {
        f"landscape eigs(k=1, tol={args.tol:g})": in_process(landscape_run, size, args.threads, {"tol": args.tol}),
        "landscape eigs(k=1, tol=1e-2, ncv=8, bfloat16 basis)": in_process(
            landscape_run, size, args.threads, {"tol": 1e-2, "ncv": 8, "basis_dtype": torch.bfloat16}),
        f"PyHessian eigenvalues(top_n=1) (max {size.pyhessian_iterations} it.)": in_process(
            pyhessian_run, size, args.threads),
    }
    print("\nPart 1: top eigenvalue (wall / CPU seconds; memory: peak RSS, and its rise over model + data)")
    print(f"  {'':<52s} {'build s':>13s} {'solve s':>15s} {'products':>8s} {'eigenvalue':>11s} "
          f"{'rel. resid.':>11s} {'peak MB':>8s} {'rise MB':>8s}")
    for name, r in runs.items():
        print(f"  {name:<52s} {r['build'][0]:6.1f}/{r['build'][1]:6.1f} {r['solve'][0]:7.1f}/{r['solve'][1]:7.1f} "
              f"{r['matvecs']:8d} {r['eigenvalue']:11.5f} {r['residual']:11.2e} {r['peak']:8.0f} {r['rise']:8.0f}"
              + ("" if r["converged"] else "  (not converged)"))
    first, low, ph = runs.values()
    n = first["dim"]
    print(f"  basis memory, (ncv + 1) n: {21 * n * 4 / 2 ** 20:.0f} MB float32 (ncv=20), "
          f"{9 * n * 2 / 2 ** 20:.0f} MB bfloat16 (ncv=8)")
    print(f"  PyHessian / landscape: products {ph['matvecs'] / first['matvecs']:.2f}x, solve wall "
          f"{ph['solve'][0] / first['solve'][0]:.2f}x; eigenvalues differ by "
          f"{abs(ph['eigenvalue'] - first['eigenvalue']) / abs(first['eigenvalue']):.1e} (relative)")

    r0, r1 = ranks(size, args.tol)
    one = first["solve"][0] / first["matvecs"]
    two = max(r0["solve"][0], r1["solve"][0]) / r0["matvecs"]
    print(f"\nPart 2: two gloo ranks (1 thread, {r0['samples']} + {r1['samples']} samples) against one process "
          f"({args.threads} threads, {size.samples} samples; part 1's first run), eigs(k=1, tol={args.tol:g})")
    print(f"  eigenvalue: one process {first['eigenvalue']:.7f}; ranks {r0['eigenvalue']:.7f}, {r1['eigenvalue']:.7f} "
          f"(identical: {r0['eigenvalue'] == r1['eigenvalue']}); relative difference "
          f"{abs(r0['eigenvalue'] - first['eigenvalue']) / abs(first['eigenvalue']):.1e}")
    print(f"  products: one process {first['matvecs']}, ranks {r0['matvecs']}, {r1['matvecs']}")
    print(f"  wall seconds per product: one process {one:.3f}, two ranks {two:.3f}")
    for r, result in enumerate((r0, r1)):
        per = result["in_products"] / result["matvecs"]
        print(f"  rank {r}: all_reduce inside products {per * 1e3:.1f} ms per product "
              f"({100 * per / (result['solve'][0] / result['matvecs']):.1f}% of it, waiting for the other rank "
              f"included); the same all_reduce alone {result['alone'] * 1e3:.1f} ms ({n:,} float32)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
