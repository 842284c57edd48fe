"""Curvature on one accelerator: products, top-5 eigenvalues and trace of two large networks, against PyHessian
and hessian-eigenthings on the same device (issue 17, item 3).

    python analyses/benchmark_gpu.py             # on CUDA: ResNet-18 and a GPT-2-small-shaped transformer
    python analyses/benchmark_gpu.py --quick     # tiny shapes on the CPU, seconds (run by the test suite)

Models (random initialisation, eval mode, cross-entropy):

* ResNet-18 in its CIFAR form (``build_model("resnet18", (3, 32, 32), 10)``, 11.2M parameters, BatchNorm on
  its running statistics), one batch of 256 Gaussian images;
* a GPT-2-small-shaped transformer (``build_model("gpt2", (256,), 50257)``: 12 layers, 768 wide, 12 heads,
  124M parameters; ``transformers`` builds it from a config, nothing downloaded), one batch of 4 random
  sequences of 256 tokens, next-token loss (``landscape.models.language.NextTokenLoss``).

each in float32 and in bfloat16 (parameters and products in bfloat16; the solvers' vectors in float32).
One table, a row per measurement:

* ``gradient``: one forward and backward of the batch loss (``loss.backward()``), best of ``repeats``;
* ``HVP <method>``: the Hessian-vector product of ``Hessian(method=...)`` for a single vector and per vector
  in a ``matmat`` of 8, as a multiple of the gradient: ``reverse`` (double backward on the retained graph of
  the gradient, built once per operator), ``forward`` (``torch.func.jvp`` of ``grad``, vmapped over the
  vectors) and ``forward, compiled`` (the same under ``torch.compile``, float32 only, so that compilation, minutes
  on a large model, happens once per model; its time in the note).
  ``fastest`` names the cheapest per vector at each size, what ``method="auto"`` learns from its first products;
* ``top-5``: the five largest eigenvalues to a relative residual ``max_i ||H v_i - theta_i v_i|| / ||H||`` of
  1e-3 (``||H||`` estimated by landscape's Lanczos run, the scale its ``tol`` multiplies, for every library):
  landscape ``eigs(Hessian(model, loss, batch), k=5, tol=1e-3)`` with every operator default; PyHessian 0.1
  ``hessian(...).eigenvalues(top_n=5, tol=1e-3, maxIter=...)`` (power iteration with deflation; its ``tol`` is on
  the eigenvalue's change, so its residual is measured here); hessian-eigenthings' ``lanczos`` with full
  reorthogonalisation, 100 steps (``max_iter``; ``absent`` when not installed). Peers run with attention on the
  math kernel, as landscape's operators do (the fused kernels have no double backward). Wall seconds include
  building each library's operator; matvecs are counted; the residual is recomputed for every library with a
  float32 ``Hessian`` (products not counted); peak memory is ``torch.cuda.max_memory_allocated`` over the call
  (``n/a`` on the CPU);
* ``trace``: ``trace(H, 99)`` (XTrace, 98 products), its value and standard error;
* ``first call`` (issue 17, item 0): ``analyses/first_call.py`` on this device, a user's first default
  ``eigs(Hessian(mlp, loss, data), k=5)`` in a fresh process against the tuned solve.

``--quick`` runs the same code on tiny shapes on the CPU (ResNet-18 of width 2 on 4x4 images, a one-layer
16-wide transformer, 19 trace products, 4 PyHessian iterations per eigenvalue), without the compiled
product (compiling takes a minute on the CPU even there): its numbers check the code, not the device.

Rows that fail print the exception in the note instead of numbers. Nothing is written to disk.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import first_call  # noqa: E402

from landscape.linalg import eigs, trace  # noqa: E402
from landscape.models import build_model  # noqa: E402
from landscape.operators import Hessian  # noqa: E402
from landscape.operators.methods import synchronize  # noqa: E402

K = 5
TOL = 1e-3
TRACE_MATVECS = 99
BLOCK = 8
METHODS = (("reverse", {}), ("forward", {}), ("forward, compiled", {"compile": True}))
MATH_NOTE = "; attention on the math kernel (the fused ones have no double backward), as landscape's operators do"


@dataclass(frozen=True)
class Config:
    device: str
    resnet_width: int
    image_batch: int
    image_size: int
    gpt_layers: int
    gpt_width: int
    gpt_heads: int
    sequence: int
    sequences: int
    vocab: int
    repeats: int
    peer_iterations: int    # PyHessian's maxIter per eigenvalue
    lanczos_steps: int      # hessian-eigenthings' Lanczos steps (max_iter)
    trace_matvecs: int
    compile_options: dict | None   # None: the compiled product is not measured
    first_call_samples: int


FULL = Config(device="cuda", resnet_width=64, image_batch=256, image_size=32, gpt_layers=12, gpt_width=768,
              gpt_heads=12, sequence=256, sequences=4, vocab=50257, repeats=5, peer_iterations=100, lanczos_steps=100,
              trace_matvecs=TRACE_MATVECS, compile_options={}, first_call_samples=1000)
QUICK = Config(device="cpu", resnet_width=2, image_batch=4, image_size=4, gpt_layers=1, gpt_width=16,
               gpt_heads=2, sequence=8, sequences=2, vocab=32, repeats=1, peer_iterations=4, lanczos_steps=20,
               trace_matvecs=19,
               compile_options=None, first_call_samples=200)   # compiling takes a minute even on tiny shapes


@dataclass(frozen=True)
class Problem:
    name: str
    model: nn.Module          # float32, eval mode, on the device
    loss: nn.Module
    x: Tensor
    y: Tensor

    def cast(self, dtype: torch.dtype) -> tuple[nn.Module, Tensor, Tensor]:
        """The model and batch in ``dtype`` (a copy of the model; integer token ids stay integers)."""
        model = build_copy(self.model).to(dtype)
        x = self.x.to(dtype) if self.x.is_floating_point() else self.x
        return model, x, self.y


def build_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def problems(cfg: Config) -> Iterator[Problem | tuple[str, str]]:
    """The two problems, or ``(name, why it is absent)``."""
    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    resnet = build_model("resnet18", (3, cfg.image_size, cfg.image_size), 10, width=cfg.resnet_width)
    x = torch.randn(cfg.image_batch, 3, cfg.image_size, cfg.image_size, generator=gen)
    y = torch.randint(0, 10, (cfg.image_batch,), generator=gen)
    yield Problem(f"ResNet-18 (width {cfg.resnet_width}, batch {cfg.image_batch})", resnet.eval().to(device),
                  nn.CrossEntropyLoss(), x.to(device), y.to(device))
    name = f"GPT-2 shape ({cfg.gpt_layers}x{cfg.gpt_width}, {cfg.sequences}x{cfg.sequence} tokens)"
    try:
        gpt = build_model("gpt2", (cfg.sequence,), cfg.vocab, n_layer=cfg.gpt_layers, n_embd=cfg.gpt_width,
                          n_head=cfg.gpt_heads)
    except ImportError as error:
        yield name, f"absent ({error})"
        return
    from landscape.models.language import NextTokenLoss
    tokens = torch.randint(0, cfg.vocab, (cfg.sequences, cfg.sequence), generator=gen)
    yield Problem(name, gpt.eval().to(device), NextTokenLoss(), tokens.to(device), tokens.to(device))


# --- measuring -------------------------------------------------------------------------------------------

class Peak:
    """Peak device memory over a block (CUDA), in GiB; ``None`` elsewhere."""

    def __init__(self, device: torch.device):
        self.device, self.gib = device, None

    @contextlib.contextmanager
    def over(self) -> Iterator[Peak]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        yield self
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.gib = torch.cuda.max_memory_allocated(self.device) / 2 ** 30


def best_seconds(run: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Best wall seconds of ``repeats`` runs after one warm-up, the device synchronised around each."""
    run()
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def timed(run: Callable[[], Any], device: torch.device) -> tuple[Any, float, float | None]:
    """``run()``, its wall seconds and the peak device memory over it."""
    peak = Peak(device)
    with peak.over():
        start = time.perf_counter()
        out = run()
        synchronize(device)
        seconds = time.perf_counter() - start
    return out, seconds, peak.gib


class Float32View:
    """An operator seen by the solvers as float32: vectors are cast to the operator's dtype for each product and
    the products back to float32, so that bfloat16 products run under a float32 Lanczos basis."""

    def __init__(self, op: Hessian):
        self.op, self.shape, self.device, self.dtype = op, op.shape, op.device, torch.float32

    def matmat(self, V: Tensor) -> Tensor:
        return self.op.matmat(V.to(self.op.dtype)).to(torch.float32)


def relative_residual(reference: Hessian, values: Tensor, vectors: Tensor, scale: float | None) -> float:
    """``max_i ||H v_i - theta_i v_i|| / scale`` with the float32 ``reference`` (unit ``v_i``); ``scale`` is an
    estimate of ``||H||_2`` (landscape's ``Eigenpairs.scale``, the largest ``|theta|`` its Lanczos run saw, the
    scale its ``tol`` multiplies), the same for every library; ``None``: ``max_i |theta_i|``."""
    V = vectors.to(device=reference.device, dtype=torch.float32)
    V = V / torch.linalg.vector_norm(V, dim=0, keepdim=True)
    theta = values.to(device=reference.device, dtype=torch.float32)
    R = reference.matmat(V) - V * theta
    return float(torch.linalg.vector_norm(R, dim=0).max()) / (scale or float(theta.abs().max()))


@dataclass
class Row:
    problem: str
    dtype: str
    task: str
    library: str = ""
    matvecs: int | None = None
    seconds: float | None = None
    value: str = ""
    peak: float | None = None
    residual: float | None = None
    note: str = ""


def failed(error: BaseException) -> str:
    first = next(iter(str(error).strip().splitlines()), "")
    return f"failed: {type(error).__name__}: {first[:120]}"


def gradient_seconds(model: nn.Module, loss: nn.Module, x: Tensor, y: Tensor, cfg: Config) -> float:
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        torch.autograd.grad(loss(model(x), y), params)
    return best_seconds(step, torch.device(cfg.device), cfg.repeats)


def product_rows(problem: Problem, dtype_name: str, model: nn.Module, x: Tensor, y: Tensor, gradient: float,
                 cfg: Config) -> list[Row]:
    device = torch.device(cfg.device)
    rows, per_vector = [], {}
    gen = torch.Generator(device=device).manual_seed(0)
    for label, options in METHODS:
        if "compile" in options and cfg.compile_options is None:
            rows.append(Row(problem.name, dtype_name, f"HVP {label}", note="not measured in --quick (compiling "
                            "takes a minute on the CPU)"))
            continue
        if "compile" in options and dtype_name != "float32":
            rows.append(Row(problem.name, dtype_name, f"HVP {label}", note="not measured (float32 only: one "
                            "compilation per model)"))
            continue
        kwargs = {**options, "compile": cfg.compile_options} if "compile" in options else options
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)   # a compile fallback is a failure of the row
                op = Hessian(model, problem.loss, (x, y), method=label.split(",")[0], **kwargs)
                dim = op.shape[0]
                v = torch.randn(dim, 1, generator=gen, device=device, dtype=op.dtype)
                V = torch.randn(dim, BLOCK, generator=gen, device=device, dtype=op.dtype)
                _, first, _ = timed(lambda: (op.matmat(v), op.matmat(V)), device)   # compiles both shapes
                single = best_seconds(lambda: op.matmat(v), device, cfg.repeats)
                block = best_seconds(lambda: op.matmat(V), device, cfg.repeats) / BLOCK
        except Exception as error:   # noqa: BLE001 - a method the model cannot run is a result of the row
            rows.append(Row(problem.name, dtype_name, f"HVP {label}", note=failed(error)))
            continue
        per_vector[label] = (single, block)
        note = f"first products (incl. compilation) {first:.1f} s" if "compile" in options else ""
        rows.append(Row(problem.name, dtype_name, f"HVP {label}", value=f"{single / gradient:.2f} / "
                        f"{block / gradient:.2f} x grad (1 / per vector of {BLOCK})", seconds=single, note=note))
    if per_vector:
        fastest = [min(per_vector, key=lambda m: per_vector[m][i]) for i in (0, 1)]
        rows.append(Row(problem.name, dtype_name, "HVP fastest", value=f"{fastest[0]} / {fastest[1]}"))
    return rows


def landscape_top(problem: Problem, model: nn.Module, x: Tensor, y: Tensor, reference: Hessian,
                  cfg: Config) -> tuple[Row, Hessian | None, float | None]:
    device = torch.device(cfg.device)

    def run() -> tuple[Any, Hessian]:
        op = Hessian(model, problem.loss, (x, y))
        solver_op = op if op.dtype == torch.float32 else Float32View(op)
        return eigs(solver_op, k=K, tol=TOL), op
    try:
        (result, op), seconds, peak = timed(run, device)
    except Exception as error:   # noqa: BLE001
        return Row(problem.name, "", "top-5", "landscape", note=failed(error)), None, None
    residual = relative_residual(reference, result.eigenvalues, result.eigenvectors, result.scale)
    solver = float(result.residuals.max()) / result.scale
    note = ("converged" if result.converged else "not converged") + f"; solver's residual {solver:.1e}"
    return Row(problem.name, "", "top-5", "landscape", result.matvecs, seconds,
               f"{float(result.eigenvalues[0]):.5g}", peak, residual, note), op, result.scale


@contextlib.contextmanager
def counted_pyhessian(module: Any) -> Iterator[list[int]]:
    """Count PyHessian's Hessian-vector products."""
    real, counter = module.hessian_vector_product, [0]

    def counted(gradsH, params, v):
        counter[0] += 1
        return real(gradsH, params, v)
    module.hessian_vector_product = counted
    try:
        yield counter
    finally:
        module.hessian_vector_product = real


def pyhessian_top(problem: Problem, model: nn.Module, x: Tensor, y: Tensor, reference: Hessian,
                  scale: float | None, cfg: Config) -> Row:
    row = Row(problem.name, "", "top-5", "PyHessian")
    try:
        from pyhessian import hessian as PyHessian
    except ImportError as error:
        row.note = f"absent ({error})"
        return row
    module = sys.modules["pyhessian.hessian"]
    device = torch.device(cfg.device)

    def run() -> tuple[list[float], list[list[Tensor]]]:
        with sdpa_kernel(SDPBackend.MATH):
            ph = PyHessian(model, problem.loss, data=(x, y), cuda=device.type == "cuda")
            torch.manual_seed(0)
            return ph.eigenvalues(maxIter=cfg.peer_iterations, tol=TOL, top_n=K)
    try:
        with counted_pyhessian(module) as counter:
            (values, vectors), seconds, peak = timed(run, device)
    except Exception as error:   # noqa: BLE001
        row.note = failed(error)
        return row
    finally:
        model.zero_grad(set_to_none=True)   # PyHessian leaves .grad holding its graph
    flat = torch.stack([torch.cat([t.reshape(-1) for t in v]) for v in vectors], dim=1)
    row.matvecs, row.seconds, row.peak = counter[0], seconds, peak
    row.value = f"{max(values):.5g}"
    row.residual = relative_residual(reference, torch.tensor(values), flat, scale)
    row.note = f"maxIter={cfg.peer_iterations}, tol={TOL:g} on the eigenvalue's change" + MATH_NOTE
    return row


def eigenthings_top(problem: Problem, model: nn.Module, x: Tensor, y: Tensor, reference: Hessian,
                    scale: float | None, cfg: Config) -> Row:
    row = Row(problem.name, "", "top-5", "hessian-eigenthings")
    try:
        he = importlib.import_module("hessian_eigenthings")
    except ImportError as error:
        row.note = f"absent ({error})"
        return row
    device = torch.device(cfg.device)
    counter = [0]

    def run() -> Any:
        real = he.HessianOperator(model, [(x, y)], he.supervised_loss(problem.loss))
        n = reference.shape[0]

        def matvec(v: Tensor) -> Tensor:
            counter[0] += 1
            return real.matvec(v)
        op = he.LambdaOperator(matvec, n, str(device), torch.float32)
        with sdpa_kernel(SDPBackend.MATH):
            return he.lanczos(op, k=K, max_iter=cfg.lanczos_steps, which="LA", reorthogonalize=True, seed=0)
    try:
        result, seconds, peak = timed(run, device)
    except Exception as error:   # noqa: BLE001 - its API differs between versions: the row says how it failed
        row.note = failed(error)
        return row
    finally:
        model.zero_grad(set_to_none=True)
    values = torch.as_tensor(result.eigenvalues)
    vectors = torch.as_tensor(result.eigenvectors)
    vectors = vectors if vectors.shape[0] == reference.shape[0] else vectors.T
    row.matvecs, row.seconds, row.peak = counter[0], seconds, peak
    row.value = f"{float(values.max()):.5g}"
    row.residual = relative_residual(reference, values, vectors, scale)
    row.note = f"lanczos max_iter={cfg.lanczos_steps}, full reorthogonalisation" + MATH_NOTE
    return row


def trace_row(problem: Problem, dtype_name: str, op: Hessian, cfg: Config) -> Row:
    device = torch.device(cfg.device)
    solver_op = op if op.dtype == torch.float32 else Float32View(op)
    try:
        estimate, seconds, peak = timed(lambda: trace(solver_op, cfg.trace_matvecs), device)
    except Exception as error:   # noqa: BLE001
        return Row(problem.name, dtype_name, "trace", "landscape", note=failed(error))
    return Row(problem.name, dtype_name, "trace", "landscape", estimate.matvecs, seconds,
               f"{estimate.value:.5g} +- {estimate.stderr:.2g}", peak, note=f"{estimate.method}, value +- stderr")


def measure(problem: Problem, dtype: torch.dtype, cfg: Config) -> list[Row]:
    name = "float32" if dtype == torch.float32 else "bfloat16"
    try:
        model, x, y = problem.cast(dtype)
        gradient = gradient_seconds(model, problem.loss, x, y, cfg)
    except Exception as error:   # noqa: BLE001 - a model without bfloat16 support is a row, not a crash
        return [Row(problem.name, name, "gradient", note=failed(error))]
    rows = [Row(problem.name, name, "gradient", seconds=gradient, value=f"{gradient * 1e3:.3g} ms")]
    rows += product_rows(problem, name, model, x, y, gradient, cfg)
    reference = Hessian(problem.model, problem.loss, (problem.x, problem.y), method="reverse",
                        check_determinism=False, cache_bytes=0)
    ours, op, scale = landscape_top(problem, model, x, y, reference, cfg)
    tops = [ours, pyhessian_top(problem, model, x, y, reference, scale, cfg),
            eigenthings_top(problem, model, x, y, reference, scale, cfg)]
    for row in tops:
        row.dtype = name
    rows += tops
    if op is not None:
        rows.append(trace_row(problem, name, op, cfg))
    return rows


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_table(rows: list[Row], on_cuda: bool) -> None:
    print(f"{'model':<44s} {'dtype':<8s} {'task':<18s} {'library':<19s} {'matvecs':>7s} {'wall s':>8s} "
          f"{'peak GiB':>8s} {'residual':>8s}  value; note")
    for r in rows:
        peak = fmt(r.peak, ".2f", "n/a") if on_cuda and r.seconds is not None else "n/a"
        print(f"{r.problem:<44s} {r.dtype:<8s} {r.task:<18s} {r.library:<19s} {fmt(r.matvecs, 'd'):>7s} "
              f"{fmt(r.seconds, '.3f'):>8s} {peak:>8s} {fmt(r.residual, '.1e'):>8s}  "
              f"{r.value}{'; ' if r.value and r.note else ''}{r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes on the CPU, seconds (CI smoke test)")
    parser.add_argument("--device", default=None, help="default: cuda (full), cpu (--quick)")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    warnings.filterwarnings("ignore", message="Using backward")   # PyHessian's create_graph=True on .grad
    if args.device is not None:
        cfg = Config(**{**cfg.__dict__, "device": args.device})
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("benchmark_gpu: CUDA is not available here; run with --quick (CPU) or --device cpu")
    device = torch.device(cfg.device)
    began = time.perf_counter()
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"benchmark_gpu{' --quick' if args.quick else ''}: torch {torch.__version__} on {label}; top-{K} to "
          f"relative residual {TOL:g}, trace with {cfg.trace_matvecs} products, products timed best of {cfg.repeats}")
    call = first_call.measure(cfg.device, samples=cfg.first_call_samples, threads=torch.get_num_threads())
    rows: list[Row] = [Row(f"MLP 7,354 parameters, {cfg.first_call_samples} samples", "float32", "first call",
                           "landscape", call.first_matvecs, call.first,
                           f"{call.ratio:.2f} x the tuned solve ({call.tuned:.3f} s)",
                           note="fresh process, every default (issue 17 target <= 1.5)")]
    for problem in problems(cfg):
        if isinstance(problem, tuple):
            rows.append(Row(problem[0], "", "all", note=problem[1]))
            continue
        for dtype in (torch.float32, torch.bfloat16):
            rows += measure(problem, dtype, cfg)
        del problem
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print_table(rows, device.type == "cuda")
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
