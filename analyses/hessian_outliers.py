"""Outliers of the Hessian spectrum at the end of training, with and without BatchNorm, on MNIST-1D.

Sagun et al. (2017) and Papyan (2019) found that the Hessian of a trained classifier has a bulk of eigenvalues
near zero and about C outliers for C classes, and Papyan attributes the outliers to the Gauss-Newton part
``G = J^T H_L J``; Ghorbani, Krishnan & Xiao (2019) found that BatchNorm suppresses the outliers. For every
model and seed (``init_seed = data_order_seed = seed``) we train on MNIST-1D (C = 10) and, at the last step,
on the whole training set (4000 samples, BatchNorm in eval mode, i.e. with its running statistics):

* the top ``k`` Hessian eigenvalues with their residuals ``||H v - λ v||`` (:func:`landscape.eigs`),
* the top ``k`` GGN eigenvalues the same way (:class:`landscape.GGN`),
* the Hessian's spectral density by stochastic Lanczos quadrature (:func:`landscape.density`).

Outlier count (the rule, fixed before looking): sort the top ``k`` eigenvalues ``λ_1 ≥ … ≥ λ_k`` (all positive
here) and take the largest gap in log-eigenvalue, ``c = argmax_i log(λ_i / λ_{i+1})``, ``i < k``: the ``c``
eigenvalues above it are the outliers. Because the largest gap can sit after a single dominant eigenvalue even
when a gap at C exists, we also report the gap at C and at C - 1 in units of the median log-gap of the top ``k``
(a gap of 1 is typical of the bulk; the claim predicts a large one at C or C - 1, the softmax Hessian in logit
space having rank C - 1).

Writes ``figures/hessian_outliers_density.png``, ``figures/hessian_outliers_eigenvalues.png``,
``figures/hessian_outliers.md`` and ``figures/hessian_outliers.json``. Training runs and the measured spectra are
kept under ``--out``; re-running reuses them.

    python analyses/hessian_outliers.py            # full: about 9 minutes on one shared CPU thread
    python analyses/hessian_outliers.py --quick    # smoke test: ~15 s of CPU, writes under --out only
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

from landscape import GGN, Estimate, Hessian, SpectralDensity, density, eigs, load_dataset
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json
from landscape.plots.surface import save_figure
from landscape.training import Hparams, train
from reproduction import Progress, invocation

CLASSES = 10   # MNIST-1D


@dataclass(frozen=True)
class Network:
    """One architecture of the comparison: its label, registry name and factory arguments."""
    label: str
    model: str
    kwargs: dict


@dataclass(frozen=True)
class Setting:
    """The experiment's size: networks, training, seeds and the eigen-solver and SLQ budgets."""
    networks: tuple[Network, ...]
    steps: int
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
               steps=3000, lr=0.05, weight_decay=5e-4, seeds=(0, 1, 2, 3), samples=4000, top_k=30, eig_tol=1e-3,
               max_matvecs=600, density_steps=80, density_runs=4)
QUICK = Setting(networks=(Network("MLP", "mlp", {"widths": [24]}),
                          Network("MLP + BatchNorm", "mlp", {"widths": [24], "batchnorm": True})),
                steps=40, lr=0.05, weight_decay=5e-4, seeds=(0, 1), samples=500, top_k=12, eig_tol=1e-2,
                max_matvecs=200, density_steps=20, density_runs=2)
CLAIMS = """\
## What the papers found (their settings, not ours)

* Sagun et al. (2017, "Empirical analysis of the Hessian of over-parametrized neural networks"): at the end of
  training the Hessian spectrum is a bulk concentrated near zero plus a few outliers, about as many as classes.
* Papyan (2019, "Measurements of three-level hierarchical structure in the outliers in the spectrum of deepnet
  Hessians"): C outliers for C classes in many architectures and data sets, which come from the Gauss-Newton
  part of the Hessian (class means of the logit gradients).
* Ghorbani, Krishnan & Xiao (2019, "An investigation into neural net optimization via Hessian eigenvalue
  density"): the outliers are present without BatchNorm and largely suppressed with BatchNorm in the
  ResNet-32 / CIFAR-10 and ImageNet networks they studied (SLQ density on a log scale).
"""


def hparams(setting: Setting, network: Network, seed: int) -> Hparams:
    """One run's training hyperparameters (SGD with momentum 0.9, constant learning rate, batch 100)."""
    return Hparams(model=network.model, model_kwargs=network.kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, weight_decay=setting.weight_decay, batch_size=100, init_seed=seed,
                   data_order_seed=seed, eval_every=0, checkpoint_every=0)


def measure(setting: Setting, network: Network, seed: int, out: Path) -> dict[str, Any]:
    """Train one run and measure its final curvature, or read the measurement an earlier invocation saved."""
    run = hparams(setting, network, seed)
    run_dir = out / run.name   # model, its arguments and the seed: one directory per trained network
    saved = run_dir / "spectrum.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    began = time.perf_counter()
    result = train(run, run_dir, progress=False)
    model = result.model.eval()
    dataset = load_dataset("mnist1d")
    x, y = (t[:setting.samples] for t in dataset.train)
    data = [(x[i:i + 1000], y[i:i + 1000]) for i in range(0, x.shape[0], 1000)]
    record = {"train": asdict(result.train), "test": asdict(result.test)}
    for name, kind in (("hessian", Hessian), ("ggn", GGN)):
        top = eigs(kind(model, dataset.loss_fn(), data), k=setting.top_k, tol=setting.eig_tol,
                   max_matvecs=setting.max_matvecs, seed=seed)
        record[name] = {"eigenvalues": top.eigenvalues.tolist(), "residuals": top.residuals.tolist(),
                        "converged": top.converged, "matvecs": top.matvecs}
    slq = density(Hessian(model, dataset.loss_fn(), data), steps=setting.density_steps, runs=setting.density_runs,
                  seed=seed)
    record["density"] = {"nodes": slq.nodes.tolist(), "weights": slq.weights.tolist(), "dim": slq.dim}
    record["seconds"] = time.perf_counter() - began
    atomic_write_json(saved, record)
    return record


def outlier_count(eigenvalues: Sequence[float]) -> int:
    """The number of eigenvalues above the largest gap in log-eigenvalue among the given (descending, positive)
    top eigenvalues: ``argmax_i log(λ_i / λ_{i+1}) + 1``."""
    return int(np.argmax(log_gaps(eigenvalues))) + 1


def log_gaps(eigenvalues: Sequence[float]) -> np.ndarray:
    """``log(λ_i / λ_{i+1})`` for consecutive descending eigenvalues; they must be positive."""
    values = np.asarray(eigenvalues, dtype=float)
    if values.min() <= 0:
        raise ValueError(f"log gaps need positive eigenvalues, got a smallest of {values.min():.3g}")
    return np.log(values[:-1] / values[1:])


def relative_gap(eigenvalues: Sequence[float], c: int) -> float:
    """The gap after the ``c``-th eigenvalue, ``log(λ_c / λ_{c+1})``, over the median log-gap of the top ones."""
    gaps = log_gaps(eigenvalues)
    return float(gaps[c - 1] / np.median(gaps))


def to_density(record: dict[str, Any]) -> SpectralDensity:
    """The saved SLQ nodes and weights as a :class:`SpectralDensity`."""
    return SpectralDensity(nodes=torch.tensor(record["nodes"], dtype=torch.float64),
                           weights=torch.tensor(record["weights"], dtype=torch.float64), dim=int(record["dim"]),
                           matvecs=0)


def hessian_trace(record: dict[str, Any]) -> Estimate:
    """``tr H = n (1/runs) sum_r sum_k w_rk theta_rk`` from the saved SLQ quadrature, with its error over runs."""
    return to_density(record["density"]).spectral_sum(lambda t: t)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed counts and gaps of one network, with means and standard errors over seeds."""
    hessian = [r["hessian"]["eigenvalues"] for r in records]
    ggn = [r["ggn"]["eigenvalues"] for r in records]
    per_seed = {
        "count": [outlier_count(e) for e in hessian],
        "ggn_count": [outlier_count(e) for e in ggn],
        "gap_at_C": [relative_gap(e, CLASSES) for e in hessian],
        "gap_at_C_minus_1": [relative_gap(e, CLASSES - 1) for e in hessian],
        "largest_gap": [float(log_gaps(e).max() / np.median(log_gaps(e))) for e in hessian],
        "lambda_max": [e[0] for e in hessian],
        "ratio_top_to_kth": [e[0] / e[-1] for e in hessian],
        "top_C_trace_share": [sum(e[:CLASSES]) / hessian_trace(r).value for e, r in zip(hessian, records)],
        "trace": [hessian_trace(r).value for r in records],
        "trace_slq_stderr": [hessian_trace(r).stderr for r in records],
        "ggn_over_hessian_top_C": [float(np.mean(np.asarray(g[:CLASSES]) / np.asarray(h[:CLASSES])))
                                   for g, h in zip(ggn, hessian)],
        "max_relative_residual": [max(r["hessian"]["residuals"]) / r["hessian"]["eigenvalues"][0] for r in records],
        "train_loss": [r["train"]["loss"] for r in records],
        "train_accuracy": [r["train"]["accuracy"] for r in records],
        "test_accuracy": [r["test"]["accuracy"] for r in records],
    }
    return {"per_seed": per_seed, "converged": all(r[m]["converged"] for r in records for m in ("hessian", "ggn")),
            "mean": {k: float(np.mean(v)) for k, v in per_seed.items()},
            "stderr": {k: _stderr(v) for k, v in per_seed.items()}}


def _stderr(values: Sequence[float]) -> float:
    """Standard error of the mean over seeds (sample standard deviation over sqrt(seeds))."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def plot_densities(spectra: dict[str, list[dict[str, Any]]]) -> Figure:
    """One panel per network: seed 0's smoothed SLQ density (black) and the other seeds' (light) on a log-density
    axis; below, one row of ticks per seed at its top eigenvalues (bold: above the largest log-gap, the counted
    outliers). The dotted line is the height of one eigenvalue's bump, ``1 / (n sigma sqrt(2 pi))``."""
    fig = Figure(figsize=(5.4 * len(spectra), 4.2), layout="constrained")
    axes = fig.subplots(1, len(spectra), squeeze=False)[0]
    for ax, (label, records) in zip(axes, spectra.items()):
        high = max(r["hessian"]["eigenvalues"][0] for r in records)
        low = min(min(min(n) for n in r["density"]["nodes"]) for r in records)
        sigma = (high - low) / 200
        grid = torch.linspace(low - 5 * sigma, high * 1.05, 800, dtype=torch.float64)
        one = 1.0 / (records[0]["density"]["dim"] * sigma * math.sqrt(2 * math.pi))
        peak = 0.0
        for i, record in reversed(list(enumerate(records))):
            pdf = to_density(record["density"]).pdf(grid, sigma).numpy()
            peak = max(peak, float(pdf.max()))
            ax.plot(grid.numpy(), pdf, lw=1.3 if i == 0 else 0.8, color="k" if i == 0 else "0.7",
                    label="seed 0" if i == 0 else ("other seeds" if i == 1 else None))
            top = np.asarray(record["hessian"]["eigenvalues"])
            count = outlier_count(top)
            row = one * 0.3 / 2.2 ** i
            ax.plot(top[:count], np.full(count, row), "|", color=f"C{i}", ms=10, mew=2)
            ax.plot(top[count:], np.full(top.size - count, row), "|", color=f"C{i}", ms=6, alpha=0.35)
        ax.axhline(one, color="k", lw=0.8, ls=":", label="height of one eigenvalue")
        ax.set_yscale("log")
        ax.set_ylim(one * 0.3 / 2.2 ** len(records), peak * 3)
        ax.set_xlabel("Hessian eigenvalue (loss / parameter²)")
        ax.set_ylabel(f"spectral density (SLQ, Gaussian σ = {sigma:.2g})")
        ax.set_title(label, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    k = len(next(iter(spectra.values()))[0]["hessian"]["eigenvalues"])
    fig.suptitle(f"Hessian spectral density at the end of training; ticks: each seed's top {k} eigenvalues (bold: "
                 f"above the largest log-gap)", fontsize="medium")
    return fig


def plot_eigenvalues(spectra: dict[str, list[dict[str, Any]]]) -> Figure:
    """One panel per network: each seed's sorted top Hessian eigenvalues (solid) and GGN eigenvalues (dashed)
    on a log axis, the largest log-gap of each seed marked by a vertical tick, C and C - 1 by grey lines."""
    fig = Figure(figsize=(5.2 * len(spectra), 4.0), layout="constrained")
    axes = fig.subplots(1, len(spectra), squeeze=False, sharey=True)[0]
    for ax, (label, records) in zip(axes, spectra.items()):
        for i, record in enumerate(records):
            top = np.asarray(record["hessian"]["eigenvalues"])
            index = np.arange(1, top.size + 1)
            ax.errorbar(index, top, yerr=record["hessian"]["residuals"], fmt="-o", ms=3, lw=1.0, color=f"C{i}",
                        label=f"seed {i}: {outlier_count(top)} above the largest gap")
            ax.plot(index, record["ggn"]["eigenvalues"], "--", lw=0.8, color=f"C{i}")
            count = outlier_count(top)
            ax.plot([count + 0.5] * 2, [top[count], top[count - 1]], color=f"C{i}", lw=3, alpha=0.6)
        for c, style in ((CLASSES, "-"), (CLASSES - 1, ":")):
            ax.axvline(c + 0.5, color="0.4", lw=0.8, ls=style)
        ax.set_yscale("log")
        ax.set_xlabel("eigenvalue index i (grey lines: after C - 1 = 9 and C = 10)")
        ax.set_ylabel("λ_i (solid: Hessian, dashed: GGN)")
        ax.set_title(label, fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def report(setting: Setting, summaries: dict[str, dict[str, Any]], seconds: float, computed: float) -> str:
    """The markdown report: set-up, per-network table, reading, and the papers' claims. ``seconds``: this
    invocation's wall time; ``computed``: the wall time the runs took when they were trained and measured."""
    seeds = len(setting.seeds)
    lines = [
        "# Hessian outliers with and without BatchNorm on MNIST-1D", "",
        f"Networks: {', '.join(f'{n.label} (`{n.model}` {n.kwargs})' for n in setting.networks)}. MNIST-1D "
        f"(C = {CLASSES} classes, 4000 train / 1000 test), SGD lr {setting.lr} (constant), momentum 0.9, weight "
        f"decay {setting.weight_decay}, batch 100, {setting.steps} steps; {seeds} seeds. Curvature of the mean "
        f"cross-entropy on {setting.samples} training samples at the last step (BatchNorm with its running "
        f"statistics): top {setting.top_k} eigenvalues of the Hessian and of the GGN by Lanczos (residual "
        f"tolerance {setting.eig_tol} λ_max), SLQ density with {setting.density_runs} runs of "
        f"{setting.density_steps} steps. Numbers are mean ± standard error over seeds. Produced by "
        f"`python analyses/hessian_outliers.py`: training and measuring took {computed / 60:.1f} minutes of wall "
        f"time on one CPU thread (this invocation: {seconds / 60:.1f} minutes; it reuses earlier measurements).", "",
        "Outlier rule: the number of eigenvalues above the largest gap in log λ among the top "
        f"{setting.top_k}. Relative gap at c: log(λ_c/λ_(c+1)) over the median log-gap of the top {setting.top_k} "
        "(about 1 inside the bulk).", "",
        "![density](hessian_outliers_density.png)", "", "![eigenvalues](hessian_outliers_eigenvalues.png)", "",
        "| network | outliers (Hessian) | outliers (GGN) | gap at C−1 | gap at C | largest gap | λ_1/λ_k | "
        "top-C share of tr H | GGN/Hessian, top C | λ_max | train loss | test accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, s in summaries.items():
        cells = [_pm(s, key) for key in ("count", "ggn_count", "gap_at_C_minus_1", "gap_at_C", "largest_gap",
                                         "ratio_top_to_kth")]
        cells.append(_pm(s, "top_C_trace_share", scale=100, unit="%"))
        cells += [_pm(s, key) for key in ("ggn_over_hessian_top_C", "lambda_max", "train_loss")]
        cells.append(_pm(s, "test_accuracy", scale=100, unit="%"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    residual = max(max(s["per_seed"]["max_relative_residual"]) for s in summaries.values())
    converged = all(s["converged"] for s in summaries.values())
    lines += ["", f"{'Every' if converged else 'NOT every'} eigen solve converged; the largest residual "
              f"||H v − λ v|| relative to λ_max is {residual:.1g}. tr H is the SLQ estimate.", "",
              *findings(summaries), "", CLAIMS]
    return "\n".join(lines)


def findings(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences read off the summaries: does the count match C, is there a gap at C or C - 1, what BN does."""
    out = []
    for label, s in summaries.items():
        counts = s["per_seed"]["count"]
        near = sum(c in (CLASSES - 1, CLASSES) for c in counts)
        verdict = "reproduces" if near == len(counts) else "does not reproduce"
        out.append(f"* {label}: the largest-gap rule finds {counts} outliers over the seeds ({near} of "
                   f"{len(counts)} seeds at C - 1 or C: the claim of about C outliers {verdict} here); the gap "
                   f"after eigenvalue C - 1 is {_pm(s, 'gap_at_C_minus_1')} and after C {_pm(s, 'gap_at_C')} median "
                   f"gaps, the largest gap {_pm(s, 'largest_gap')} median gaps. The top C eigenvalues hold "
                   f"{_pm(s, 'top_C_trace_share', scale=100, unit='%')} of tr H. The GGN's top C eigenvalues are "
                   f"{_pm(s, 'ggn_over_hessian_top_C')} times the Hessian's and its count is "
                   f"{s['per_seed']['ggn_count']}.")
    (plain, plain_summary), *others = summaries.items()
    for label, s in others:
        out.append(f"* BatchNorm ({label} against {plain}): outlier count {_pm(s, 'count')} against "
                   f"{_pm(plain_summary, 'count')}; λ_1/λ_k "
                   f"{_pm(s, 'ratio_top_to_kth')} against {_pm(plain_summary, 'ratio_top_to_kth')}; top-C share of "
                   f"tr H {_pm(s, 'top_C_trace_share', scale=100, unit='%')} against "
                   f"{_pm(plain_summary, 'top_C_trace_share', scale=100, unit='%')}; λ_max {_pm(s, 'lambda_max')} "
                   f"against {_pm(plain_summary, 'lambda_max')}. " + batchnorm_verdict(plain_summary, s))
    return out


def batchnorm_verdict(plain: dict[str, Any], batchnorm: dict[str, Any]) -> str:
    """Whether BatchNorm suppressed the outliers: the change of the top-C share of tr H, and whether a separated
    top group remains (largest log-gap above 3 median gaps)."""
    factor = batchnorm["mean"]["top_C_trace_share"] / plain["mean"]["top_C_trace_share"]
    change = (f"BatchNorm {'lowers' if factor < 1 else 'raises'} the top C eigenvalues' share of tr H to "
              f"{factor:.2f} times its value without")
    if batchnorm["mean"]["largest_gap"] > 3:
        return (f"{change}, but a separated top group remains (largest gap {_pm(batchnorm, 'largest_gap')} median "
                f"gaps): not the suppression of the outliers Ghorbani et al. report.")
    return f"{change}, and no separated top group remains: the suppression Ghorbani et al. report."


def _pm(summary: dict[str, Any], key: str, scale: float = 1.0, unit: str = "") -> str:
    mean, err = scale * summary["mean"][key], scale * summary["stderr"][key]
    return f"{mean:.3g}{unit}" + ("" if math.isnan(err) else f" ± {err:.2g}{unit}")


def main() -> None:
    run = invocation("hessian_outliers", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    spectra: dict[str, list[dict[str, Any]]] = {}
    for network in setting.networks:
        spectra[network.label] = [measure(setting, network, seed, out) for seed in setting.seeds]
        progress.done(network.label)
    summaries = {label: summarise(records) for label, records in spectra.items()}
    seconds = progress.seconds
    save_figure(plot_densities(spectra), figures / "hessian_outliers_density.png")
    save_figure(plot_eigenvalues(spectra), figures / "hessian_outliers_eigenvalues.png")
    computed = sum(r["seconds"] for records in spectra.values() for r in records)
    text = report(setting, summaries, seconds, computed)
    atomic_write_bytes(figures / "hessian_outliers.md", text.encode())
    atomic_write_json(figures / "hessian_outliers.json", {
        "setting": asdict(setting), "classes": CLASSES, "summaries": summaries, "seconds": seconds,
        "computed_seconds": computed,
        "spectra": {label: [{k: r[k] for k in ("hessian", "ggn", "train", "test", "seconds")} for r in records]
                    for label, records in spectra.items()}})
    print(text)


if __name__ == "__main__":
    main()
