"""Pruning at initialisation against IMP on MNIST-1D: accuracy against sparsity, the sanity checks, curvature.

For each seed (``init_seed = data_order_seed = seed``), the 1-D CNN on MNIST-1D:

* IMP with late rewinding (20% of the remaining weights per round, global magnitude, rewind to step k);
* at each of several of IMP's densities, one-shot pruning of the initialisation by SNIP, GraSP, SynFlow,
  magnitude at init and random (global allocation, the methods' papers'; :mod:`landscape.pruning.at_init`),
  the pruned network trained with IMP's schedule, and Frankle et al. (2021)'s sanity checks: the same mask
  shuffled within each layer, and the same mask on a fresh initialisation (:func:`landscape.pruning.one_shot`);
* at one density, the curvature of every method's trained network: the Hessian of the training loss
  restricted to the surviving weights (:func:`landscape.analysis.curvature.measure_curvature`: top
  eigenvalues, trace with its standard error, SLQ spectral density).

Writes ``figures/pruning_at_init_accuracy.png``, ``figures/pruning_at_init_curvature.png``,
``figures/pruning_at_init.md`` (our numbers next to the paper's) and ``figures/pruning_at_init.json``.
Resumable: the runs live under ``--out`` (run directories resume) and curvature rows are cached there.

    python analyses/pruning_at_init.py            # full: about 14 CPU-minutes on one thread
    python analyses/pruning_at_init.py --quick    # smoke test: seconds, writes under --out only
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import NullFormatter

from landscape.analysis.curvature import CurvatureSettings, curvature_batches, measure_curvature
from landscape.connectivity.interpolation import load_run_checkpoint
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, cached_json
from landscape.linalg import SpectralDensity
from landscape.plots.style import (DENSITY_BAND, LEGEND_SIZE, bounded_errors, density_grid, draw_density,
                                   error_caption, new_figure, plain_ticks)
from landscape.plots.surface import save_figure
from landscape.pruning import AT_INIT_METHODS, PruningHparams, iterative_magnitude_pruning
from landscape.pruning.one_shot import one_shot
from landscape.training import Hparams
from reproduction import Progress, invocation, mean_sd, paired_difference


@dataclass(frozen=True)
class Setting:
    """The experiment's size: model, training, seeds, the IMP rounds whose densities are compared, the rewind
    step, the round whose density the curvature is measured at, and the curvature budget."""
    model: str
    model_kwargs: dict
    steps: int
    lr: float
    seeds: tuple[int, ...]
    rounds: tuple[int, ...]
    rewind: int
    curvature_round: int
    curvature: CurvatureSettings


FULL = Setting(model="cnn1d", model_kwargs={}, steps=800, lr=0.1, seeds=(0, 1, 2), rounds=(3, 10, 14), rewind=40,
               curvature_round=10,
               curvature=CurvatureSettings(samples=500, eigenvalues=3, max_matvecs=300, trace_matvecs=60,
                                           density_steps=40, density_runs=3))
QUICK = Setting(model="mlp", model_kwargs={"widths": [24]}, steps=40, lr=0.1, seeds=(0, 1), rounds=(1, 2), rewind=10,
                curvature_round=2,
                curvature=CurvatureSettings(samples=100, eigenvalues=1, max_matvecs=60, trace_matvecs=12,
                                            density_steps=10, density_runs=2))
IMP = "IMP, rewinding"
METHODS = (*AT_INIT_METHODS, IMP)
CHECKS = ("shuffle", "reinit")
CHANCE_LEVEL = 0.1
CHECK_LABELS = {"shuffle": "mask shuffled in each layer", "reinit": "mask on fresh weights"}
COLORS = {m: f"C{i}" for i, m in enumerate(METHODS)}
CLAIMS = """\
## What the papers found (their settings: VGG, ResNets on CIFAR-10, Tiny ImageNet, ImageNet)

* Frankle, Dziugaite, Roy & Carbin (2021), "Pruning neural networks at initialization: why are we missing the
  mark?": SNIP, GraSP, SynFlow and magnitude at init all beat random pruning, but all stay below IMP with
  rewinding (magnitude pruning after training) at the same sparsity; and shuffling each layer's mask, or
  re-initialising the weights under it, leaves their accuracy the same or higher: the methods choose per-layer
  densities, not individual weights.
* Tanaka et al. (2020): SynFlow avoids layer collapse (a layer pruned away entirely) at extreme sparsity,
  where single-shot magnitude- and gradient-based scores collapse.
"""


def hparams(setting: Setting, seed: int) -> Hparams:
    """Every network's training (MNIST-1D, SGD momentum 0.9, weight decay 5e-4, batch 100, constant lr)."""
    return Hparams(model=setting.model, model_kwargs=setting.model_kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, batch_size=100, init_seed=seed, data_order_seed=seed, eval_every=0,
                   checkpoint_every=0)


def run_seed(setting: Setting, seed: int, out: Path) -> dict:
    """IMP, then every at-init method with its sanity checks at IMP's densities; ``{"dense": acc, "densities":
    [...], "accuracy": {method: [...]}, "shuffle"/"reinit": {method: [...]}, "run_dirs": {method: dir at the
    curvature round}}``."""
    hp = hparams(setting, seed)
    imp = iterative_magnitude_pruning(hp, PruningHparams(rounds=max(setting.rounds), rewind=f"{setting.rewind}it"),
                                      out / f"seed{seed}" / "imp", progress=False)
    rounds = [imp.rounds[n] for n in setting.rounds]
    result = {"dense": imp.dense.test.accuracy, "densities": [r.density for r in rounds],
              "accuracy": {IMP: [r.test.accuracy for r in rounds]}, "shuffle": {}, "reinit": {},
              "run_dirs": {IMP: str(imp.rounds[setting.curvature_round].run_dir)}}
    for method in AT_INIT_METHODS:
        per_check: dict[str, list[float]] = {"pruned": [], **{c: [] for c in CHECKS}}
        for n, r in zip(setting.rounds, rounds):
            outcomes = one_shot(hp, method, 1.0 - r.density, out / f"seed{seed}" / method / f"round{n:02d}",
                                sanity=CHECKS, seed=seed, progress=False)
            for o in outcomes:
                per_check[o.name].append(o.test.accuracy)
            if n == setting.curvature_round:
                result["run_dirs"][method] = str(outcomes[0].run_dir)
        result["accuracy"][method] = per_check["pruned"]
        for check in CHECKS:
            result[check][method] = per_check[check]
    return result


def measure(run_dir: str, settings: CurvatureSettings, cache: Path) -> dict:
    """The restricted-Hessian curvature of a trained (masked) network, cached: ``CURVATURE_KEYS`` plus the SLQ
    nodes and weights."""
    def compute() -> dict:
        net = load_run_checkpoint(run_dir)
        profile, spectrum = measure_curvature(net.model.eval(), net.loss_fn,
                                              curvature_batches(net.data["train"], settings.samples), net.masks,
                                              settings)
        return {**profile, "slq_nodes": spectrum.nodes.tolist(), "slq_weights": spectrum.weights.tolist(),
                "slq_matvecs": spectrum.matvecs}
    return cached_json(cache, compute)


def verdicts(curves: dict[str, np.ndarray], checks: dict[str, dict[str, np.ndarray]]) -> dict[str, list[dict]]:
    """The paper's three comparisons, per method and density: method − random, method − IMP, check − method."""
    methods = [m for m in AT_INIT_METHODS if m != "random"]
    out: dict[str, list[dict]] = {"beats_random": [], "below_imp": [], "shuffle": [], "reinit": []}
    for m in methods:
        for i in range(curves[m].shape[1]):
            out["beats_random"].append({"method": m, "index": i, **paired_difference(curves[m][:, i],
                                                                                     curves["random"][:, i])})
            out["below_imp"].append({"method": m, "index": i, **paired_difference(curves[m][:, i], curves[IMP][:, i])})
    for check in CHECKS:
        for m in AT_INIT_METHODS:
            for i in range(curves[m].shape[1]):
                out[check].append({"method": m, "index": i, **paired_difference(checks[check][m][:, i],
                                                                                 curves[m][:, i])})
    return out


def count(rows: list[dict], sign: int, alpha: float = 0.05) -> int:
    """How many comparisons are significant (paired t-test, ``p < alpha``) with the difference's sign ``sign``."""
    return sum(1 for r in rows if np.isfinite(r["p"]) and r["p"] < alpha and np.sign(r["mean"]) == sign)


def report(setting: Setting, densities: np.ndarray, dense: np.ndarray, curves: dict[str, np.ndarray],
           checks: dict[str, dict[str, np.ndarray]], tests: dict[str, list[dict]], curvature: dict[str, list[dict]],
           seconds: float) -> str:
    """The markdown report: set-up, accuracy and sanity-check tables, verdicts, curvature, the paper's claims."""
    seeds = len(setting.seeds)
    lines = [
        "# Pruning at initialisation against IMP on MNIST-1D", "",
        f"{setting.model} on MNIST-1D (4000 train / 1000 test), SGD lr {setting.lr}, momentum 0.9, weight decay 5e-4, "
        f"batch 100, {setting.steps} steps for every network. IMP: global magnitude pruning of 20% of the remaining "
        f"weights per round, rewinding to step {setting.rewind}. At-init methods prune the initialisation once to "
        f"IMP's densities (global ranking; SynFlow 100 iterations; SNIP and GraSP score one batch of 100). "
        f"{seeds} seeds (initialisation, data order, random scores). Test accuracy, mean ± sample s.d. over seeds. "
        f"Produced by `analyses/pruning_at_init.py` (this invocation: {seconds / 60:.1f} wall minutes, "
        f"{time.process_time() / 60:.1f} CPU minutes on one thread; runs finished by earlier invocations are reused; "
        "the full run's time is in analyses/README.md).", "",
        "![accuracy](pruning_at_init_accuracy.png)", "",
        "| weights left | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS),
        f"| 100% (dense) | {mean_sd(100 * dense, 1)} |" + " |" * (len(METHODS) - 1)]
    for i, d in enumerate(densities):
        lines.append(f"| {100 * d:.1f}% | " + " | ".join(mean_sd(100 * curves[m][:, i], 1) for m in METHODS) + " |")
    lines += ["", "Sanity checks: accuracy of the shuffled / re-initialised mask minus the method's own (points, "
                  "mean ± s.e. of the per-seed difference; * paired t-test p < 0.05):", "",
              "| weights left | " + " | ".join(AT_INIT_METHODS) + " |", "|---|" + "---|" * len(AT_INIT_METHODS)]
    for check in CHECKS:
        for i, d in enumerate(densities):
            cells = [next(r for r in tests[check] if r["method"] == m and r["index"] == i) for m in AT_INIT_METHODS]
            lines.append(f"| {check} {100 * d:.1f}% | " + " | ".join(_points(c) for c in cells) + " |")
    lines += ["", *reading(densities, curves, tests, seeds), "", *curvature_section(setting, curvature), "", CLAIMS]
    return "\n".join(lines)


def reading(densities: np.ndarray, curves: dict[str, np.ndarray], tests: dict[str, list[dict]],
            seeds: int) -> list[str]:
    """The verdict, claim by claim, from the paired tests."""
    cells = len(tests["beats_random"])
    sparsest = {m: curves[m][:, -1].mean() for m in METHODS}
    best = max(AT_INIT_METHODS, key=lambda m: sparsest[m])
    collapsed = [f"{m} at {100 * densities[i]:.1f}%" for m in AT_INIT_METHODS for i in range(len(densities))
                 if curves[m][:, i].max() <= CHANCE_LEVEL + 0.01]
    lines = [
        "## Verdict", "",
        f"Statistics: per-seed paired differences over {seeds} seeds, two-sided paired t-test at p < 0.05 (with "
        f"{seeds} seeds only large, consistent differences reach it; 'not significant' is not 'equal').", "",
        f"* **At-init methods beat random pruning**: {_tally(tests['beats_random'], densities, 'better', 'worse')}. "
        f"{_verdict(count(tests['beats_random'], +1), count(tests['beats_random'], -1), cells)}",
        f"* **They stay below IMP with rewinding**: {_tally(tests['below_imp'], densities, 'below', 'above', -1)}. "
        f"At the sparsest density ({100 * densities[-1]:.1f}%) IMP reaches {100 * sparsest[IMP]:.1f}% and the best "
        f"at-init method, {best}, {100 * sparsest[best]:.1f}%. "
        f"{_verdict(count(tests['below_imp'], -1), count(tests['below_imp'], +1), cells)}",
        *[f"* **{check.capitalize()} does not hurt** (Frankle et al. 2021): "
          f"{_tally(tests[check], densities, 'worse', 'better', -1)}. "
          + ("Consistent with the paper: no significant harm." if count(tests[check], -1) == 0 else
             "**Does not reproduce** there: in this small network the per-weight choice matters.")
          for check in CHECKS]]
    if collapsed:
        lines.append(f"* Collapse (every seed within 1 point of {100 * CHANCE_LEVEL:.0f}% chance): "
                     f"{', '.join(collapsed)}. For magnitude at init this is layer collapse (Tanaka et al.'s failure "
                     "mode): the global ranking of |θ| empties first the layer PyTorch initialises smallest (the "
                     "largest fan-in).")
    return lines


def _tally(rows: list[dict], densities: np.ndarray, agree: str, disagree: str, sign: int = +1) -> str:
    """'significantly better in 6 of 12 cells; worse in 1 (magnitude_init at 10.7%)': counts of significant
    differences of each sign, naming the cells of the minority sign."""
    against = [f"{r['method']} at {100 * densities[r['index']]:.1f}%" for r in rows
               if np.isfinite(r["p"]) and r["p"] < 0.05 and np.sign(r["mean"]) == -sign]
    named = f" ({', '.join(against)})" if against else ""
    return (f"significantly {agree} in {count(rows, sign)} of {len(rows)} (method, density) cells, {disagree} in "
            f"{len(against)}{named}")


def _verdict(agree: int, disagree: int, cells: int) -> str:
    if disagree == 0 and agree >= cells / 2:
        return "Reproduces."
    if disagree == 0:
        return "Partly: right direction where significant, but most cells are not significant."
    return "**Does not reproduce** in the cells named against it; reproduces in the rest where significant."


def curvature_section(setting: Setting, curvature: dict[str, list[dict]]) -> list[str]:
    """The curvature table: λ_max, tr(H)/n ± total error, surviving weights, per method at one density."""
    lines = ["## Curvature at one density", "",
             f"Hessian of the training loss on {setting.curvature.samples} training samples, restricted to the "
             f"surviving weights and biases (principal submatrix), at IMP round {setting.curvature_round}'s "
             "density; nats per parameter². λ_max: certified top eigenvalue (thick-restart Lanczos); tr(H)/n: "
             "Hutchinson trace per surviving weight, mean ± s.d. over seeds (the mean within-seed standard error "
             "in brackets); the figure shows seed 0's SLQ densities.", "",
             "![curvature](pruning_at_init_curvature.png)", "",
             "| method | weights n | λ_max | tr(H)/n | (within-seed s.e.) | λ_min | converged |",
             "|---|---|---|---|---|---|---|"]
    for m, rows in curvature.items():
        top = np.array([r["top_eigenvalues"][0] for r in rows])
        per = np.array([r["trace"] / r["weights"] for r in rows])
        se = np.mean([r["trace_stderr"] / r["weights"] for r in rows])
        low = np.array([r["bottom_eigenvalues"][0] for r in rows])
        lines.append(f"| {m} | {rows[0]['weights']} | {mean_sd(top, 3)} | {mean_sd(per, 4)} | {se:.4f} | "
                     f"{mean_sd(low, 3)} | {sum(r['eigs_converged'] for r in rows)}/{len(rows)} |")
    per_weight = {m: np.array([r["trace"] / r["weights"] for r in rows]) for m, rows in curvature.items()}
    reference = per_weight[IMP]
    lines += ["", "tr(H)/n against IMP's, per seed (paired, mean ± s.e. of the difference; * p < 0.05): "
              + "; ".join(f"{m} {_number(paired_difference(v, reference))}" for m, v in per_weight.items()
                          if m != IMP) + ". A collapsed network (at chance) is flat because it computes a constant, "
              "not because it generalises."]
    return lines


def _number(row: dict) -> str:
    star = "*" if np.isfinite(row["p"]) and row["p"] < 0.05 else ""
    return f"{row['mean']:+.4f} ± {row['se']:.4f}{star}"


def _points(row: dict) -> str:
    star = "*" if np.isfinite(row["p"]) and row["p"] < 0.05 else ""
    se = "" if not np.isfinite(row["se"]) else f" ± {100 * row['se']:.1f}"
    return f"{100 * row['mean']:+.1f}{se}{star}"


def plot_accuracy(densities: np.ndarray, dense: np.ndarray, curves: dict[str, np.ndarray],
                  checks: dict[str, dict[str, np.ndarray]], seeds: int):
    """Three panels: accuracy against density; shuffled minus original; re-initialised minus original."""
    fig = new_figure(15, 4.4)
    axes = fig.subplots(1, 3)
    x = 100 * densities
    ax = axes[0]
    ax.axhline(100 * dense.mean(), color="k", ls="--", lw=1, label=f"dense ({100 * dense.mean():.1f}%)")
    for m in METHODS:
        y = 100 * curves[m]
        ax.errorbar(x, y.mean(0), yerr=y.std(0, ddof=1) if seeds > 1 else None, fmt="-o", ms=3.5, capsize=2,
                    color=COLORS[m], label=m)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"accuracy ({error_caption(seeds)})", fontsize=10)
    for ax, check in zip(axes[1:], CHECKS):
        ax.axhline(0, color="k", lw=0.8)
        for j, m in enumerate(AT_INIT_METHODS):
            diff = 100 * (checks[check][m] - curves[m])
            ax.errorbar(x * (1 + 0.03 * (j - 2)), diff.mean(0), yerr=diff.std(0, ddof=1) / np.sqrt(seeds)
                        if seeds > 1 else None, fmt="-o", ms=3.5, capsize=2, color=COLORS[m], label=m)
        ax.set_ylabel(f"{CHECK_LABELS[check]} − original (points)")
        ax.set_title(f"{CHECK_LABELS[check]} − original ({error_caption(seeds, 's.e.')})", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:.3g}" for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        plain_ticks(ax, "y")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=LEGEND_SIZE)
    return fig


def plot_curvature(curvature: dict[str, list[dict]], density: float, seeds: int):
    """Three panels at one density: λ_max and tr(H)/n per method (mean ± s.d. over seeds), seed 0's SLQ density."""
    fig = new_figure(15, 4.4)
    axes = fig.subplots(1, 3)
    names = list(curvature)
    for ax, (label, value) in zip(axes[:2], (("λ_max", lambda r: r["top_eigenvalues"][0]),
                                             ("tr(H) / n", lambda r: r["trace"] / r["weights"]))):
        values = np.array([[value(r) for r in curvature[m]] for m in names])
        sd = values.std(1, ddof=1) if seeds > 1 else np.zeros(len(names))
        ax.bar(range(len(names)), values.mean(1), yerr=bounded_errors(values.mean(1), sd), capsize=3,
               color=[COLORS[m] for m in names])
        ax.set_xticks(range(len(names)), names, rotation=25, fontsize=8)
        ax.set_ylabel(f"{label} (nats / parameter²)")
        ax.set_title(f"{label} at {100 * density:.1f}% weights ({error_caption(seeds)})", fontsize=10)
        plain_ticks(ax, "y")
    ax = axes[2]
    spectra = {m: SpectralDensity(nodes=torch.tensor(rows[0]["slq_nodes"], dtype=torch.float64),
                                  weights=torch.tensor(rows[0]["slq_weights"], dtype=torch.float64),
                                  dim=rows[0]["weights"], matvecs=rows[0]["slq_matvecs"])
               for m, rows in curvature.items()}
    grid, sigma = density_grid(spectra.values())
    peak = max(draw_density(ax, s, grid, sigma, COLORS[m], m) for m, s in spectra.items())
    ax.set_yscale("log")
    ax.set_ylim(peak * 1e-6, peak * 3)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel(f"SLQ spectral density (σ = {sigma:.2g})")
    ax.set_title(f"SLQ density, seed 0 ({DENSITY_BAND})", fontsize=10)
    plain_ticks(ax, "x")
    ax.legend(fontsize=LEGEND_SIZE)
    for a in axes:
        a.grid(alpha=0.3)
    return fig


def main() -> None:
    run = invocation("pruning_at_init", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    results = progress.each(setting.seeds, lambda seed: run_seed(setting, seed, out))
    densities = np.array(results[0]["densities"])
    dense = np.array([r["dense"] for r in results])
    curves = {m: np.array([r["accuracy"][m] for r in results]) for m in METHODS}
    checks = {c: {m: np.array([r[c][m] for r in results]) for m in AT_INIT_METHODS} for c in CHECKS}
    curvature = {m: [measure(r["run_dirs"][m], setting.curvature, out / "curvature" / f"seed{s}_{m.split(',')[0]}.json")
                     for s, r in zip(setting.seeds, results)] for m in METHODS}
    progress.done("curvature")
    tests = verdicts(curves, checks)
    seconds = progress.seconds
    seeds = len(setting.seeds)
    save_figure(plot_accuracy(densities, dense, curves, checks, seeds), figures / "pruning_at_init_accuracy.png")
    density = results[0]["densities"][setting.rounds.index(setting.curvature_round)]
    save_figure(plot_curvature(curvature, density, seeds), figures / "pruning_at_init_curvature.png")
    text = report(setting, densities, dense, curves, checks, tests, curvature, seconds)
    atomic_write_bytes(figures / "pruning_at_init.md", text.encode())
    atomic_write_json(figures / "pruning_at_init.json", {
        "setting": {**asdict(setting), "curvature": asdict(setting.curvature)}, "densities": densities.tolist(),
        "dense_accuracy": dense.tolist(), "accuracy": {m: a.tolist() for m, a in curves.items()},
        "sanity": {c: {m: a.tolist() for m, a in v.items()} for c, v in checks.items()}, "tests": tests,
        "curvature": {m: [{k: v for k, v in r.items() if not k.startswith("slq_")} for r in rows]
                      for m, rows in curvature.items()}, "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
