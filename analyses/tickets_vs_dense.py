"""Lottery tickets versus the dense network on MNIST-1D: accuracy against sparsity, and curvature.

For each of three seeds (``init_seed = data_order_seed = seed``), LeNet-300-100 on MNIST-1D:

* IMP with late rewinding to step k (Frankle et al. 2019, 2020), with its controls every round: random
  reinitialisation and random pruning (both trained over the same steps k … T) and the untrained
  supermask (Zhou et al. 2019);
* IMP rewinding to step 0 (Frankle & Carbin 2019), no controls;

then, for seed 0's late-rewinding tickets and random-pruning controls, the ticket-versus-dense comparison of
:mod:`landscape.analysis.compare` (restricted Hessian spectra, barrier to the dense minimum, instability).

Writes ``figures/tickets_vs_dense_accuracy.png``, ``..._spectra.png``, ``..._curvature.png``,
``figures/tickets_vs_dense.md`` (our numbers next to the papers' claims) and ``figures/tickets_vs_dense.json``.
Everything is resumable: the runs live under ``--out`` and re-running skips what is done.

    python analyses/tickets_vs_dense.py            # full: about 17 minutes on 2 shared CPU cores
    python analyses/tickets_vs_dense.py --quick    # smoke test: ~20 s of CPU, writes under --out only
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from landscape.analysis.compare import CURVATURE_MEASURES, CompareSettings, compare
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json
from landscape.linalg.uncertainty import format_estimate
from landscape.plots.pruning import plot_accuracy_vs_density
from landscape.plots.surface import save_figure
from landscape.pruning import IMPResult, PruningHparams, iterative_magnitude_pruning, round_dir
from landscape.training import Hparams
from reproduction import Progress, invocation, mean_sd


@dataclass(frozen=True)
class Setting:
    """The experiment's size: model, training length, rounds, rewind step, seeds, curvature budget."""
    model: str
    model_kwargs: dict
    steps: int
    lr: float
    rounds: int
    rewind: int
    seeds: tuple[int, ...]
    compare_rounds: tuple[int, ...]
    compare: CompareSettings


FULL = Setting(model="lenet300", model_kwargs={}, steps=600, lr=0.1, rounds=15, rewind=40, seeds=(0, 1, 2),
               compare_rounds=(2, 4, 6, 8, 10, 12, 14),
               compare=CompareSettings(samples=500, eigenvalues=3, max_matvecs=300, trace_matvecs=60, density_steps=40,
                                       density_runs=3, points=11, instability_replicates=1))
QUICK = Setting(model="mlp", model_kwargs={"widths": [24]}, steps=40, lr=0.1, rounds=2, rewind=10, seeds=(0, 1),
                compare_rounds=(2,),
                compare=CompareSettings(samples=100, eigenvalues=1, max_matvecs=60, trace_matvecs=12, density_steps=10,
                                        density_runs=2, points=3, instability_replicates=1))
METHODS = ("IMP, late rewinding", "IMP, rewind to 0", "random reinit", "random pruning", "supermask (untrained)")
CLAIMS = """\
## What the papers found (their settings, not ours)

* Frankle & Carbin (2019), LeNet-300-100 on MNIST, rewinding to 0: winning tickets reach at least the dense
  network's test accuracy down to a few percent of the weights (they report matching or better accuracy
  from 100% down to about 3.6% of the weights, and faster learning in between); randomly reinitialised
  tickets lose accuracy much earlier, and random pruning is worse still.
* Frankle et al. (2019, 2020): rewinding to an early step k instead of 0 is what makes IMP work on deeper
  networks; small networks such as LeNet are stable to SGD noise from initialisation, so rewinding to 0
  already suffices there, and matching tickets are the stable ones (near-zero instability).
* Zhou et al. (2019): the mask alone carries much of the ticket: the untrained supermask (mask of the
  trained network on the initial weights) is far above chance on MNIST, and keeping the initial signs
  matters more than the magnitudes.
"""


def hparams(setting: Setting, seed: int) -> Hparams:
    """Every run's training hyperparameters (MNIST-1D, SGD with momentum 0.9, weight decay 5e-4, batch 100)."""
    return Hparams(model=setting.model, model_kwargs=setting.model_kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, batch_size=100, init_seed=seed, data_order_seed=seed, eval_every=0,
                   checkpoint_every=0)


def run_seed(setting: Setting, seed: int, out: Path) -> dict[str, IMPResult]:
    """The two IMP experiments of one seed."""
    late = iterative_magnitude_pruning(
        hparams(setting, seed), PruningHparams(rounds=setting.rounds, rewind=f"{setting.rewind}it",
                                               controls=("reinit", "random", "supermask")),
        out / f"seed{seed}" / "late", progress=False)
    zero = iterative_magnitude_pruning(hparams(setting, seed), PruningHparams(rounds=setting.rounds, rewind="0it"),
                                       out / f"seed{seed}" / "rewind0", progress=False)
    return {"late": late, "zero": zero}


def accuracy_curves(results: list[dict[str, IMPResult]]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Densities ``(R,)`` of the pruned rounds, ``{method: (seeds, R)}`` test accuracies, dense ``(seeds,)``."""
    late = [r["late"] for r in results]
    densities = np.array([t.density for t in late[0].tickets])
    curves = {
        METHODS[0]: np.array([[t.test.accuracy for t in imp.tickets] for imp in late]),
        METHODS[1]: np.array([[t.test.accuracy for t in r["zero"].tickets] for r in results]),
        METHODS[2]: np.array([[t.controls["reinit"].test.accuracy for t in imp.tickets] for imp in late]),
        METHODS[3]: np.array([[t.controls["random"].test.accuracy for t in imp.tickets] for imp in late]),
        METHODS[4]: np.array([[t.controls["supermask"].test.accuracy for t in imp.tickets] for imp in late]),
    }
    return densities, curves, np.array([imp.dense.test.accuracy for imp in late])


def matching_down_to(densities: np.ndarray, accuracies: np.ndarray, dense: np.ndarray,
                     tolerance: float | None = None) -> float | None:
    """The smallest density down to which the mean accuracy stays at least the dense mean minus ``tolerance`` at
    every round; ``None`` if it already fails at round 1. The default tolerance is one standard deviation of the
    dense accuracy over seeds, at least 0.5 percentage points."""
    if tolerance is None:
        tolerance = max(float(dense.std(ddof=1)) if dense.size > 1 else 0.0, 0.005)
    reached = None
    for d, a in zip(densities, accuracies.mean(axis=0)):
        if a < dense.mean() - tolerance:
            break
        reached = float(d)
    return reached


def report(setting: Setting, densities: np.ndarray, curves: dict[str, np.ndarray], dense: np.ndarray,
           dense_train: np.ndarray, comparison_md: str, rows: list[dict], seconds: float) -> str:
    """The markdown report: set-up, accuracy table, where each method stops matching, curvature, claims."""
    seeds = len(setting.seeds)
    lines = [
        "# Lottery tickets versus dense on MNIST-1D", "",
        f"{setting.model} on MNIST-1D (4000 train / 1000 test), SGD lr {setting.lr}, momentum 0.9, weight decay "
        f"5e-4, batch 100, {setting.steps} steps; global magnitude pruning of 20% of the remaining weights per round "
        f"for {setting.rounds} rounds; late rewinding to step {setting.rewind}; {seeds} seeds "
        f"(initialisation and data order). Test accuracy at the end of training, mean ± sample standard deviation "
        f"over seeds. Produced by `analyses/tickets_vs_dense.py` (this invocation: {seconds / 60:.1f} minutes; runs "
        f"finished by earlier invocations are reused).", "",
        f"Caveat: the dense network overfits (train accuracy {100 * dense_train.mean():.1f}% against test "
        f"{100 * dense.mean():.1f}%), so removing weights can raise the test accuracy, and the dense accuracy "
        f"varies by ± {100 * dense.std(ddof=1):.1f} points over seeds, which makes 'matching' a loose criterion.", "",
        "![accuracy](tickets_vs_dense_accuracy.png)", "",
        "| weights left | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves),
        f"| 100% (dense) | {mean_sd(100 * dense, 2)} |" + " |" * (len(curves) - 1),
    ]
    for i, d in enumerate(densities):
        lines.append(f"| {100 * d:.1f}% | " + " | ".join(mean_sd(100 * a[:, i], 2) for a in curves.values()) + " |")
    lines += ["", "Matching (mean within one standard deviation of the dense mean, at least 0.5 points) down to:", ""]
    for method, acc in curves.items():
        reached = matching_down_to(densities, acc, dense)
        lines.append(f"* {method}: " + ("not even at the first round" if reached is None else f"{100 * reached:.1f}% "
                                        "of the weights"))
    lines += ["", *findings(densities, curves, dense), "",
              "## Curvature: tickets versus dense (seed 0, late rewinding)", "",
              "Hessian of the training loss restricted to the surviving weights; barriers and instability in "
              "percentage points of test error; tr(F)/n is the empirical Fisher trace per surviving weight. The saddle "
              f"index is the fraction of eigenvalues below -{setting.compare.saddle_tol:g} |λ|max "
              "(deflated SLQ, ± its total error: 95% sampling error plus the quadrature bound; see the README, "
              "“What converged, tol and ± mean”).", "",
              "![spectra](tickets_vs_dense_spectra.png)", "", "![curvature](tickets_vs_dense_curvature.png)", "",
              comparison_md, _curvature_summary(rows), "", CLAIMS]
    return "\n".join(lines)


def findings(densities: np.ndarray, curves: dict[str, np.ndarray], dense: np.ndarray) -> list[str]:
    """Sentences read off the accuracy table: how far each method keeps the dense accuracy, and by how much the
    ticket leads the controls at the sparsest round."""
    mean = {m: a.mean(axis=0) for m, a in curves.items()}
    ticket, zero, reinit, random, supermask = (mean[m] for m in METHODS)
    at_least = matching_down_to(densities, curves[METHODS[0]], dense, tolerance=0.0)
    best = int(np.argmax(ticket))
    out = [f"Reading: the late-rewinding tickets' mean stays at or above the dense mean "
           f"({100 * dense.mean():.2f}%) at every round down to {100 * at_least:.1f}% of the weights"
           if at_least is not None else "Reading: the late-rewinding tickets' mean is below the dense mean already "
                                        "at the first round",
           f"; their best is {100 * ticket[best]:.2f}% at {100 * densities[best]:.1f}%, and at the sparsest round "
           f"({100 * densities[-1]:.1f}%) they reach {100 * ticket[-1]:.2f}%, {100 * (ticket[best] - ticket[-1]):.1f} "
           f"points below their best. There the ticket leads random reinitialisation by "
           f"{100 * (ticket[-1] - reinit[-1]):.1f} points and random pruning by {100 * (ticket[-1] - random[-1]):.1f}. "
           f"Rewinding to 0 and to step k differ by at most {100 * np.abs(ticket - zero).max():.1f} points (means) at "
           f"any density. The untrained supermask peaks at {100 * supermask.max():.1f}% (chance is 10%)."]
    return ["".join(out)]


def _curvature_summary(rows: list[dict]) -> str:
    dense = next(r for r in rows if r["kind"] == "dense")
    tickets = [r for r in rows if r["kind"] == "ticket"]
    if not tickets:
        return ""
    parts = [f"Dense: λ_max {dense['lambda_max']:.3g}, tr(H)/n {dense['trace_per_weight']:.3g}, saddle index "
             f"{_saddle(dense)}, tr(F)/n {dense['fisher_trace_per_weight']:.3g}, instability "
             f"{_pp(dense['instability'])}."]
    for r in tickets:
        parts.append(f"Ticket at {100 * r['density']:.1f}%: λ_max {r['lambda_max']:.3g} "
                     f"({r['lambda_max'] / dense['lambda_max']:.2f}x dense), tr(H)/n {r['trace_per_weight']:.3g} "
                     f"({r['trace_per_weight'] / dense['trace_per_weight']:.2f}x), saddle index "
                     f"{_saddle(r)}, tr(F)/n {r['fisher_trace_per_weight']:.3g} "
                     f"({r['fisher_trace_per_weight'] / dense['fisher_trace_per_weight']:.2f}x), barrier to dense "
                     f"{_pp(r['barrier_to_dense'])}, instability {_pp(r['instability'])}.")
    return "\n".join(["", *parts])


def _saddle(row: dict) -> str:
    """The row's saddle index ± its total error, marked when unreliable (the reason is in comparison.md)."""
    return format_estimate(row["saddle_index"], row["saddle_index_error"], row["saddle_index_reliable"], reason=None)


def _pp(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} points"


def main() -> None:
    run = invocation("tickets_vs_dense", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    results = progress.each(setting.seeds, lambda seed: run_seed(setting, seed, out))
    densities, curves, dense = accuracy_curves(results)
    imp0 = results[0]["late"]
    comparison = compare(round_dir(imp0.path, 0), imp0.path, out / "compare", settings=setting.compare,
                         rounds=setting.compare_rounds, progress=False)
    rows = [r for r in comparison.rows if r["kind"] in ("dense", "ticket", "random")]
    seconds = progress.seconds
    save_figure(plot_accuracy_vs_density({m: (densities, a) for m, a in curves.items()}, dense=dense,
                                         title=f"{setting.model} on MNIST-1D: IMP versus controls"),
                figures / "tickets_vs_dense_accuracy.png")
    drawn = comparison.figures()
    save_figure(drawn["spectral_density"], figures / "tickets_vs_dense_spectra.png")
    save_figure(drawn["curvature_vs_density"], figures / "tickets_vs_dense_curvature.png")
    dense_train = np.array([r["late"].dense.train.accuracy for r in results])
    text = report(setting, densities, curves, dense, dense_train, comparison.markdown(), rows, seconds)
    atomic_write_bytes(figures / "tickets_vs_dense.md", text.encode())
    atomic_write_json(figures / "tickets_vs_dense.json", {
        "setting": {**asdict(setting), "compare": asdict(setting.compare)}, "densities": densities.tolist(),
        "dense_accuracy": dense.tolist(), "accuracy": {m: a.tolist() for m, a in curves.items()},
        "curvature_rows": list(comparison.rows), "curvature_measures": list(CURVATURE_MEASURES), "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
