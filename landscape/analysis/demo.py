"""``landscape demo``: the README's main command, on the embedded MNIST-1D data only.

1. Train a dense MLP on MNIST-1D (round 0 of the IMP experiment; :func:`landscape.training.train`) with the
   :class:`~landscape.training.tracker.Tracker` measuring the top Hessian eigenvalues, the Hessian trace and the
   empirical Fisher trace at log-spaced steps (records in ``imp/round_00/metrics.jsonl``).
2. Run iterative magnitude pruning with late rewinding (:func:`landscape.pruning.iterative_magnitude_pruning`):
   each round prunes ``fraction`` of the remaining weights by global magnitude, rewinds the survivors to
   their values at step ``rewind`` (not to the initialisation: Frankle et al. 2020) and retrains.
3. Compare ticket and dense (:func:`landscape.analysis.compare.compare`): accuracy, spectra of the restricted Hessian,
   saddle index, Fisher trace and flatness per surviving weight, barrier to the dense minimum, instability to
   SGD noise.
4. Analyse the dense run's checkpoints along training (:func:`landscape.analysis.analyze.analyze`).
5. Write ``report.md`` with the figures inline to ``out`` and print where it is.

Every part resumes: a rerun skips the finished trainings and measurements. ``quick=True`` shrinks everything
(a tiny network, tens of steps, two rounds, small probe budgets) so that tests run it in seconds; its
numbers mean nothing.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from landscape.analysis.analyze import analyze
from landscape.analysis.compare import CompareSettings, Comparison, compare
from landscape.analysis.report import figure_links, render
from landscape.analysis.results import Analysis, AnalyzeSettings
from landscape.data.registry import load_dataset
from landscape.foundation.progress import phase
from landscape.foundation.runs import Run, atomic_write_bytes
from landscape.pruning import PruningHparams, iterative_magnitude_pruning, round_dir
from landscape.training import Hparams, train
from landscape.training.tracker import Tracker, TrackerSettings, log_steps


@dataclass(frozen=True)
class DemoPlan:
    """The hyperparameters and budgets of one demo: the full one or the quick one."""
    hparams: Hparams
    pruning: PruningHparams
    tracker: TrackerSettings
    tracked_samples: int
    compare: CompareSettings
    analyze: AnalyzeSettings


_FULL_CURVATURE = dict(samples=1000, eigenvalues=3, max_matvecs=600, trace_matvecs=99, density_steps=60,
                       density_runs=5)   # the same curvature budget for the comparison and the analysis
_QUICK_CURVATURE = dict(samples=200, eigenvalues=2, max_matvecs=100, trace_matvecs=12, density_steps=12, density_runs=2)
FULL = DemoPlan(
    hparams=Hparams(model="mlp", model_kwargs={"widths": [100, 100]}, data="mnist1d", steps="2000it", lr=0.05,
                    checkpoint_steps=(0, 100, 500, 1000, 2000)),
    pruning=PruningHparams(rounds=3, fraction=0.5, scope="global", rewind="100it"),
    tracker=TrackerSettings(top_k=3, trace_matvecs=30), tracked_samples=512,
    compare=CompareSettings(**_FULL_CURVATURE, points=11, instability_replicates=1, controls=False),
    analyze=AnalyzeSettings(**_FULL_CURVATURE, points=11),
)
QUICK = DemoPlan(
    hparams=Hparams(model="mlp", model_kwargs={"widths": [12]}, data="mnist1d", steps="30it", lr=0.05,
                    checkpoint_steps=(0, 30), eval_every=0, checkpoint_every=0),
    pruning=PruningHparams(rounds=1, fraction=0.5, scope="global", rewind="10it"),
    tracker=TrackerSettings(top_k=1, eig_max_matvecs=60, trace_matvecs=6), tracked_samples=100,
    compare=CompareSettings(**_QUICK_CURVATURE, points=3, instability_replicates=0, controls=False),
    analyze=AnalyzeSettings(**_QUICK_CURVATURE, points=3),
)


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its parts, the parts themselves and how long this call took (seconds)."""
    out: Path
    report: Path
    comparison: Comparison
    analysis: Analysis
    seconds: float


def run_demo(out: str | os.PathLike = "runs/demo", quick: bool = False, *, progress: bool = True,
             device: str | None = None) -> DemoResult:
    """Train, prune, compare and analyse (see the module docstring); write ``out/report.md`` and print its path.

    Layout of ``out``: ``imp/`` (``round_00`` the dense run, ``round_0N`` the tickets), ``imp/compare/``
    (comparison.json, comparison.md, figures/), ``analysis/`` (analysis.json, report.md, figures/) and
    ``report.md``, which shows all the figures.
    """
    began = time.perf_counter()
    plan = QUICK if quick else FULL
    out = Path(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a small MLP gains nothing from intra-op threads, and they thrash on a busy machine
    try:
        _train_dense(plan, out / "imp", device, progress)
        imp = iterative_magnitude_pruning(plan.hparams, plan.pruning, out / "imp", device=device, progress=progress)
        dense_dir = imp.dense.run_dir
        phase("comparing ticket and dense", enabled=progress)
        comparison = compare(dense_dir, imp.path, out / "compare", settings=plan.compare, device=device,
                             progress=progress)
        phase("analysing the dense run along training", enabled=progress)
        analysis = analyze(dense_dir, out_dir=out / "analysis", settings=plan.analyze, device=device,
                           progress=progress)
    finally:
        torch.set_num_threads(threads)
    tracked = _save_tracked_figure(Run(dense_dir), out / "figures" / "tracked.png")
    report = out / "report.md"
    atomic_write_bytes(report, _report(plan, imp.rewind_step, comparison, analysis, tracked, out).encode())
    print(f"demo report: {report}\nfigures:     {out / 'figures'}, {out / 'compare' / 'figures'}, "
          f"{out / 'analysis' / 'figures'}")
    return DemoResult(out=out, report=report, comparison=comparison, analysis=analysis,
                      seconds=time.perf_counter() - began)


def _train_dense(plan: DemoPlan, imp_dir: Path, device: str | None, progress: bool) -> None:
    """Train IMP's round 0 with the tracker on, as IMP itself would train it (the same hyperparameters, with the
    rewind step checkpointed), so that IMP then finds it finished; a finished run is not retrained."""
    hp, dataset = plan.hparams, load_dataset(plan.hparams.data, **plan.hparams.data_kwargs)
    batches_per_epoch = len(dataset.train[1]) // hp.batch_size
    rewind = plan.pruning.rewind_step(batches_per_epoch)
    dense = dataclasses.replace(hp, checkpoint_steps=tuple(sorted({*hp.checkpoint_steps, rewind})))
    total = hp.total_steps(batches_per_epoch)
    tracker = Tracker.for_hparams(hp, samples=plan.tracked_samples, instruments=("top_eigen", "trace", "fisher_trace"),
                                  schedule=log_steps(total, 8), settings=plan.tracker)
    phase("dense training, tracked", enabled=progress)
    train(dense, round_dir(imp_dir, 0), callbacks=[tracker], device=device, progress=progress)


def _save_tracked_figure(run: Run, path: Path) -> Path:
    """Draw the tracker's measurements during dense training to ``path`` (PNG): largest Hessian eigenvalue
    (± residual), Hessian trace and empirical Fisher trace (± standard error), against the step."""
    from landscape.plots.analysis import plot_measures  # matplotlib: only to draw
    from landscape.plots.surface import save_figure

    records = {name: {r["step"]: r for r in run.metrics(name)} for name in ("top_eigen", "trace", "fisher_trace")}
    steps = sorted(records["top_eigen"])
    series = {
        "largest Hessian eigenvalue": ([records["top_eigen"][s]["eigenvalues"][0] for s in steps],
                                       [records["top_eigen"][s]["residuals"][0] for s in steps]),
        **{label: ([records[name].get(s, {}).get("value") for s in steps],
                   [records[name].get(s, {}).get("stderr") for s in steps])
           for name, label in (("trace", "Hessian trace"), ("fisher_trace", "empirical Fisher trace"))}}
    return save_figure(plot_measures([f"step {s}" for s in steps], steps, series, xscale="symlog",
                                     title="tracked during dense training",
                                     note="One network. Bars: the eigenvalue ± its residual ‖Hv − λv‖, the "
                                          "Hessian trace ± 1 s.e. of its estimator; the Fisher trace is exact."), path)


def _report(plan: DemoPlan, rewind_step: int, comparison: Comparison, analysis: Analysis, tracked: Path,
            out: Path) -> str:
    hp, pr, c = plan.hparams, plan.pruning, plan.compare
    compare_figures = {path.stem: path for path in sorted((comparison.out_dir / "figures").glob("*.png"))}
    return "\n".join([
        "# landscape demo: lottery tickets on MNIST-1D", "",
        f"A {hp.model} {hp.model_kwargs} trained for {hp.steps} ({hp.optimizer}, lr {hp.lr:g}, batch {hp.batch_size}) "
        f"on MNIST-1D; {pr.total_rounds} round{'s' if pr.total_rounds != 1 else ''} of global magnitude pruning of "
        f"{100 * pr.fraction:g}% of the "
        f"remaining weights, rewinding to step {rewind_step}. Tickets are compared with the dense network on the "
        f"Hessian restricted to their surviving weights ({c.samples} training samples, {c.eigenvalues} eigenvalues "
        f"per end, SLQ with {c.density_runs} runs of {c.density_steps} steps); barriers and instability in "
        f"percentage points of test error ({c.points} points per path, {c.instability_replicates} instability "
        f"pair{'s' if c.instability_replicates != 1 else ''} per network).", "",
        "## Dense training, tracked", "", *figure_links({"tracked": tracked}, out), "",
        "Largest Hessian eigenvalue (± residual), Hessian trace and empirical Fisher trace (± standard error) on "
        f"the first {plan.tracked_samples} training samples, measured by the Tracker during training.", "",
        "## Ticket versus dense", "", comparison.markdown(), *figure_links(compare_figures, out), "",
        render(analysis, relative_to=out, heading="##").replace(
            "## Landscape analysis", "## The dense network along training", 1)])
