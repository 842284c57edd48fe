"""Tickets at scale: on a residual network with BatchNorm, IMP rewound to 0 versus to a late step k.

Frankle, Dziugaite, Roy & Carbin (2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis") and Renda,
Frankle & Carbin (2020) report that on deeper networks (ResNet-20, VGG-16 on CIFAR-10 and larger) subnetworks
found by IMP and rewound to initialisation (k = 0), like randomly reinitialised ones, match the dense network's
accuracy only at moderate sparsity, while subnetworks rewound to a step k early in training keep matching far
beyond; and that IMP subnetworks match only where they, and the dense network at k, are stable to SGD noise.

For three seeds (``init_seed = data_order_seed = seed``), a small ``resnet1d`` (BatchNorm, three stages of one
basic block, width 8, 7128 prunable weights) on MNIST-1D, :func:`landscape.pruning.rewind_sweep` runs from one
dense run per seed: IMP (36% of the remaining weights per round, global magnitude) rewound to k = 0 and to a late
k, with the random-reinitialisation control each round; every ticket's instability (test error barrier of two
copies rewound to k and trained on different data orders); the dense network's instability at k. The dense
network's instability is also measured at a few steps in between. Matching is judged as in Frankle et al. (2020):
the mean test accuracy over seeds is at least the dense mean minus one standard deviation of the dense accuracy
over seeds; stable means a mean error barrier below 2 points.

Writes ``figures/tickets_at_scale.png``, ``figures/tickets_at_scale.md`` (our numbers next to the papers'
claims, a verdict per claim) and ``figures/tickets_at_scale.json``. Everything is resumable under ``--out``.

    python analyses/tickets_at_scale.py            # full: 8.3 CPU-minutes on one thread (39 min wall, shared)
    python analyses/tickets_at_scale.py --quick    # smoke test, seconds; writes under --out only
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landscape.connectivity.instability import instability
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json, read_json
from landscape.plots import save_figure
from landscape.plots.pruning import _remaining_axis
from landscape.plots.style import LEGEND_SIZE, bounded_errors, caption, error_caption, new_figure, plain_ticks
from landscape.pruning import (STABLE_BARRIER, PruningHparams, RewindSweepResult, SweepSummary, rewind_sweep,
                               summarize)
from landscape.training import Hparams
from reproduction import Progress, invocation, mean_sd, paired_difference

POINTS = 11       # α grid of every instability path
SPLITS = ("test",)


@dataclass(frozen=True)
class Setting:
    """The experiment's size: network, training, pruning, rewind steps, extra dense spawn steps, seeds."""
    model_kwargs: dict
    steps: int
    lr: float
    milestones: tuple[int, ...]
    rounds: int
    fraction: float
    rewinds: tuple[int, ...]
    dense_spawns: tuple[int, ...]
    seeds: tuple[int, ...]


FULL = Setting(model_kwargs={"width": 8}, steps=300, lr=0.1, milestones=(150, 225), rounds=5, fraction=0.36,
               rewinds=(0, 40), dense_spawns=(0, 5, 10, 20, 40), seeds=(0, 1, 2))
QUICK = Setting(model_kwargs={"width": 2, "blocks": [1]}, steps=12, lr=0.1, milestones=(6, 9), rounds=2,
                fraction=0.36, rewinds=(0, 4), dense_spawns=(0, 2, 4), seeds=(0, 1))
CLAIMS = """\
## What the papers found (their settings, not ours)

* Frankle et al. (2020), ResNet-20 and VGG-16 on CIFAR-10, ResNet-50 and Inception-v3 on ImageNet: the dense
  network is unstable to SGD noise at initialisation (large error barriers between copies trained from step 0)
  and becomes stable after a small fraction of training (a few percent for ResNet-20). At the extreme sparsities
  they study (16.8% of the weights left for ResNet-20), IMP subnetworks rewound to k = 0 are not matching, like
  random reinitialisation, while subnetworks rewound to a k where training has become stable are; IMP
  subnetworks are matching exactly where they are stable.
* Frankle et al. (2019, "Stabilizing the Lottery Ticket Hypothesis"): on deeper networks, rewinding to an early
  step rather than to 0 is what lets IMP find matching subnetworks; randomly reinitialised subnetworks match
  only at moderate sparsity. Renda et al. (2020): IMP with weight rewinding to an early step matches the dense
  accuracy over a wide range of sparsities on CIFAR-10 and ImageNet ResNets.
"""


def hparams(setting: Setting, seed: int) -> Hparams:
    """Every run's training (MNIST-1D, SGD with momentum 0.9, weight decay 5e-4, batch 100, the learning rate cut
    tenfold at each milestone as in the papers' ResNet schedules, so that final accuracies are not SGD-noisy)."""
    return Hparams(model="resnet1d", model_kwargs=setting.model_kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, milestones=setting.milestones, gamma=0.1, batch_size=100, init_seed=seed,
                   data_order_seed=seed, eval_every=0, checkpoint_every=0)


def run_seed(setting: Setting, seed: int, out: Path) -> tuple[RewindSweepResult, np.ndarray]:
    """One seed's sweep, and the dense network's test error barrier at every step of ``dense_spawns``."""
    hp = hparams(setting, seed)
    sweep = rewind_sweep(hp, PruningHparams(rounds=setting.rounds, fraction=setting.fraction, controls=("reinit",)),
                         [f"{k}it" for k in setting.rewinds], out / f"seed{seed}", replicates=1, splits=SPLITS,
                         points=POINTS, progress=False)
    dense = instability(hp, setting.dense_spawns, sweep.path / "dense_instability", replicates=1, splits=SPLITS,
                        points=POINTS, progress=False)
    return sweep, dense.mean("test", "error")


def verdicts(summary: SweepSummary) -> list[dict[str, Any]]:
    """One verdict per claim, with the numbers it rests on."""
    d = summary.densities
    k0, late = summary.steps[0], summary.steps[-1]
    m = summary.matching
    reinit, zero, ticket = m[(k0, "reinit")], m[(k0, "ticket")], m[(late, "ticket")]
    reach = {name: j.matching_down_to(d) for name, j in (("reinit", reinit), ("zero", zero), ("late", ticket))}
    stable = summary.dense_stable()
    sparsest = paired_difference(summary.accuracy[(late, "ticket")][:, -1], summary.accuracy[(k0, "reinit")][:, -1])
    late_vs_zero = paired_difference(summary.accuracy[(late, "ticket")][:, -1], summary.accuracy[(k0, "ticket")][:, -1])

    def down(value: float | None) -> str:
        return "nowhere" if value is None else f"down to {100 * value:.1f}% of the weights"

    out = []
    if reach["reinit"] is not None and not reinit.matching[-1]:
        v1 = "reproduces"
    elif reach["reinit"] is None:
        v1 = "does not reproduce (reinitialised subnetworks match at no sparsity here)"
    else:
        v1 = "does not reproduce (reinitialised subnetworks still match at the sparsest round)"
    out.append({"claim": "random reinitialisation matches to moderate sparsity and fails beyond it",
                "ours": f"reinitialised (k = {k0}) subnetworks match {down(reach['reinit'])}; at "
                        f"{100 * d[-1]:.1f}% they reach {mean_sd(100 * summary.accuracy[(k0, 'reinit')][:, -1], 2)}% "
                        f"against the dense {mean_sd(100 * summary.dense_accuracy, 2)}%", "verdict": v1})
    if reinit.matching.all():
        v2 = "not tested: reinitialised subnetworks match at every density here"
    elif ticket.matching.all():
        v2 = "reproduces"
    elif reach["late"] is not None and (reach["reinit"] is None or reach["late"] < reach["reinit"]):
        v2 = f"partly: matches further than reinitialisation but not down to {100 * d[-1]:.1f}%"
    else:
        v2 = "does not reproduce"
    out.append({"claim": "late-rewound tickets keep matching where reinitialisation fails",
                "ours": f"tickets rewound to k = {late} match {down(reach['late'])}; at {100 * d[-1]:.1f}% they lead "
                        f"the reinitialised control by {100 * sparsest['mean']:.2f} ± {100 * sparsest['se']:.2f} "
                        f"points "
                        f"(mean ± s.e. of the {sparsest['n']} per-seed differences, paired t-test p = "
                        f"{sparsest['p']:.2g})", "verdict": v2})
    ticket_barrier = {k: summary.ticket_instability[k].mean(axis=0) for k in summary.steps}
    if stable[0]:
        v3 = (f"not tested: the dense network is already stable at k = {k0} here, so there is no unstable rewind "
              "point to compare")
    elif not stable[-1]:
        v3 = f"not tested: the dense network is not yet stable at k = {late}"
    elif (reach["zero"] or 0.0) > (reach["late"] or 0.0):
        v3 = "reproduces"
    else:
        v3 = (f"does not reproduce: tickets rewound to k = {k0}, where the dense network is unstable, match as far "
              f"as those rewound to k = {late}, where it is stable")
    out.append({"claim": "tickets match only where the dense network is stable (rewinding to an unstable k fails)",
                "ours": f"dense instability {mean_sd(100 * summary.dense_instability[:, 0], 1)} points at k = {k0} "
                        f"({'stable' if stable[0] else 'unstable'}), "
                        f"{mean_sd(100 * summary.dense_instability[:, -1], 2)} at k = {late} "
                        f"({'stable' if stable[-1] else 'unstable'}); tickets rewound to {k0} match "
                        f"{down(reach['zero'])}, to {late} {down(reach['late'])}; at {100 * d[-1]:.1f}% the late "
                        f"ticket leads the k = {k0} one by {100 * late_vs_zero['mean']:.2f} ± "
                        f"{100 * late_vs_zero['se']:.2f} points (paired, p = {late_vs_zero['p']:.2g})",
                "verdict": v3})
    cells = [(bool(m[(k, "ticket")].matching[j]), bool(ticket_barrier[k][j] < STABLE_BARRIER))
             for k in summary.steps for j in range(d.size) if np.isfinite(ticket_barrier[k][j])]
    counts = {(ok, st): sum(1 for cell in cells if cell == (ok, st)) for ok in (True, False) for st in (True, False)}
    if counts[(True, False)]:
        v4 = f"does not reproduce: {counts[(True, False)]} matching tickets are unstable"
    elif counts[(False, True)]:
        v4 = (f"partly: every matching ticket is stable, but so are {counts[(False, True)]} non-matching ones; "
              "stability does not separate them")
    elif counts[(False, False)]:
        v4 = "reproduces"
    else:
        v4 = "consistent, but not tested both ways: every ticket matches and is stable"
    out.append({"claim": "IMP subnetworks match exactly where they are themselves stable",
                "ours": f"of the {len(cells)} (rewind step, density) cells, {counts[(True, True)]} match and are "
                        f"stable, {counts[(True, False)]} match but are unstable, {counts[(False, True)]} do not match "
                        f"but are stable, {counts[(False, False)]} neither (means over seeds; the largest ticket "
                        f"instability is {100 * max(np.nanmax(b) for b in ticket_barrier.values()):.2f} points)",
                "verdict": v4})
    return out


def figure(setting: Setting, summary: SweepSummary, dense_fine: np.ndarray):
    """Accuracy against sparsity, ticket instability against sparsity, dense instability against k."""
    seeds = summary.seeds
    fig = new_figure(15, 4.4)
    acc_ax, ticket_ax, dense_ax = fig.subplots(1, 3)
    x = 100 * summary.densities
    dense = 100 * summary.dense_accuracy
    acc_ax.axhline(dense.mean(), color="k", lw=1, ls="--", label="dense (band: ± 1 s.d. = matching tolerance)")
    acc_ax.axhspan(dense.mean() - dense.std(ddof=1), dense.mean() + dense.std(ddof=1), color="k", alpha=0.1, lw=0)
    colours = {k: f"C{i}" for i, k in enumerate(summary.steps)}
    for k in summary.steps:
        for network, style in (("ticket", "-o"), ("reinit", ":s")):
            y = 100 * summary.accuracy[(k, network)]
            name = f"IMP ticket, rewind to k={k}" if network == "ticket" else f"random reinit (trained from k={k})"
            acc_ax.errorbar(x, y.mean(axis=0), yerr=y.std(ddof=1, axis=0), fmt=style, ms=4, lw=1.4, capsize=2,
                            color=colours[k], mfc="white" if network == "reinit" else colours[k], label=name)
        barrier = 100 * summary.ticket_instability[k]
        mean, spread = barrier.mean(axis=0), barrier.std(ddof=1, axis=0)
        ticket_ax.errorbar(x, mean, yerr=bounded_errors(mean, spread), fmt="-o", ms=4, lw=1.4, capsize=2,
                           color=colours[k], label=f"IMP ticket, rewind to k={k}")
    for ax in (acc_ax, ticket_ax):
        _remaining_axis(ax)
        plain_ticks(ax, "y")
        ax.grid(alpha=0.3, which="both")
    acc_ax.set_ylabel("test accuracy (%)")
    acc_ax.set_title("accuracy against sparsity")
    acc_ax.legend(fontsize=LEGEND_SIZE - 1, loc="lower left")
    threshold = f"stable below {100 * STABLE_BARRIER:g} points"
    ticket_ax.axhline(100 * STABLE_BARRIER, color="0.4", lw=1, ls="--", label=threshold)
    ticket_ax.set_ylabel("instability: test error barrier (points)")
    ticket_ax.set_title("tickets' instability against sparsity")
    ticket_ax.legend(fontsize=LEGEND_SIZE)
    fine = 100 * dense_fine
    spawns = np.array(setting.dense_spawns)
    dense_ax.errorbar(spawns, fine.mean(axis=0), yerr=bounded_errors(fine.mean(axis=0), fine.std(ddof=1, axis=0)),
                      fmt="-", color="k", lw=1.4, capsize=2, label="dense network spawned at k")
    for k in summary.steps:
        i = list(setting.dense_spawns).index(k)
        dense_ax.plot([k], [fine[:, i].mean()], "o", ms=7, color=colours[k], label=f"rewind step k={k}")
    dense_ax.axhline(100 * STABLE_BARRIER, color="0.4", lw=1, ls="--", label=threshold)
    dense_ax.set_xlabel("spawn step k (SGD updates)")
    dense_ax.set_ylabel("instability: test error barrier (points)")
    dense_ax.set_title("dense network's instability against k")
    dense_ax.set_ylim(bottom=0)
    plain_ticks(dense_ax)
    dense_ax.grid(alpha=0.3)
    dense_ax.legend(fontsize=LEGEND_SIZE)
    caption(fig, f"resnet1d (BatchNorm, width {setting.model_kwargs['width']}) on MNIST-1D, {setting.steps} steps, "
                 f"{100 * setting.fraction:g}% pruned per round; {error_caption(seeds)} (instability: one pair of "
                 f"copies per seed)")
    return fig


def report(setting: Setting, summary: SweepSummary, dense_fine: np.ndarray, found: list[dict[str, Any]], total: int,
           timings: list[dict[str, float]]) -> str:
    """The markdown report: set-up, tables, verdicts, the papers' claims (``timings``: every invocation's wall and
    CPU seconds, this one last)."""
    d = summary.densities
    tolerance = summary.matching[(summary.steps[0], "ticket")].tolerance
    lines = [
        "# Tickets at scale: rewinding to 0 versus late on a BatchNorm ResNet", "",
        f"resnet1d (BatchNorm; stages of {setting.model_kwargs.get('blocks', [1, 1, 1])} basic blocks, width "
        f"{setting.model_kwargs['width']}) on MNIST-1D (4000 train / 1000 test), SGD lr {setting.lr} cut tenfold at "
        f"steps {' and '.join(map(str, setting.milestones))}, momentum 0.9, weight decay 5e-4, batch 100, "
        f"{setting.steps} steps; IMP pruning {100 * setting.fraction:g}% of the remaining weights per round "
        f"(global magnitude) for {setting.rounds} rounds, rewound to k = {' and k = '.join(map(str, summary.steps))}, "
        f"with the random-reinitialisation control (a fresh initialisation under the ticket's mask, trained over "
        f"the same steps k … T) every round; "
        f"{summary.seeds} seeds (initialisation and data order), one dense run per seed shared by both rewind "
        f"steps (`landscape.pruning.rewind_sweep`). Instability: the test error barrier between two copies trained "
        f"from the same point on different data orders ({POINTS} points on the path, BatchNorm statistics "
        f"recomputed), one pair per seed. Produced by `analyses/tickets_at_scale.py`: "
        f"{sum(t['cpu_seconds'] for t in timings) / 60:.1f} CPU-min on one thread "
        f"({sum(t['wall_seconds'] for t in timings) / 60:.1f} min wall on a shared machine) over {len(timings)} "
        f"invocation(s), each reusing the runs the earlier ones finished; this one "
        f"{timings[-1]['cpu_seconds'] / 60:.1f} CPU-min.", "",
        f"Matching: mean test accuracy over seeds at least the dense mean minus one s.d. of the dense accuracy over "
        f"seeds ({100 * tolerance:.2f} points; Frankle et al. 2020). Stable: mean error barrier below "
        f"{100 * STABLE_BARRIER:g} points. All ± are sample standard deviations over seeds.", "",
        "![tickets at scale](tickets_at_scale.png)", "",
        "## The dense network's instability against the spawn step k", "",
        "| k | " + " | ".join(str(k) for k in setting.dense_spawns) + " |",
        "|---|" + "---|" * len(setting.dense_spawns),
        "| test error barrier (points) | " + " | ".join(mean_sd(100 * dense_fine[:, i], 2)
                                                        for i in range(len(setting.dense_spawns))) + " |", "",
        f"Dense test accuracy {mean_sd(100 * summary.dense_accuracy, 2)}%.", "",
        "## Accuracy and instability against sparsity", "",
    ]
    header = ["weights left"]
    for k in summary.steps:
        header += [f"ticket k={k}", f"reinit k={k}", f"ticket instability k={k}"]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for j, density in enumerate(d):
        cells = [f"{100 * density:.1f}%"]
        for k in summary.steps:
            for network in ("ticket", "reinit"):
                mark = "" if summary.matching[(k, network)].matching[j] else " ✗"
                cells.append(mean_sd(100 * summary.accuracy[(k, network)][:, j], 2) + mark)
            cells.append(mean_sd(100 * summary.ticket_instability[k][:, j], 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Accuracies in %, instabilities in points of test error; ✗ marks a mean that does not match.", "",
              "## Verdicts", ""]
    for v in found:
        lines.append(f"* **{v['claim']}** — {v['verdict']}. Ours: {v['ours']}.")
    lines += ["", f"Scale caveat: our network has {total} prunable weights and trains to "
                  f"{mean_sd(100 * summary.dense_accuracy, 1)}% in {setting.steps} steps; ResNet-20 has about 270 "
                  "thousand, ResNet-50 25 million, trained for tens of thousands of steps, so the sparsities at which "
                  "things happen are not comparable, only the order of the effects. With "
                  f"{summary.seeds} seeds the matching tolerance (one s.d.) is itself uncertain by about "
                  f"{100 / np.sqrt(2 * (summary.seeds - 1)):.0f}% of its value.", "", CLAIMS]
    return "\n".join(lines)


def main() -> None:
    run = invocation("tickets_at_scale", __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress, cpu = Progress(), time.process_time()
    measured = progress.each(setting.seeds, lambda seed: run_seed(setting, seed, out))
    sweeps = [s for s, _ in measured]
    dense_fine = np.array([f for _, f in measured])
    summary = summarize(sweeps, stable_barrier=STABLE_BARRIER)
    found = verdicts(summary)
    timing_file = out / "invocations.json"
    timings = [*(read_json(timing_file, list) if timing_file.is_file() else []),
               {"wall_seconds": progress.seconds, "cpu_seconds": time.process_time() - cpu}]
    atomic_write_json(timing_file, timings)
    save_figure(figure(setting, summary, dense_fine), figures / "tickets_at_scale.png")
    text = report(setting, summary, dense_fine, found, sweeps[0].dense.total, timings)
    atomic_write_bytes(figures / "tickets_at_scale.md", text.encode())
    atomic_write_json(figures / "tickets_at_scale.json", {
        "setting": asdict(setting), "summary": summary.to_dict(),
        "dense_instability_fine": {str(k): dense_fine[:, i].tolist() for i, k in enumerate(setting.dense_spawns)},
        "verdicts": found, "invocations": timings})
    print(text)


if __name__ == "__main__":
    main()
