"""A user's first default eigen solve, in a fresh process, against the tuned solve (issue 17, item 0).

    python analyses/first_call.py [--device cuda] [--samples 1000]

The problem of the issue: an MLP of 7,354 parameters (``build_model("mlp", (40,), 10, widths=(144,),
activation="tanh")``, random initialisation, eval mode) on ``samples`` Gaussian inputs with random labels,
cross-entropy, in float32. A child process (``python first_call.py --child``) imports torch and landscape
(not timed), builds the problem, then times

* the first call: ``eigs(Hessian(model, loss, (x, y)), k=5)`` with every default (operator built, its checks
  and method choice included): what a user's first call costs, one-time costs of torch included;
* the tuned solve: ``eigs(H, k=5)`` on an operator built beforehand with ``method="reverse",
  check_determinism=False``, best of ``repeats`` (after the first call, so warm).

Both on ``device``, synchronised around each timing. :func:`measure` returns the two and their ratio; the
issue's target is ``first / tuned <= 1.5``. ``analyses/benchmark_solvers.py`` prints it as its own row on
this CPU; ``analyses/benchmark_gpu.py`` on the GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

K = 5


@dataclass(frozen=True)
class FirstCall:
    """Seconds of the first default call and of the tuned solve (best of ``repeats``), matvecs of each."""
    first: float
    tuned: float
    first_matvecs: int
    tuned_matvecs: int
    repeats: int
    device: str

    @property
    def ratio(self) -> float:
        return self.first / self.tuned


def measure(device: str = "cpu", samples: int = 1000, repeats: int = 3, threads: int = 1) -> FirstCall:
    """Run the child in a fresh interpreter (``threads`` intra-op threads) and return what it measured."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--device", device, "--samples",
               str(samples), "--repeats", str(repeats), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"first_call child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return FirstCall(**json.loads(done.stdout.strip().splitlines()[-1]))


def _child(device_name: str, samples: int, repeats: int, threads: int) -> dict:
    import torch
    from torch import nn

    from landscape.linalg import eigs
    from landscape.models import build_model
    from landscape.operators import Hessian
    from landscape.operators.methods import synchronize

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("mlp", (40,), 10, widths=(144,), activation="tanh").eval().to(device)
    x = torch.randn(samples, 40, generator=generator).to(device)
    y = torch.randint(0, 10, (samples,), generator=generator).to(device)
    loss = nn.CrossEntropyLoss()

    synchronize(device)
    start = time.perf_counter()
    first = eigs(Hessian(model, loss, (x, y)), k=K)
    synchronize(device)
    first_seconds = time.perf_counter() - start

    tuned_seconds, tuned = float("inf"), None
    for _ in range(repeats):
        op = Hessian(model, loss, (x, y), method="reverse", check_determinism=False)
        synchronize(device)
        start = time.perf_counter()
        tuned = eigs(op, k=K)
        synchronize(device)
        tuned_seconds = min(tuned_seconds, time.perf_counter() - start)
    return {"first": first_seconds, "tuned": tuned_seconds, "first_matvecs": first.matvecs,
            "tuned_matvecs": tuned.matvecs, "repeats": repeats, "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.device, args.samples, args.repeats, args.threads)))
        return
    result = measure(args.device, args.samples, args.repeats, args.threads)
    print(f"first default call {result.first:.3f} s ({result.first_matvecs} matvecs), tuned solve "
          f"{result.tuned:.3f} s ({result.tuned_matvecs} matvecs, best of {result.repeats}): "
          f"{result.ratio:.2f}x on {result.device}")


if __name__ == "__main__":
    main()
