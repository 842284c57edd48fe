"""Outliers of the Hessian spectrum through training, with and without BatchNorm, on MNIST-1D: how many, by which
rule, and whether they come from the class means of the gradients.

Sagun et al. (2017) and Papyan (2019, 2020) found that the Hessian of a trained classifier has a bulk of eigenvalues
near zero and about C outliers for C classes; Papyan attributes the outliers to the Gauss-Newton part
``G = J^T H_L J`` and, inside it, to the class means of the gradients. Ghorbani, Krishnan & Xiao (2019) found
that BatchNorm suppresses the outliers. For every model and seed (``init_seed = data_order_seed = seed``) we train
on MNIST-1D (C = 10) and, at the steps ``times`` of training, on the first ``samples`` training samples (BatchNorm
in eval mode, i.e. with its running statistics), measure:

* the top ``k`` Hessian and GGN eigenpairs with their residuals (:func:`landscape.eigs`, :class:`landscape.GGN`);
* the bulk: the SLQ density (:func:`landscape.density`) of the Hessian with its top ``k`` eigenvectors deflated
  (:class:`~landscape.instruments.deflation.Deflated`, ``P H P``), and from it the bulk's first two moments
  ``m_j = tr((P H P)^j) / (n - k)``;
* the class-mean test below.

Outlier rules. A count of outliers is a rule applied to the spectrum, and different rules disagree, so four are
applied to the same top ``k`` eigenvalues ``λ_1 ≥ … ≥ λ_k`` (all positive here):

* ``largest gap``: the number above the largest gap in ``log λ`` (:func:`outlier_count`);
* ``last big gap``: the number above the deepest gap in ``log λ`` larger than ``GAP_FACTOR`` times the median
  log-gap of the top ``k`` (:func:`last_big_gap_count`; 0 if none is);
* ``2-means``: the upper cluster of the optimal two-cluster split of ``log λ`` (:func:`two_means_count`);
* ``MP edge``: the number above a Marchenko-Pastur-like bulk edge ``m_1 (1 + sqrt(γ))^2`` with
  ``γ = m_2 / m_1^2 - 1``, the edge of the Marchenko-Pastur law with the bulk's mean and second moment
  (:func:`mp_edge`); a heuristic, as the Hessian's bulk is not a Wishart spectrum. ``k`` when all are above.

Class-mean test (Papyan 2019, 2020). For the mean cross-entropy, ``H_L = diag(p) - p p^T =
sum_c' p_c' (e_c' - p)(e_c' - p)^T``, so exactly

    ``G = (1/N) sum_i sum_c' w_ic' w_ic'^T``,  ``w_ic' = sqrt(p_ic') J_i^T (e_c' - p_i)``

(``J_i`` the Jacobian of sample ``i``'s logits: ``-w_ic'`` is ``sqrt(p_ic')`` times the loss gradient of sample
``i`` with label ``c'``). Grouping samples by their class ``c``, ``G = sum_{c,c'} π_c (δ_cc' δ_cc'^T + Σ_cc')``
with the class-pair means ``δ_cc' = mean_{i in c} w_ic'`` (``π_c`` the class frequency, ``Σ_cc'`` the covariance
within the pair): the means' part ``G_means = sum π_c δ_cc' δ_cc'^T`` has rank at most C^2, and the claim is
that it carries the C outliers. We take the top C GGN eigenvectors ``v_j`` and measure, for each, the fraction
of its norm in a subspace, ``||Q^T v_j||^2`` (``Q`` an orthonormal basis; the cosines of the principal angles
are the singular values of ``V^T Q``), for:

* ``class means``: the C class means of the loss gradients with the data's labels, ``mean_{i in c} grad l(x_i, c)``;
* ``top C of G_means``: the top C eigenvectors of ``G_means`` (from the C^2 × C^2 Gram matrix of the means);
* ``all class-pair means``: the span of the C^2 vectors ``δ_cc'``;

against two baselines of the same dimension: a uniformly random subspace (expected fraction ``d / n``, exact) and
the span of the loss gradients of C single training samples drawn at random (does averaging within a class
matter?). We also report ``v_j^T G_means v_j / λ_j``, the part of each outlier eigenvalue the means account for.

Writes ``figures/hessian_outliers_counts.png``, ``figures/hessian_outliers_classmeans.png``,
``figures/hessian_outliers_eigenvalues.png``, ``figures/hessian_outliers_density.png``,
``figures/hessian_outliers.md`` and ``figures/hessian_outliers.json``. Training runs and the measurements at each
time are kept under ``--out``; re-running reuses them.

    python analyses/hessian_outliers.py            # full: about 5 CPU-minutes on one thread (6 runs, 24 measurements)
    python analyses/hessian_outliers.py --quick    # smoke test: ~10 s of CPU, writes under --out only
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter
from torch import Tensor, nn

from landscape import GGN, Hessian, SpectralDensity, density, eigs, evaluate, load_dataset
from landscape.foundation.runs import Run, atomic_write_bytes, atomic_write_json, cached_json
from landscape.foundation.state import untouched
from landscape.instruments.deflation import Deflated
from landscape.plots.style import bounded_errors, error_caption, new_figure, plain_ticks
from landscape.plots.surface import save_figure
from landscape.training import Hparams, train
from landscape.training.trainer import at_steps
from reproduction import Progress, invocation

CLASSES = 10       # MNIST-1D
GAP_FACTOR = 3.0   # a "big" log-gap: this many times the median log-gap of the top k
RULES = ("largest gap", "last big gap", "2-means", "MP edge")
SPANS = ("class means", "top C of G_means", "all class-pair means", "C single-sample gradients")


@dataclass(frozen=True)
class Network:
    """One architecture of the comparison: its label, registry name and factory arguments."""
    label: str
    model: str
    kwargs: dict


@dataclass(frozen=True)
class Setting:
    """The experiment's size: networks, training, measurement times, seeds and the solver budgets."""
    networks: tuple[Network, ...]
    steps: int
    times: tuple[int, ...]   # training steps at which the curvature is measured
    lr: float
    weight_decay: float
    seeds: tuple[int, ...]
    samples: int          # training samples the curvature is measured on
    top_k: int
    eig_tol: float        # residual tolerance relative to |λ|max
    max_matvecs: int
    density_steps: int
    density_runs: int


FULL = Setting(networks=(Network("MLP", "mlp", {"widths": [100, 100]}),
                         Network("MLP + BatchNorm", "mlp", {"widths": [100, 100], "batchnorm": True})),
               steps=3000, times=(100, 300, 1000, 3000), lr=0.05, weight_decay=5e-4, seeds=(0, 1, 2),
               samples=4000, top_k=30, eig_tol=1e-3, max_matvecs=600, density_steps=60, density_runs=3)
QUICK = Setting(networks=(Network("MLP", "mlp", {"widths": [24]}),
                          Network("MLP + BatchNorm", "mlp", {"widths": [24], "batchnorm": True})),
                steps=40, times=(20, 40), lr=0.05, weight_decay=5e-4, seeds=(0, 1), samples=400, top_k=12,
                eig_tol=1e-2, max_matvecs=150, density_steps=12, density_runs=2)
CLAIMS = """\
## What the papers found (their settings, not ours)

* Sagun et al. (2017, "Empirical analysis of the Hessian of over-parametrized neural networks"): at the end of
  training the Hessian spectrum is a bulk concentrated near zero plus a few outliers, about as many as classes.
* Papyan (2019, "Measurements of three-level hierarchical structure in the outliers in the spectrum of deepnet
  Hessians"; 2020, "Traces of class/cross-class structure pervade deep learning spectra"): C outliers for C
  classes in many architectures and data sets; they come from the Gauss-Newton part of the Hessian, and within
  it from the class means of the gradients (the C^2 class/cross-class means carry the outliers, the
  within-class variation the bulk).
* Ghorbani, Krishnan & Xiao (2019, "An investigation into neural net optimization via Hessian eigenvalue
  density"): the outliers are present without BatchNorm and largely suppressed with BatchNorm in the
  ResNet-32 / CIFAR-10 and ImageNet networks they studied (SLQ density on a log scale).
"""


def hparams(setting: Setting, network: Network, seed: int) -> Hparams:
    """One run's training hyperparameters (SGD with momentum 0.9, constant learning rate, batch 100)."""
    return Hparams(model=network.model, model_kwargs=network.kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, weight_decay=setting.weight_decay, batch_size=100, init_seed=seed,
                   data_order_seed=seed, eval_every=0, checkpoint_every=0)


def measure_run(setting: Setting, network: Network, seed: int, out: Path) -> dict[int, dict[str, Any]]:
    """Train one run, measuring its curvature at each of ``setting.times`` (:func:`measure_at`, the model left
    untouched), or read the measurements an earlier invocation saved: ``{step: record}``."""
    run = hparams(setting, network, seed)
    run_dir = out / run.name   # model, its arguments and the seed: one directory per trained network
    paths = {t: run_dir / f"spectrum_{t:05d}.json" for t in setting.times}
    records: dict[int, dict[str, Any]] = {}
    if all(path.is_file() for path in paths.values()):
        return {t: json.loads(path.read_text()) for t, path in paths.items()}
    dataset = load_dataset("mnist1d")
    x, y = (t[:setting.samples] for t in dataset.train)

    def at(model: nn.Module, step: int, _: Run) -> None:
        with untouched(model, training=False):
            records[step] = cached_json(paths[step], lambda: measure_at(setting, model, x, y, seed) | {
                "train": asdict(evaluate(model, dataset.loss_fn(), dataset.train)),
                "test": asdict(evaluate(model, dataset.loss_fn(), dataset.test))})

    began = time.process_time()
    train(run, run_dir, callbacks=[at_steps(setting.times, at)], progress=False)
    atomic_write_json(run_dir / "cpu.json", {"cpu_seconds": time.process_time() - began})
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise RuntimeError(f"the run in {run_dir} finished without measuring {missing}: delete {run_dir} and run "
                           "again")
    return {t: json.loads(path.read_text()) for t, path in paths.items()}


def run_cpu_seconds(setting: Setting, network: Network, seed: int, out: Path) -> float:
    """The CPU seconds one run took to train and measure, as saved when it ran (``nan`` if not saved)."""
    path = out / hparams(setting, network, seed).name / "cpu.json"
    return float(json.loads(path.read_text())["cpu_seconds"]) if path.is_file() else math.nan


def measure_at(setting: Setting, model: nn.Module, x: Tensor, y: Tensor, seed: int) -> dict[str, Any]:
    """The curvature of the mean cross-entropy on ``(x, y)`` at the model's present weights (eval mode): top
    Hessian and GGN eigenpairs, the deflated bulk density and moments, and the class-mean test."""
    began, cpu = time.perf_counter(), time.process_time()
    loss_fn = nn.CrossEntropyLoss()
    data = [(x[i:i + 1000], y[i:i + 1000]) for i in range(0, x.shape[0], 1000)]
    record: dict[str, Any] = {}
    pairs = {}
    for name, kind in (("hessian", Hessian), ("ggn", GGN)):
        op = kind(model, loss_fn, data)
        top = eigs(op, k=setting.top_k, tol=setting.eig_tol, max_matvecs=setting.max_matvecs, seed=seed)
        pairs[name] = (op, top)
        record[name] = {"eigenvalues": top.eigenvalues.tolist(), "residuals": top.residuals.tolist(),
                        "converged": top.converged, "matvecs": top.matvecs}
    hessian, top_h = pairs["hessian"]
    ggn, top_g = pairs["ggn"]
    record["ggn"]["hessian_cosines"] = principal_cosines(top_g.eigenvectors[:, :CLASSES].double(),
                                                         top_h.eigenvectors[:, :CLASSES].double()).tolist()
    bulk = density(Deflated(hessian, top_h.eigenvectors), steps=setting.density_steps, runs=setting.density_runs,
                   seed=seed)
    rest = hessian.shape[0] - setting.top_k
    moments = [bulk.spectral_sum(lambda t, j=j: t ** j) for j in (1, 2)]
    record["bulk"] = {"nodes": bulk.nodes.tolist(), "weights": bulk.weights.tolist(), "dim": bulk.dim,
                      "moments": [m.value / rest for m in moments], "moment_stderrs": [m.stderr / rest for m in moments],
                      "trace": moments[0].value, "trace_stderr": moments[0].stderr}
    record["class_means"] = class_mean_test(model, ggn, top_g, x, y, seed)
    record["seconds"] = time.perf_counter() - began
    record["cpu_seconds"] = time.process_time() - cpu
    return record


def flat_gradient(model: nn.Module, space: Any, scalar: Tensor) -> Tensor:
    """``d scalar / d θ`` over the operator's parameter space, flattened in its order, in float64 (the graph is
    kept for further gradients of the same forward pass)."""
    params = list(space.parameters(model).values())
    return space.to_flat(torch.autograd.grad(scalar, params, retain_graph=True, allow_unused=True,
                                             materialize_grads=True)).to(torch.float64)


def class_pair_means(model: nn.Module, space: Any, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The class-pair means ``δ_cc' = mean_{i in c} sqrt(p_ic') J_i^T (e_c' - p_i)`` as the columns of an
    ``(n, C^2)`` matrix (column ``c C + c'``), and the class frequencies ``π_c``: with them
    ``G = sum_{c,c'} π_c (δ_cc' δ_cc'^T + Σ_cc')`` for the mean cross-entropy. Each mean is the gradient of
    ``(1/N_c) sum_{i in c} u_i . z_i`` with the weights ``u_i = sqrt(p_ic') (e_c' - p_i)`` held fixed."""
    with torch.no_grad():
        p = torch.softmax(model(x).double(), dim=1)
    means, priors = [], []
    eye = torch.eye(CLASSES, dtype=torch.float64)
    for c in range(CLASSES):
        members = (y == c).nonzero().flatten()
        if members.numel() == 0:
            raise ValueError(f"class {c} has no sample among the {y.numel()} used: use more samples")
        priors.append(members.numel() / y.numel())
        z = model(x[members]).double()
        for c2 in range(CLASSES):
            weight = p[members, c2].sqrt()[:, None] * (eye[c2] - p[members])
            means.append(flat_gradient(model, space, (weight * z).sum() / members.numel()))
    return torch.stack(means, dim=1), torch.tensor(priors, dtype=torch.float64)


def class_mean_test(model: nn.Module, ggn: GGN, top: Any, x: Tensor, y: Tensor, seed: int) -> dict[str, Any]:
    """Fractions of the top C GGN eigenvectors' norms in the spans of :data:`SPANS` (see the module docstring),
    the same for a random subspace of each dimension (exact expectation ``d / n``), and the part of each top
    eigenvalue that ``G_means`` accounts for."""
    space = ggn.space
    V = top.eigenvectors[:, :CLASSES].to(torch.float64)
    D, priors = class_pair_means(model, space, x, y)
    class_means = [flat_gradient(model, space, nn.functional.cross_entropy(model(x[y == c]), y[y == c]))
                   for c in range(CLASSES)]
    rng = np.random.default_rng(seed)
    single = [flat_gradient(model, space, nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]))
              for i in rng.choice(x.shape[0], CLASSES, replace=False)]
    B = D * priors.repeat_interleave(CLASSES).sqrt()                      # G_means = B B^T
    U, S, _ = torch.linalg.svd(B, full_matrices=False)                    # its eigenvectors U, eigenvalues S^2
    bases = {"class means": torch.stack(class_means, dim=1), "top C of G_means": U[:, :CLASSES],
             "all class-pair means": D, "C single-sample gradients": torch.stack(single, dim=1)}
    n = V.shape[0]
    result: dict[str, Any] = {"dim": n}
    for name, basis in bases.items():
        Q = orthonormal(basis)
        result[name] = {"dimension": Q.shape[1], "fractions": ((Q.T @ V) ** 2).sum(dim=0).tolist(),
                        "cosines": principal_cosines(V, Q).tolist(), "random_fraction": Q.shape[1] / n}
    explained = ((B.T @ V) ** 2).sum(dim=0) / top.eigenvalues[:CLASSES].to(torch.float64)
    result["g_means_share"] = explained.tolist()
    result["g_means_top"] = (S[:2 * CLASSES] ** 2).tolist()
    return result


def orthonormal(basis: Tensor, rtol: float = 1e-8) -> Tensor:
    """An orthonormal basis of the columns' span (singular vectors above ``rtol`` times the largest)."""
    U, S, _ = torch.linalg.svd(basis, full_matrices=False)
    return U[:, S > rtol * S[0]]


def principal_cosines(A: Tensor, B: Tensor) -> Tensor:
    """Cosines of the principal angles between ``span(A)`` and ``span(B)`` (descending), from orthonormal bases."""
    return torch.linalg.svdvals(orthonormal(A).T @ orthonormal(B))


def log_gaps(eigenvalues: Sequence[float]) -> np.ndarray:
    """``log(λ_i / λ_{i+1})`` for consecutive descending eigenvalues; they must be positive."""
    values = np.asarray(eigenvalues, dtype=float)
    if values.min() <= 0:
        raise ValueError(f"log gaps need positive eigenvalues, got a smallest of {values.min():.3g}")
    return np.log(values[:-1] / values[1:])


def outlier_count(eigenvalues: Sequence[float]) -> int:
    """Largest-gap rule: the number of eigenvalues above the largest gap in log-eigenvalue among the given
    (descending, positive) top eigenvalues, ``argmax_i log(λ_i / λ_{i+1}) + 1``."""
    return int(np.argmax(log_gaps(eigenvalues))) + 1


def last_big_gap_count(eigenvalues: Sequence[float], factor: float = GAP_FACTOR) -> int:
    """Last-big-gap rule: the number of eigenvalues above the deepest log-gap larger than ``factor`` times the
    median log-gap of the given top eigenvalues; 0 when no gap is that large."""
    gaps = log_gaps(eigenvalues)
    big = np.flatnonzero(gaps > factor * np.median(gaps))
    return int(big[-1]) + 1 if big.size else 0


def two_means_count(eigenvalues: Sequence[float]) -> int:
    """2-means rule: the size of the upper cluster of the split of ``log λ`` into two contiguous groups with
    the least within-group sum of squares (the optimal 1-D two-cluster k-means)."""
    logs = np.log(np.asarray(eigenvalues, dtype=float))
    if logs.size < 2:
        raise ValueError("two clusters need at least two eigenvalues")
    cost = [((logs[:c] - logs[:c].mean()) ** 2).sum() + ((logs[c:] - logs[c:].mean()) ** 2).sum()
            for c in range(1, logs.size)]
    return int(np.argmin(cost)) + 1


def mp_edge(mean: float, second_moment: float) -> float:
    """The upper edge ``m_1 (1 + sqrt(γ))^2``, ``γ = m_2 / m_1^2 - 1``, of the Marchenko-Pastur law with mean
    ``m_1`` and second moment ``m_2`` (``nan`` when ``m_1 <= 0``: no such law)."""
    if mean <= 0:
        return math.nan
    gamma = max(second_moment / mean ** 2 - 1.0, 0.0)
    return mean * (1.0 + math.sqrt(gamma)) ** 2


def mp_edge_count(eigenvalues: Sequence[float], edge: float) -> int:
    """MP-edge rule: the number of the given top eigenvalues above ``edge`` (all of them when it is ``nan``)."""
    values = np.asarray(eigenvalues, dtype=float)
    return int(values.size if math.isnan(edge) else (values > edge).sum())


def counts(record: dict[str, Any], which: str = "hessian") -> dict[str, int]:
    """The outlier count of each rule of :data:`RULES` for one measurement's top eigenvalues."""
    top = record[which]["eigenvalues"]
    return {"largest gap": outlier_count(top), "last big gap": last_big_gap_count(top),
            "2-means": two_means_count(top), "MP edge": mp_edge_count(top, mp_edge(*record["bulk"]["moments"]))}


def to_density(record: dict[str, Any]) -> SpectralDensity:
    """The saved SLQ nodes and weights as a :class:`SpectralDensity`."""
    return SpectralDensity(nodes=torch.tensor(record["nodes"], dtype=torch.float64),
                           weights=torch.tensor(record["weights"], dtype=torch.float64), dim=int(record["dim"]),
                           matvecs=0)


def summarise(setting: Setting, records: list[dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per measurement time, per-seed numbers of one network with their means and sample standard deviations."""
    out: dict[str, Any] = {}
    for t in setting.times:
        at = [r[t] for r in records]
        per_seed: dict[str, list[float]] = {}
        for rule in RULES:
            per_seed[f"count: {rule}"] = [counts(r)[rule] for r in at]
            per_seed[f"GGN count: {rule}"] = [counts(r, "ggn")[rule] for r in at]
        hessian = [np.asarray(r["hessian"]["eigenvalues"]) for r in at]
        ggn = [np.asarray(r["ggn"]["eigenvalues"]) for r in at]
        traces = [float(h.sum() + r["bulk"]["trace"]) for h, r in zip(hessian, at)]
        per_seed |= {
            "gap at C": [float(log_gaps(h)[CLASSES - 1] / np.median(log_gaps(h))) for h in hessian],
            "largest gap": [float(log_gaps(h).max() / np.median(log_gaps(h))) for h in hessian],
            "lambda_max": [float(h[0]) for h in hessian],
            "ratio_top_to_kth": [float(h[0] / h[-1]) for h in hessian],
            "top_C_trace_share": [float(h[:CLASSES].sum() / tr) for h, tr in zip(hessian, traces)],
            "trace": traces,
            "ggn_over_hessian_top_C": [float(np.mean(g[:CLASSES] / h[:CLASSES])) for g, h in zip(ggn, hessian)],
            "ggn_hessian_overlap": [float(np.mean(np.square(r["ggn"]["hessian_cosines"]))) for r in at],
            "mp_edge_over_lambda_C": [mp_edge(*r["bulk"]["moments"]) / h[CLASSES - 1] for h, r in zip(hessian, at)],
            "max_relative_residual": [max(r["hessian"]["residuals"]) / r["hessian"]["eigenvalues"][0] for r in at],
            "train_loss": [r["train"]["loss"] for r in at],
            "test_accuracy": [r["test"]["accuracy"] for r in at],
            "g_means_share": [float(np.mean(r["class_means"]["g_means_share"])) for r in at],
        }
        converged = [bool(r[m]["converged"]) for r in at for m in ("hessian", "ggn")]
        for span in SPANS:
            per_seed[f"fraction: {span}"] = [float(np.mean(r["class_means"][span]["fractions"])) for r in at]
            per_seed[f"random: {span}"] = [r["class_means"][span]["random_fraction"] for r in at]
        out[str(t)] = {"per_seed": per_seed | {"converged": converged}, "converged": all(converged),
                       "mean": {k: float(np.mean(v)) for k, v in per_seed.items()},
                       "sd": {k: _sd(v) for k, v in per_seed.items()}}
    return out


def _sd(values: Sequence[float]) -> float:
    """Sample standard deviation over seeds (``nan`` for one seed)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def plot_counts(setting: Setting, summaries: dict[str, dict[str, Any]]) -> Figure:
    """One panel per network: each rule's Hessian outlier count against training step, mean ± s.d. over
    seeds, with C marked."""
    seeds = len(setting.seeds)
    fig = new_figure(5.2 * len(summaries), 4.0)
    axes = fig.subplots(1, len(summaries), squeeze=False, sharey=True)[0]
    times = np.asarray(setting.times, dtype=float)
    for ax, (label, summary) in zip(axes, summaries.items()):
        for i, rule in enumerate(RULES):
            key = f"count: {rule}"
            mean = np.array([summary[str(t)]["mean"][key] for t in setting.times])
            sd = np.array([summary[str(t)]["sd"][key] for t in setting.times])
            ax.errorbar(times * 1.04 ** (i - 1.5), mean, yerr=bounded_errors(mean, sd, upper=setting.top_k),
                        fmt="-o", ms=4, capsize=3,
                        color=f"C{i}", label=rule if rule != "MP edge" else
                        f"{rule} ({setting.top_k}: all top {setting.top_k} above it)")
        ax.axhline(CLASSES, color="0.4", ls="--", lw=0.8, label=f"C = {CLASSES}")
        ax.set_xscale("log")
        ax.set_ylim(0, setting.top_k + 2)
        _time_ticks(ax, setting)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"Hessian outliers among the top {setting.top_k}")
        ax.set_title(f"{label} ({error_caption(seeds)})", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def _time_ticks(ax, setting: Setting) -> None:
    """Plain tick labels, the x ticks at the measurement steps."""
    plain_ticks(ax)
    ax.set_xticks(list(setting.times), [str(t) for t in setting.times])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_class_means(setting: Setting, summaries: dict[str, dict[str, Any]]) -> Figure:
    """One panel per network: the fraction of the squared norm of each of the top C GGN eigenvectors inside each
    span, averaged over the C, against training step (mean ± s.d. over seeds); the random-subspace fractions of
    the same dimensions as grey lines."""
    seeds = len(setting.seeds)
    fig = new_figure(5.6 * len(summaries), 4.2)
    axes = fig.subplots(1, len(summaries), squeeze=False, sharey=True)[0]
    times = np.asarray(setting.times, dtype=float)
    for ax, (label, summary) in zip(axes, summaries.items()):
        for i, span in enumerate(SPANS):
            mean = np.array([summary[str(t)]["mean"][f"fraction: {span}"] for t in setting.times])
            sd = np.array([summary[str(t)]["sd"][f"fraction: {span}"] for t in setting.times])
            ax.errorbar(times, mean, yerr=bounded_errors(mean, sd, upper=1.0), fmt="-o", ms=4, capsize=3,
                        color=f"C{i}",
                        label=span)
        for dimension, style in ((CLASSES, ":"), (CLASSES ** 2, "-.")):
            n = summary[str(setting.times[0])]["mean"]["random: class means"] ** -1 * CLASSES
            ax.axhline(dimension / n, color="0.3", ls=style, lw=0.9,
                       label=f"random {dimension}-dim subspace ({dimension / n:.1g})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(2e-4, 1.5)
        _time_ticks(ax, setting)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"norm² in the span, mean of top {CLASSES} GGN eigvecs")
        ax.set_title(f"{label} ({error_caption(seeds)})", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_eigenvalues(setting: Setting, summaries: dict[str, dict[str, Any]],
                     spectra: dict[str, list[dict[int, dict[str, Any]]]]) -> Figure:
    """One panel per network: the sorted top Hessian eigenvalues at each measurement time (mean ± s.d. over
    seeds, solid) and the GGN's (mean, dashed), log axis; grey line after C."""
    seeds = len(setting.seeds)
    fig = new_figure(5.4 * len(spectra), 4.2)
    axes = fig.subplots(1, len(spectra), squeeze=False, sharey=True)[0]
    for ax, (label, runs) in zip(axes, spectra.items()):
        for i, t in enumerate(setting.times):
            h = np.array([r[t]["hessian"]["eigenvalues"] for r in runs])
            g = np.array([r[t]["ggn"]["eigenvalues"] for r in runs])
            index = np.arange(1, h.shape[1] + 1)
            sd = h.std(axis=0, ddof=1) if seeds > 1 else np.zeros(h.shape[1])
            ax.errorbar(index, h.mean(axis=0), yerr=bounded_errors(h.mean(axis=0), sd), fmt="-o", ms=3, lw=1.0,
                        capsize=2, color=f"C{i}", label=f"step {t}: Hessian")
            ax.plot(index, g.mean(axis=0), "--", lw=0.9, color=f"C{i}", label=f"step {t}: GGN")
        ax.axvline(CLASSES + 0.5, color="0.4", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        plain_ticks(ax)
        ax.set_xlabel(f"eigenvalue index i (grey line: after C = {CLASSES})")
        ax.set_ylabel("λ_i (loss / parameter²)")
        ax.set_title(f"{label} ({error_caption(seeds)})", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    return fig


def plot_densities(setting: Setting, spectra: dict[str, list[dict[int, dict[str, Any]]]]) -> Figure:
    """One panel per network, at the last measurement time: each seed's smoothed SLQ density of the bulk (the
    Hessian with its top k deflated) on a log-density axis, its top k eigenvalues as ticks, and its MP edge."""
    t = setting.times[-1]
    fig = new_figure(5.4 * len(spectra), 4.2)
    axes = fig.subplots(1, len(spectra), squeeze=False)[0]
    for ax, (label, runs) in zip(axes, spectra.items()):
        records = [r[t] for r in runs]
        high = max(r["hessian"]["eigenvalues"][0] for r in records)
        low = min(min(min(n) for n in r["bulk"]["nodes"]) for r in records)
        sigma = (high - low) / 200
        grid = torch.linspace(low - 5 * sigma, high * 1.05, 800, dtype=torch.float64)
        one = 1.0 / (records[0]["bulk"]["dim"] * sigma * math.sqrt(2 * math.pi))
        peak = 0.0
        for i, record in enumerate(records):
            pdf = to_density(record["bulk"]).pdf(grid, sigma).numpy()
            peak = max(peak, float(pdf.max()))
            ax.plot(grid.numpy(), pdf, lw=1.0, color=f"C{i}", label=f"seed {setting.seeds[i]}: bulk density")
            top = np.asarray(record["hessian"]["eigenvalues"])
            row = one * 0.3 / 2.2 ** i
            ax.plot(top, np.full(top.size, row), "|", color=f"C{i}", ms=8, mew=1.5)
            edge = mp_edge(*record["bulk"]["moments"])
            if not math.isnan(edge):
                ax.axvline(edge, color=f"C{i}", ls=":", lw=1.0)
        ax.axhline(one, color="k", lw=0.8, ls="--", label="height of one eigenvalue")
        ax.set_yscale("log")
        ax.set_ylim(one * 0.3 / 2.2 ** len(records), peak * 3)
        plain_ticks(ax)
        ax.set_xlabel("Hessian eigenvalue (loss / parameter²)")
        ax.set_ylabel(f"spectral density (SLQ, Gaussian σ = {sigma:.2g})")
        ax.set_title(f"{label}, step {t}", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Bulk density (Hessian with its top {setting.top_k} deflated); ticks: each seed's top "
                 f"{setting.top_k} eigenvalues; dotted: each seed's MP edge", fontsize="medium")
    return fig


def _pm(summary: dict[str, Any], key: str, scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    mean, sd = scale * summary["mean"][key], scale * summary["sd"][key]
    return f"{mean:.{digits}g}{unit}" + ("" if math.isnan(sd) else f" ± {sd:.2g}{unit}")


def report(setting: Setting, summaries: dict[str, dict[str, Any]], seconds: float, cpu: float) -> str:
    """The markdown report: set-up, the count, attribution and class-mean tables, the reading, and the papers'
    claims. ``seconds``: this invocation's wall time; ``cpu``: the CPU time the runs took when they were trained
    and measured."""
    seeds = len(setting.seeds)
    lines = [
        "# Hessian outliers through training, with and without BatchNorm, on MNIST-1D", "",
        f"Networks: {', '.join(f'{n.label} (`{n.model}` {n.kwargs})' for n in setting.networks)}. MNIST-1D "
        f"(C = {CLASSES} classes, 4000 train / 1000 test), SGD lr {setting.lr} (constant), momentum 0.9, weight "
        f"decay {setting.weight_decay}, batch 100, {setting.steps} steps; {seeds} seeds. Curvature of the mean "
        f"cross-entropy on {setting.samples} training samples at steps {', '.join(map(str, setting.times))} "
        f"(BatchNorm with its running statistics): top {setting.top_k} eigenvalues of the Hessian and of the GGN by "
        f"Lanczos (residual tolerance {setting.eig_tol} λ_max); the bulk by SLQ ({setting.density_runs} runs of "
        f"{setting.density_steps} steps) of the Hessian with its top {setting.top_k} eigenvectors deflated. Numbers "
        f"are mean ± sample s.d. over {seeds} seeds, with the per-seed values where they matter. Produced by "
        f"`python analyses/hessian_outliers.py`: training and measuring took "
        + ("an unrecorded CPU time" if math.isnan(cpu) else f"{cpu / 60:.1f} CPU-minutes") + " on one "
        f"thread (this invocation: {seconds / 60:.1f} minutes of wall time; it reuses earlier measurements). The "
        "module docstring gives every rule and the class-mean decomposition in full.", "",
        "![outlier counts](hessian_outliers_counts.png)", "", "![class means](hessian_outliers_classmeans.png)", "",
        "![eigenvalues](hessian_outliers_eigenvalues.png)", "", "![density](hessian_outliers_density.png)", "",
        "## How many outliers: the count depends on the rule and on the time", "",
        f"Rules on the top {setting.top_k} Hessian eigenvalues: *largest gap* (eigenvalues above the largest gap in "
        f"log λ), *last big gap* (above the deepest log-gap larger than {GAP_FACTOR:g} median log-gaps), *2-means* "
        "(upper cluster of the best two-group split of log λ), *MP edge* (above the Marchenko-Pastur edge with the "
        f"deflated bulk's mean and second moment; {setting.top_k} means all of the top {setting.top_k}). Cells: "
        "per-seed counts, then mean ± s.d.", "",
        "| network | step | " + " | ".join(RULES) + " | largest gap, GGN | gap at C (median gaps) | train loss | "
        "test accuracy |", "|---|---|" + "---|" * (len(RULES) + 4),
    ]
    for label, summary in summaries.items():
        for t in setting.times:
            s = summary[str(t)]
            cells = [f"{s['per_seed'][f'count: {rule}']} {_pm(s, f'count: {rule}', digits=2)}" for rule in RULES]
            cells.append(str(s["per_seed"]["GGN count: largest gap"]))
            cells += [_pm(s, "gap at C"), _pm(s, "train_loss"), _pm(s, "test_accuracy", scale=100, unit="%")]
            lines.append(f"| {label} | {t} | " + " | ".join(cells) + " |")
    lines += ["", "## Where they come from: the Gauss-Newton part", "",
              f"| network | step | GGN / Hessian, top {CLASSES} eigenvalues | overlap of the top-{CLASSES} GGN and "
              f"Hessian subspaces (mean squared principal cosine) | top-{CLASSES} share of tr H | λ_max |",
              "|---|---|---|---|---|---|"]
    for label, summary in summaries.items():
        for t in setting.times:
            s = summary[str(t)]
            lines.append(f"| {label} | {t} | {_pm(s, 'ggn_over_hessian_top_C', digits=4)} | "
                         f"{_pm(s, 'ggn_hessian_overlap')} | "
                         f"{_pm(s, 'top_C_trace_share', scale=100, unit='%')} | {_pm(s, 'lambda_max')} |")
    lines += ["", "## Class means: are the top C GGN eigenvectors in the span of the class means?", "",
              f"Cells: the fraction of each top-{CLASSES} GGN eigenvector's squared norm inside the span, averaged "
              f"over the {CLASSES} eigenvectors (1 = inside, 0 = orthogonal), mean ± s.d. over seeds. *class means*: "
              f"the {CLASSES} class means of the loss gradients with the data's labels. *top C of G_means*: the top "
              f"{CLASSES} eigenvectors of G_means = Σ π_c δ_cc' δ_cc'^T. *all class-pair means*: the span of the "
              f"{CLASSES}² vectors δ_cc' = mean over class c of sqrt(p_ic') J_i^T (e_c' − p_i). Baselines: a random "
              f"subspace of the same dimension (exact expectation d/n) and the span of the loss gradients of "
              f"{CLASSES} single random training samples. Last column: v_j^T G_means v_j / λ_j, the part of each top "
              f"GGN eigenvalue the class-pair means account for (mean over the top {CLASSES}).", "",
              "| network | step | " + " | ".join(SPANS) + f" | random {CLASSES}-dim | random {CLASSES ** 2}-dim | "
              "G_means share of λ_j |", "|---|---|" + "---|" * (len(SPANS) + 3)]
    for label, summary in summaries.items():
        for t in setting.times:
            s = summary[str(t)]
            cells = [_pm(s, f"fraction: {span}") for span in SPANS]
            cells += [f"{s['mean']['random: class means']:.1g}", f"{s['mean']['random: all class-pair means']:.1g}",
                      _pm(s, "g_means_share")]
            lines.append(f"| {label} | {t} | " + " | ".join(cells) + " |")
    residual = max(max(s["per_seed"]["max_relative_residual"]) for summary in summaries.values()
                   for s in summary.values())
    converged = all(s["converged"] for summary in summaries.values() for s in summary.values())
    failed = sum(not ok for summary in summaries.values() for s in summary.values() for ok in s["per_seed"]["converged"])
    solves = sum(len(s["per_seed"]["converged"]) for summary in summaries.values() for s in summary.values())
    lines += ["", f"{'Every' if converged else f'NOT every ({failed} of {solves} not certified)'} eigen solve "
              "converged; the largest residual "
              f"||H v − λ v|| relative to λ_max is {residual:.1g}. tr H is the sum of the top {setting.top_k} "
              "plus the SLQ trace of the deflated rest.", "", "## Verdicts", "",
              *findings(setting, summaries), "", CLAIMS]
    return "\n".join(lines)


def findings(setting: Setting, summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences read off the summaries: the count by rule and time, the GGN attribution, the class-mean test,
    and what BatchNorm does."""
    out = []
    first, last = str(setting.times[0]), str(setting.times[-1])
    for label, summary in summaries.items():
        end = summary[last]
        by_rule = "; ".join(f"{rule} {end['per_seed'][f'count: {rule}']}" for rule in RULES)
        saturated = [str(t) for t in setting.times
                     if all(c == setting.top_k for c in summary[str(t)]["per_seed"]["count: MP edge"])]
        trend = "; ".join(f"step {t}: {summary[str(t)]['per_seed']['count: largest gap']}" for t in setting.times)
        near = sum(c in (CLASSES - 1, CLASSES) for rule in RULES for c in end["per_seed"][f"count: {rule}"])
        total = len(RULES) * len(setting.seeds)
        gap_rules = [rule for rule in RULES if rule != "MP edge"]
        spread = "; ".join(
            f"step {t}: {min(min(summary[str(t)]['per_seed'][f'count: {r}']) for r in gap_rules)}–"
            f"{max(max(summary[str(t)]['per_seed'][f'count: {r}']) for r in gap_rules)}" for t in setting.times)
        out.append(f"* {label}, outlier count: at step {last} the rules give {by_rule} (per seed); {near} of "
                   f"{total} rule-seed counts are C − 1 or C. Through training the largest-gap count goes {trend}; "
                   f"the range over the gap and cluster rules and the seeds is {spread}. A count of about C is "
                   f"therefore {'what the rules agree on' if near == total else 'not a robust reading of these spectra: it depends on the rule and on when one looks'}."
                   + (f" The MP-like edge lies below all top {setting.top_k} eigenvalues at steps "
                      f"{', '.join(saturated)}, so that rule counts at least {setting.top_k} there: the bulk is so "
                      "concentrated near 0 that its edge sits below the whole top group, and the rule singles out "
                      "no small set." if saturated else ""))
        good = [t for t in setting.times if abs(summary[str(t)]["mean"]["ggn_over_hessian_top_C"] - 1) < 0.02
                and summary[str(t)]["mean"]["ggn_hessian_overlap"] > 0.9]
        out.append(f"* {label}, attribution to the GGN: at step {last} the top {CLASSES} GGN eigenvalues are "
                   f"{_pm(end, 'ggn_over_hessian_top_C', digits=4)} times the Hessian's and the two top-{CLASSES} "
                   f"subspaces overlap {_pm(end, 'ggn_hessian_overlap')} (mean squared cosine of their principal "
                   "angles, 1 = the same subspace). Rule: the GGN accounts for the outliers where the ratio is "
                   "within 2% of 1 and the overlap above 0.9; "
                   + ("so at every measured step: Papyan's attribution of the outliers to the Gauss-Newton part "
                      "**reproduces**." if len(good) == len(setting.times) else
                      f"met at steps {good} of {list(setting.times)}: the attribution **reproduces** only there."
                      if good else "met at none of the measured steps: the attribution **does not reproduce** here."))
        fractions = {span: end["mean"][f"fraction: {span}"] for span in SPANS}
        random = end["mean"]["random: class means"]
        verdict = ("**reproduces** for the directions" if fractions["class means"] >= 0.5 else
                   "**partly**: far above chance, but most of the norm lies outside" if
                   fractions["class means"] > 10 * max(random, fractions["C single-sample gradients"]) else
                   "**does not reproduce**")
        share = end["mean"]["g_means_share"]
        verdict += (f"; the means' part G_means accounts for {'most' if share >= 0.5 else 'only part'} of the "
                    f"outliers' eigenvalues ({share:.2f} at step {last}, {summary[first]['mean']['g_means_share']:.2f} "
                    f"at step {first}), the rest coming from the within-class covariance in the same directions")
        out.append(f"* {label}, class means at step {last}: the span of the C class means of the loss gradients holds "
                   f"{_pm(end, 'fraction: class means')} of each top-{CLASSES} GGN eigenvector's norm, against "
                   f"{random:.1g} for a random {CLASSES}-dim subspace and "
                   f"{_pm(end, 'fraction: C single-sample gradients')} for {CLASSES} single-sample gradients; the top "
                   f"{CLASSES} of G_means hold {_pm(end, 'fraction: top C of G_means')}, all {CLASSES}² class-pair "
                   f"means {_pm(end, 'fraction: all class-pair means')}, and G_means accounts for "
                   f"{_pm(end, 'g_means_share')} of each top eigenvalue (at step {first}: class means "
                   f"{_pm(summary[first], 'fraction: class means')}). Papyan's class-mean structure (rule set "
                   f"before the full run: reproduces when the C class means hold at least half the norm; partly when "
                   f"over 10 times both baselines) {verdict}.")
    (plain, plain_summary), *others = summaries.items()
    for label, summary in others:
        s, p = summary[last], plain_summary[last]
        out.append(f"* BatchNorm at step {last} ({label} against {plain}): largest-gap count "
                   f"{s['per_seed']['count: largest gap']} against {p['per_seed']['count: largest gap']}; λ_1/λ_k "
                   f"{_pm(s, 'ratio_top_to_kth')} against {_pm(p, 'ratio_top_to_kth')}; top-C share of tr H "
                   f"{_pm(s, 'top_C_trace_share', scale=100, unit='%')} against "
                   f"{_pm(p, 'top_C_trace_share', scale=100, unit='%')}; λ_max {_pm(s, 'lambda_max')} against "
                   f"{_pm(p, 'lambda_max')}. " + batchnorm_verdict(p, s))
    return out


def batchnorm_verdict(plain: dict[str, Any], batchnorm: dict[str, Any]) -> str:
    """Whether BatchNorm suppressed the outliers: the change of the top-C share of tr H, and whether a separated
    top group remains (largest log-gap above 3 median gaps)."""
    factor = batchnorm["mean"]["top_C_trace_share"] / plain["mean"]["top_C_trace_share"]
    change = (f"BatchNorm {'lowers' if factor < 1 else 'raises'} the top C eigenvalues' share of tr H to "
              f"{factor:.2f} times its value without")
    if batchnorm["mean"]["largest gap"] > 3:
        return (f"{change}, but a separated top group remains (largest gap {_pm(batchnorm, 'largest gap')} median "
                f"gaps): not the suppression of the outliers Ghorbani et al. report.")
    return f"{change}, and no separated top group remains: the suppression Ghorbani et al. report."


def main() -> None:
    run = invocation("hessian_outliers", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    spectra: dict[str, list[dict[int, dict[str, Any]]]] = {}
    for network in setting.networks:
        spectra[network.label] = []
        for seed in setting.seeds:
            spectra[network.label].append(measure_run(setting, network, seed, out))
            progress.done(f"{network.label}, seed {seed}")
    summaries = {label: summarise(setting, records) for label, records in spectra.items()}
    seconds = progress.seconds
    save_figure(plot_counts(setting, summaries), figures / "hessian_outliers_counts.png")
    save_figure(plot_class_means(setting, summaries), figures / "hessian_outliers_classmeans.png")
    save_figure(plot_eigenvalues(setting, summaries, spectra), figures / "hessian_outliers_eigenvalues.png")
    save_figure(plot_densities(setting, spectra), figures / "hessian_outliers_density.png")
    cpu = sum(run_cpu_seconds(setting, network, seed, out) for network in setting.networks for seed in setting.seeds)
    text = report(setting, summaries, seconds, cpu)
    atomic_write_bytes(figures / "hessian_outliers.md", text.encode())
    atomic_write_json(figures / "hessian_outliers.json", {
        "setting": asdict(setting), "classes": CLASSES, "rules": RULES, "spans": SPANS, "summaries": summaries,
        "seconds": seconds, "cpu_seconds": cpu,
        "spectra": {label: [{str(t): {k: r[t][k] for k in ("hessian", "ggn", "class_means", "train", "test",
                                                            "seconds")} | {"bulk_moments": r[t]["bulk"]["moments"]}
                             for t in setting.times} for r in records]
                    for label, records in spectra.items()}})
    print(text)


if __name__ == "__main__":
    main()
