"""Index versus loss at critical points and along training (Dauphin et al. 2014, arXiv 1406.2572).

Dauphin et al. found that at the critical points of a neural network's training loss the index (the fraction
of negative Hessian eigenvalues) grows with the loss: saddles with many descent directions sit at high loss,
and critical points with index near zero (minima) only at low loss. We measure, for a tanh MLP with one
hidden layer small enough that its Hessian is formed densely and diagonalised exactly:

(a) along training (SGD on the full training set, several seeds): the training loss and the index at
    checkpoints, exactly (eigenvalues of the dense float64 Hessian) and by :func:`landscape.saddle_index`
    (deflated SLQ, on the same matrix) as a cross-check;
(b) at critical points: from several of those checkpoints, full-batch L-BFGS on the squared gradient norm
    ``½‖∇L(θ)‖²`` (its gradient ``H ∇L`` is one Hessian-vector product), which is attracted to critical
    points of every index, as Dauphin et al.'s Newton search was; and from the last checkpoint, L-BFGS on the
    loss itself (:func:`landscape.instruments.minimize`) to a minimum. The gradient norm of every point found
    is reported: the squared-gradient-norm search often stalls at "gradient-flat" points rather than exact
    critical points (Frye et al. 2019, arXiv 1910.10220), and we say how far it got.

The index counts eigenvalues below ``-tol * max|λ|`` (``tol`` = 1e-3, the library default; also reported at
1e-2 and 1e-4). The Spearman correlation between loss and index is given with a bootstrap standard error.

Writes ``figures/index_vs_loss.png``, ``figures/index_vs_loss.md`` and ``figures/index_vs_loss.json``.
Resumable: training runs and every measured point are stored under ``--out`` and reused.

    python analyses/index_vs_loss.py            # full: MLP(40-8-10) on MNIST-1D, 5 to 10 minutes on one shared thread
    python analyses/index_vs_loss.py --quick    # smoke test on digits, seconds; writes under --out only
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from landscape.data import load_dataset
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, cached_json
from landscape.instruments import minimize, saddle_index
from landscape.linalg import MatrixOperator
from landscape.operators import Hessian
from landscape.plots.surface import _figure, save_figure
from landscape.training import Hparams, load_model, train
from reproduction import Progress, invocation, mean_sd

TOLS = (1e-2, 1e-3, 1e-4)   # index reported as the fraction of eigenvalues below -tol * max|λ| for each tol
TOL = 1e-3                  # the one in the figure and the correlations (the library's default)
KINDS = {"training": "training checkpoint", "search": "critical point (min ½‖∇L‖²)",
         "minimum": "minimum (L-BFGS on L)"}


@dataclass(frozen=True)
class Setting:
    """Model width, data, SGD run, seeds, where to measure and how long the searches run."""
    data: str
    width: int
    steps: int
    lr: float
    seeds: tuple[int, ...]
    checkpoints: tuple[int, ...]
    starts: tuple[int, ...]
    search_iterations: int
    minimize_iterations: int
    bootstrap: int


FULL = Setting(data="mnist1d", width=8, steps=3000, lr=0.05, seeds=(0, 1, 2),
               checkpoints=(0, 10, 30, 100, 300, 1000, 3000), starts=(0, 30, 100, 300, 1000, 3000),
               search_iterations=300, minimize_iterations=3000, bootstrap=2000)
QUICK = Setting(data="digits", width=2, steps=40, lr=0.05, seeds=(0, 1), checkpoints=(0, 10, 40), starts=(0, 40),
                search_iterations=15, minimize_iterations=30, bootstrap=200)
CLAIM = """\
## What the paper found (its setting, not ours)

Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio (2014), "Identifying and attacking the saddle point problem
in high-dimensional non-convex optimization" (arXiv 1406.2572), Figure 1: for small MLPs on down-sampled MNIST
and CIFAR-10, critical points found by a Newton search started from points along training lie on a monotone
curve of training error against index: the larger the error, the larger the fraction of negative eigenvalues;
critical points of index near zero exist only at low error. Random-matrix theory for Gaussian fields (Bray &
Dean 2007) predicts the same.
"""


def hparams(setting: Setting, seed: int) -> Hparams:
    """The training run of one seed: tanh MLP, SGD (momentum 0.9, batch 100), no weight decay, so that the
    objective whose critical points we seek is the training loss itself."""
    return Hparams(model="mlp", model_kwargs={"widths": [setting.width], "activation": "tanh"}, data=setting.data,
                   steps=f"{setting.steps}it", lr=setting.lr, weight_decay=0.0, batch_size=100, init_seed=seed,
                   data_order_seed=seed, checkpoint_steps=tuple(sorted(set(setting.checkpoints + setting.starts))),
                   checkpoint_every=0, eval_every=0)


def loss_and_gradient(model: nn.Module, loss_fn: nn.Module, data: tuple[Tensor, Tensor]) -> tuple[float, Tensor]:
    """The mean loss over ``data`` and its flat gradient (the model's ``.grad`` is left empty)."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = loss_fn(model(data[0]), data[1])
    grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), torch.cat([g.reshape(-1) for g in grads])


def seek_critical_point(model: nn.Module, loss_fn: nn.Module, data: tuple[Tensor, Tensor],
                        iterations: int) -> nn.Module:
    """A copy of ``model`` moved by full-batch L-BFGS (strong Wolfe) on ``φ(θ) = ½‖∇L(θ)‖²``, whose gradient
    ``∇φ = H ∇L`` vanishes at every critical point of ``L`` whatever its index."""
    walker = copy.deepcopy(model)
    params = [p for p in walker.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, tolerance_grad=0.0, tolerance_change=0.0,
                                  history_size=50, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(loss_fn(walker(data[0]), data[1]), params, create_graph=True)
        phi = 0.5 * sum(g.pow(2).sum() for g in grads)
        phi.backward()
        return phi.detach()

    optimizer.step(closure)
    for p in params:
        p.grad = None
    return walker


def hessian_spectrum(model: nn.Module, loss_fn: nn.Module, data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The dense float64 Hessian of the mean loss (symmetrised) and its eigenvalues, ascending."""
    dense = Hessian(model, loss_fn, data, dtype=torch.float64).to_dense(block=256)
    dense = (dense + dense.T) / 2
    return dense, torch.linalg.eigvalsh(dense)


def measure(model: nn.Module, loss_fn: nn.Module, data: tuple[Tensor, Tensor], seed: int) -> dict[str, Any]:
    """Loss, gradient norm and index of one point: exact at every ``TOLS`` tolerance, and the
    :func:`saddle_index` estimate at ``TOL`` on the same matrix."""
    loss, grad = loss_and_gradient(model, loss_fn, data)
    dense, eigenvalues = hessian_spectrum(model, loss_fn, data)
    scale = float(eigenvalues.abs().max())
    estimate = saddle_index(MatrixOperator(dense), TOL, seed=seed)
    return {"loss": loss, "gradient_norm": float(grad.norm()), "dim": int(eigenvalues.numel()),
            "lambda_min": float(eigenvalues[0]), "lambda_max": float(eigenvalues[-1]),
            "index": {f"{tol:g}": float((eigenvalues < -tol * scale).double().mean()) for tol in TOLS},
            "saddle_index": {"fraction": estimate.fraction, "error": estimate.error, "stderr": estimate.stderr,
                             "quadrature_error": estimate.quadrature_error, "reliable": estimate.reliable,
                             "reason": estimate.reason, "complete": estimate.complete}}


def measure_seed(setting: Setting, seed: int, out: Path) -> list[dict[str, Any]]:
    """Train one seed, then measure its checkpoints (a), the critical points searched from ``starts`` and the
    minimum polished from the last checkpoint (b)."""
    run = out / f"seed{seed}"
    hp = hparams(setting, seed)
    train(hp, run, progress=False)
    dataset = load_dataset(setting.data)
    data = (dataset.train[0].double(), dataset.train[1])
    loss_fn = dataset.loss_fn()
    points = []

    def point(kind: str, step: int, make_model) -> None:
        result = cached_json(out / "points" / f"seed{seed}_{kind}_{step}_v2.json",   # v2: saddle index total error
                        lambda: measure(make_model(), loss_fn, data, seed))
        points.append({"seed": seed, "kind": kind, "step": step, **result})

    for step in setting.checkpoints:
        point("training", step, lambda: load_model(run, step).double())
    for step in setting.starts:
        point("search", step, lambda: seek_critical_point(load_model(run, step).double(), loss_fn, data,
                                                         setting.search_iterations))
    point("minimum", setting.steps, lambda: minimize(load_model(run, setting.steps), loss_fn, data,
                                                     max_iter=setting.minimize_iterations).model)
    starts = {p["step"]: p["gradient_norm"] for p in points if p["kind"] == "training"}
    for p in points:
        if p["kind"] != "training" and p["step"] in starts:
            p["start_gradient_norm"] = starts[p["step"]]
    return points


def spearman(loss: np.ndarray, index: np.ndarray, draws: int, seed: int = 0) -> dict[str, float]:
    """Spearman's rank correlation of loss and index, with the standard deviation and 2.5/97.5 percentiles of
    its bootstrap distribution (points resampled with replacement; resamples with a constant column skipped)."""
    rho = float(spearmanr(loss, index).statistic)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(draws):
        pick = rng.integers(0, loss.size, loss.size)
        if np.ptp(loss[pick]) > 0 and np.ptp(index[pick]) > 0:
            samples.append(spearmanr(loss[pick], index[pick]).statistic)
    samples = np.asarray(samples)
    return {"rho": rho, "stderr": float(samples.std(ddof=1)), "low": float(np.percentile(samples, 2.5)),
            "high": float(np.percentile(samples, 97.5)), "points": int(loss.size)}


def correlations(points: list[dict[str, Any]], draws: int) -> dict[str, dict[str, float]]:
    """Spearman(loss, index at TOL) for the critical points (searched and minima) and for the checkpoints."""
    groups = {"critical points": [p for p in points if p["kind"] != "training"],
              "training checkpoints": [p for p in points if p["kind"] == "training"]}
    return {name: spearman(np.array([p["loss"] for p in group]), np.array([p["index"][f"{TOL:g}"] for p in group]),
                           draws) for name, group in groups.items()}


def plot_index_vs_loss(points: list[dict[str, Any]], title: str):
    """Left: index at TOL against training loss, one colour per seed, marker per kind, each seed's training
    checkpoints joined in order. Right: gradient norm against loss, showing how critical each point is."""
    fig = _figure(11, 4.4)
    left, right = fig.subplots(1, 2)
    markers = {"training": "o", "search": "s", "minimum": "*"}
    seeds = sorted({p["seed"] for p in points})
    colors = {s: f"C{i}" for i, s in enumerate(seeds)}
    for seed in seeds:
        track = sorted((p for p in points if p["seed"] == seed and p["kind"] == "training"), key=lambda p: p["step"])
        left.plot([p["loss"] for p in track], [p["index"][f"{TOL:g}"] for p in track], color=colors[seed], lw=0.8,
                  alpha=0.5)
    for kind, marker in markers.items():
        for seed in seeds:
            mine = [p for p in points if p["seed"] == seed and p["kind"] == kind]
            style = dict(marker=marker, s=90 if kind == "minimum" else 36, edgecolors=colors[seed],
                         facecolors="none" if kind == "training" else colors[seed])
            left.scatter([p["loss"] for p in mine], [p["index"][f"{TOL:g}"] for p in mine], **style)
            right.scatter([p["loss"] for p in mine], [p["gradient_norm"] for p in mine], **style)
    for kind, marker in markers.items():
        left.scatter([], [], marker=marker, edgecolors="k", facecolors="none" if kind == "training" else "k",
                     label=KINDS[kind])
    for seed in seeds:
        left.plot([], [], color=colors[seed], label=f"seed {seed}")
    left.set_xlabel("training loss (cross-entropy, nats)")
    left.set_ylabel(f"index α (fraction of eigenvalues < −{TOL:g}·max|λ|)")
    left.legend(fontsize=8)
    left.set_title(title, fontsize=10)
    right.set_yscale("log")
    right.set_xlabel("training loss (cross-entropy, nats)")
    right.set_ylabel("gradient norm ‖∇L‖ (nats per unit parameter)")
    right.set_title("how critical the points are", fontsize=10)
    return fig


def report(setting: Setting, points: list[dict[str, Any]], corr: dict[str, dict[str, float]], dim: int,
           seconds: float, command: str) -> str:
    """The markdown report: set-up, table of points, correlations, and whether the claim reproduces."""
    searched = [p for p in points if p["kind"] == "search"]
    minima = [p for p in points if p["kind"] == "minimum"]
    reduction = np.array([p["start_gradient_norm"] / p["gradient_norm"] for p in searched])
    crit = corr["critical points"]
    index = {step: [p["index"][f"{TOL:g}"] for p in points if p["kind"] == "training" and p["step"] == step]
             for step in setting.checkpoints}
    lines = [
        "# Index versus loss (Dauphin et al. 2014)", "",
        f"tanh MLP with one hidden layer of {setting.width} units on {setting.data} ({dim} parameters, the full "
        f"training set of {load_dataset(setting.data).train[1].numel()} samples), SGD lr {setting.lr}, momentum 0.9, "
        f"batch 100, no weight decay, {setting.steps} steps, seeds {list(setting.seeds)}. Index = fraction of "
        f"eigenvalues of the exact dense float64 Hessian of the training loss below −{TOL:g}·max|λ|. Critical "
        f"points: L-BFGS on ½‖∇L‖² for {setting.search_iterations} iterations from the checkpoints at steps "
        f"{list(setting.starts)}, and L-BFGS on L (`landscape.instruments.minimize`, at most "
        f"{setting.minimize_iterations} iterations) from the last one. Spearman correlations with bootstrap "
        f"standard errors and 95% intervals over points ({setting.bootstrap} resamples). Produced by `{command}` "
        f"({seconds / 60:.1f} minutes for this invocation; stored points are reused).", "",
        "![index versus loss](index_vs_loss.png)", "",
        "| seed | kind | from step | loss | ‖∇L‖ | index (1e-2) | index (1e-3) | index (1e-4) | "
        "saddle_index (1e-3) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        est = p["saddle_index"]
        lines.append(f"| {p['seed']} | {p['kind']} | {p['step']} | {p['loss']:.4f} | {p['gradient_norm']:.2e} | "
                     + " | ".join(f"{p['index'][f'{t:g}']:.4f}" for t in TOLS)
                     + f" | {est['fraction']:.4f} ± {est['error']:.4f}{'' if est['reliable'] else ' (unreliable)'} |")
    lines += ["", "## Numbers", ""]
    for name, c in corr.items():
        lines.append(f"* Spearman ρ(loss, index at {TOL:g}), {name}: {c['rho']:.2f} ± {c['stderr']:.2f} "
                     f"(95% interval {c['low']:.2f} … {c['high']:.2f}, {c['points']} points).")
    lines += [
        f"* Squared-gradient-norm search: ‖∇L‖ fell by a factor {np.median(reduction):.0f} (median; range "
        f"{reduction.min():.0f} … {reduction.max():.0f}) from the starting checkpoints, to "
        f"{np.median([p['gradient_norm'] for p in searched]):.1e} (median; largest "
        f"{max(p['gradient_norm'] for p in searched):.1e}). These are approximate critical points: the search "
        f"slows down long before ‖∇L‖ reaches rounding level, the gradient-flat behaviour Frye et al. (2019) "
        f"describe.",
        f"* Minima from L-BFGS on L: loss {mean_sd([p['loss'] for p in minima])}, ‖∇L‖ up to "
        f"{max(p['gradient_norm'] for p in minima):.1e} (the loss still falls slowly at the iteration cap: these "
        f"are the lowest points L-BFGS reached, with no negative curvature, rather than exact minima), index at "
        f"{TOL:g} "
        f"{mean_sd([p['index'][f'{TOL:g}'] for p in minima], 4)}.",
        f"* Library estimate against exact index at {TOL:g} (training checkpoints and critical points): largest "
        f"absolute difference {max(abs(p['saddle_index']['fraction'] - p['index'][f'{TOL:g}']) for p in points):.4f}.",
        f"* Training checkpoints: index at {TOL:g} from {mean_sd(index[min(setting.checkpoints)])} at step "
        f"{min(setting.checkpoints)} to {mean_sd(index[setting.steps])} at step {setting.steps} (mean ± sd over "
        f"seeds).",
        "", "## Verdict", "", verdict(crit, points), "", CLAIM]
    return "\n".join(lines)


def verdict(crit: dict[str, float], points: list[dict[str, Any]]) -> str:
    """Whether the monotone loss-index relation reproduces at our critical points, read off the numbers."""
    found = [p for p in points if p["kind"] != "training"]
    low_index = [p["loss"] for p in found if p["index"][f"{TOL:g}"] <= 0.01]
    high_index = [p["loss"] for p in found if p["index"][f"{TOL:g}"] > 0.01]
    monotone = crit["low"] > 0
    sentence = (f"{'Reproduces' if monotone else 'Does not reproduce'} at the level of ranks: Spearman ρ = "
                f"{crit['rho']:.2f} ± {crit['stderr']:.2f} between loss and index over {crit['points']} critical "
                f"points, whose 95% bootstrap interval {'excludes' if monotone else 'includes'} zero.")
    if low_index and high_index:
        sentence += (f" Points of index ≤ 0.01 have loss {min(low_index):.3f} … {max(low_index):.3f}; those of "
                     f"larger index {min(high_index):.3f} … {max(high_index):.3f}"
                     + (" (no overlap: near-zero index only at low loss)." if max(low_index) < min(high_index)
                        else " (the ranges overlap: near-zero index is not confined to the lowest losses)."))
    return sentence + (" Caveat: most of our critical points are approximate (gradient norms above), and all "
                       "come from one small architecture on one data set.")


def main() -> None:
    run = invocation("index_vs_loss", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    points = [p for seed_points in progress.each(setting.seeds, lambda seed: measure_seed(setting, seed, out))
              for p in seed_points]
    corr = correlations(points, setting.bootstrap)
    seconds = progress.seconds
    dim = points[0]["dim"]
    save_figure(plot_index_vs_loss(points, f"MLP({setting.width}, tanh) on {setting.data}, {dim} parameters"),
                figures / "index_vs_loss.png")
    command = "python analyses/index_vs_loss.py" + (" --quick" if run.quick else "")
    text = report(setting, points, corr, dim, seconds, command)
    atomic_write_bytes(figures / "index_vs_loss.md", text.encode())
    atomic_write_json(figures / "index_vs_loss.json", {
        "setting": asdict(setting), "tol": TOL, "tols": list(TOLS), "points": points, "spearman": corr,
        "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
