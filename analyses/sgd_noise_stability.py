"""Stability to SGD noise (Frankle, Dziugaite, Roy & Carbin 2020) of a dense network and of an IMP ticket.

Instability analysis on MNIST-1D: train a network to step k, spawn two copies that differ only in the order of
their training batches, train both to the last step T, and measure the test-error barrier on the straight line
between them, max_α E(α) − ½ (E(0) + E(1)) (the *instability*, in percentage points of test error;
:mod:`landscape.connectivity.instability`). With ``R`` replicates (independent pairs of data orders) per k:

* dense network: instability against the spawn step k, log-spaced from 0, all k sharing one trunk run;
* IMP ticket: for each rewind step k, iterative magnitude pruning with rewinding to k
  (:func:`landscape.pruning.iterative_magnitude_pruning`, a fraction p of the remaining weights per round, n
  rounds) down to the density (1 − p)^n; the ticket ``m ⊙ θ_k`` (dense weights at k, fresh optimizer) is then
  spawned into pairs trained from k to T with the mask, as in Frankle et al.'s Section 5.

The full setting trains ``cnn1d`` for 1000 steps at learning rate 0.1, twice the trainer's default: at the
default 0.05 the dense network's barrier at k = 0 sits at the 2-point threshold (README, Measured: 2.7% over
2 replicates), too close to tell stable from unstable; the shorter training pays for 4 replicates.

A network is called *stable* from the smallest k of the grid after which the mean instability stays below a
threshold (2 percentage points, Frankle et al.'s), and a ticket *matching* when its mean test accuracy is at least
the dense mean minus one standard deviation of the dense accuracy. Accuracies pool every independently trained
copy: the IMP run itself (data order 0) and both copies of every replicate (``2R + 1`` networks per ticket; for
the dense network the copies spawned at k = 0 and the IMP dense run).

Writes ``figures/sgd_noise_stability_instability.png`` (instability against k), ``..._accuracy.png`` (ticket
accuracy against the rewind step, with the dense band), ``..._paths.png`` (test error along the paths at a few
k), ``figures/sgd_noise_stability.md`` (our numbers next to the paper's claims) and
``figures/sgd_noise_stability.json`` (the numbers). Resumable: every run lives under ``--out`` and re-running
skips what is done.

    python analyses/sgd_noise_stability.py            # full: 12-16 minutes on one thread of a shared CPU
    python analyses/sgd_noise_stability.py --quick    # smoke test: seconds, writes under --out only
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from landscape.connectivity.instability import InstabilityResult, instability
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json
from landscape.plots.instability import plot_instability
from landscape.plots.surface import ALPHA_LABEL, save_figure
from landscape.pruning import (IMPResult, PruningHparams, RoundResult, iterative_magnitude_pruning, round_dir,
                               run_masks)
from landscape.training import Hparams, Start
from reproduction import Progress, invocation

NAME = "sgd_noise_stability"


@dataclass(frozen=True)
class Setting:
    """The experiment's size: model and training, the spawn and rewind steps, pruning, replicates, path grid."""
    model: str
    model_kwargs: dict
    steps: int
    lr: float
    dense_spawn_steps: tuple[int, ...]
    ticket_rewinds: tuple[int, ...]
    rounds: int
    fraction: float
    replicates: int
    points: int
    threshold: float = 0.02

    @property
    def density(self) -> float:
        """The ticket's nominal density (1 − fraction)^rounds."""
        return (1 - self.fraction) ** self.rounds


FULL = Setting(model="cnn1d", model_kwargs={}, steps=1000, lr=0.1, dense_spawn_steps=(0, 10, 30, 100, 300),
               ticket_rewinds=(0, 30, 100), rounds=8, fraction=0.2, replicates=4, points=21)
QUICK = Setting(model="cnn1d", model_kwargs={"channels": 4}, steps=40, lr=0.05, dense_spawn_steps=(0, 10),
                ticket_rewinds=(0, 10), rounds=1, fraction=0.5, replicates=2, points=5)
CLAIMS = """\
## What the paper found (its settings, not ours)

Frankle, Dziugaite, Roy & Carbin (2020), "Linear Mode Connectivity and the Lottery Ticket Hypothesis" (ICML),
instability = test-error barrier between two copies trained on different data orders, a network counted stable
below 2 points:

1. Dense networks are unstable at initialisation but become stable early in training, within the first few
   percent of it (about 3% for ResNet-20 and 1.5% for VGG-16 on CIFAR-10, the first few epochs for ResNet-50
   and Inception-v3 on ImageNet); LeNet on MNIST is stable from initialisation.
2. IMP subnetworks at the extreme sparsities they study (e.g. 16.8% of the weights of ResNet-20, 1.5% of
   VGG-16) are matching only when they are stable: rewound to step 0 they are unstable and fall short of the
   dense accuracy (except LeNet on MNIST, stable and matching at k = 0); rewound to an early step k from which
   they are stable, they match. Randomly pruned and reinitialised subnetworks are unstable and not matching.
"""


@dataclass(frozen=True)
class TicketAtRewind:
    """The IMP experiment rewinding to step ``rewind`` and the instability analysis of its sparsest ticket."""
    rewind: int
    imp: IMPResult
    analysis: InstabilityResult

    @property
    def ticket(self) -> RoundResult:
        """The sparsest round (the ticket analysed)."""
        return self.imp.rounds[-1]

    def accuracies(self) -> np.ndarray:
        """Test accuracies of every independently trained copy of the ticket: the IMP run and the pairs' ends."""
        return np.concatenate([[self.ticket.test.accuracy], endpoint_accuracies(self.analysis, self.rewind)])


def training_hparams(setting: Setting) -> Hparams:
    """Every run's training (MNIST-1D, SGD with momentum 0.9, weight decay 5e-4, batch 100, seeds 0)."""
    return Hparams(model=setting.model, model_kwargs=setting.model_kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, batch_size=100, eval_every=0, checkpoint_every=0)


def dense_instability(setting: Setting, out: Path) -> InstabilityResult:
    """Instability of the dense network at every spawn step of the setting (one shared trunk)."""
    return instability(training_hparams(setting), setting.dense_spawn_steps, out / "dense",
                       replicates=setting.replicates, points=setting.points, progress=False)


def ticket_at_rewind(setting: Setting, rewind: int, out: Path) -> TicketAtRewind:
    """IMP with rewinding to ``rewind`` for ``setting.rounds`` rounds, then the instability of the last round's
    ticket ``m ⊙ θ_rewind`` spawned at ``rewind``."""
    hparams = training_hparams(setting)
    pruning = PruningHparams(rounds=setting.rounds, fraction=setting.fraction, rewind=f"{rewind}it")
    imp = iterative_magnitude_pruning(hparams, pruning, out / f"imp_rewind{rewind:05d}", progress=False)
    masks = run_masks(round_dir(imp.path, setting.rounds))
    analysis = instability(hparams, [rewind], out / f"ticket_rewind{rewind:05d}", replicates=setting.replicates,
                           masks=masks, start=Start.rewind(round_dir(imp.path, 0), rewind), points=setting.points,
                           progress=False)
    return TicketAtRewind(rewind=rewind, imp=imp, analysis=analysis)


def endpoint_accuracies(result: InstabilityResult, step: int) -> np.ndarray:
    """Test accuracies (1 − error at α = 0 and α = 1) of both copies of every replicate spawned at ``step``."""
    return np.array([1.0 - p.paths["test"].error[i] for p in result.pairs if p.step == step
                     for i in (0, -1)])


def dense_accuracies(dense: InstabilityResult, tickets: list[TicketAtRewind]) -> np.ndarray:
    """Test accuracies of the dense networks trained from initialisation on different data orders: the copies
    spawned at k = 0 and the IMP dense run (order 0, identical in every IMP experiment, so counted once)."""
    return np.concatenate([[tickets[0].imp.dense.test.accuracy], endpoint_accuracies(dense, 0)])


def merged(tickets: list[TicketAtRewind]) -> InstabilityResult:
    """The tickets' analyses (one spawn step each) as one result over the rewind steps, for plotting and for
    :func:`stable_from` (the masks differ between rewind steps; the first's identity, with their common
    density, is kept)."""
    first = tickets[0].analysis
    return InstabilityResult(hparams=first.hparams, masks=first.masks, start=None,
                             pairs=tuple(p for t in tickets for p in t.analysis.pairs))


def stable_from(steps: list[int], barriers: np.ndarray, threshold: float) -> int | None:
    """The smallest step of ``steps`` from which every mean barrier (``barriers``, one per step, fractions) is below
    ``threshold``; ``None`` if the last one is not."""
    reached = None
    for step, value in zip(reversed(steps), reversed(barriers)):
        if value >= threshold:
            break
        reached = step
    return reached


def mean_stderr(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n); NaN for one value)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else np.nan


def stderr_over_replicates(result: InstabilityResult, split: str = "test") -> np.ndarray:
    """Standard error of the mean error barrier on ``split`` per step: sample standard deviation / sqrt(replicates)."""
    counts = np.sum(~np.isnan(result.barriers(split)), axis=1)
    return result.std(split) / np.sqrt(counts)


def plot_stability(dense: InstabilityResult, ticket: InstabilityResult, setting: Setting) -> Figure:
    """Instability against k for dense and ticket (train dashed, test solid), with the stability threshold."""
    fig = plot_instability({"dense": dense, f"IMP ticket, {100 * ticket.masks['density']:.1f}% of weights": ticket},
                           definitions=("frankle",),
                           title=f"{setting.model} on MNIST-1D, {setting.steps} steps\n± 1 s.d. over "
                                 f"{setting.replicates} replicates (dots)")
    fig.set_size_inches(6.4, 4.8)
    ax = fig.axes[0]
    ax.axhline(100 * setting.threshold, color="k", ls=":", lw=1, label=f"stable below {100 * setting.threshold:g}")
    ax.set_xlabel("spawn step k (ticket: rewind step), symlog scale")
    ax.set_ylabel("error barrier (percentage points)")
    ax.legend(fontsize="small", loc="best", framealpha=0.8)
    return fig


def plot_accuracy(tickets: list[TicketAtRewind], dense: np.ndarray, setting: Setting) -> Figure:
    """The ticket's test accuracy against its rewind step (mean ± standard error, dots: networks), and the dense
    accuracy's mean ± one standard deviation (the matching band)."""
    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    ax = fig.subplots()
    values = 100 * dense
    ax.axhline(values.mean(), color="k", lw=1, ls="--", label=f"dense, {values.size} networks")
    ax.axhspan(values.mean() - values.std(ddof=1), values.mean() + values.std(ddof=1), color="k", alpha=0.1, lw=0,
               label="dense mean ± 1 s.d. (matching)")
    ks = np.array([t.rewind for t in tickets], dtype=float)
    stats = np.array([mean_stderr(100 * t.accuracies()) for t in tickets])
    ax.errorbar(ks, stats[:, 0], yerr=stats[:, 1], fmt="-o", color="C1", capsize=3, ms=4,
                label=f"IMP ticket, {100 * setting.density:.1f}% of weights (± s.e.)")
    for k, t in zip(ks, tickets):
        acc = 100 * t.accuracies()
        ax.plot(np.full(acc.size, k), acc, "o", color="C1", alpha=0.4, ms=3, mec="none")
    positive = ks[ks > 0]
    if positive.size:
        ax.set_xscale("symlog", linthresh=positive.min(), linscale=0.5)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("rewind step k (symlog scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Is the ticket rewound to k matching?", fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best", framealpha=0.8)
    return fig


def plot_paths(results: dict[str, InstabilityResult], steps: dict[str, list[int]]) -> Figure:
    """Test error along the path between the two copies at the given spawn steps, one panel per network: mean over
    replicates (line) and the replicates (thin)."""
    fig = Figure(figsize=(5.0 * len(results), 3.8), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (label, result) in zip(axes, results.items()):
        for i, k in enumerate(steps[label]):
            curves = np.array([100 * p.paths["test"].error for p in result.pairs if p.step == k])
            alphas = next(p.paths["test"].alphas for p in result.pairs if p.step == k)
            ax.plot(alphas, curves.mean(axis=0), "-o", color=f"C{i}", ms=3, lw=1.6, label=f"k = {k}")
            for curve in curves:
                ax.plot(alphas, curve, "-", color=f"C{i}", lw=0.7, alpha=0.4)
        ax.set_xlabel(ALPHA_LABEL)
        ax.set_ylabel("test error (%)")
        ax.set_title(label, fontsize="small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best", framealpha=0.8)
    return fig


def path_steps(steps: list[int], count: int = 3) -> list[int]:
    """``count`` spawn steps spread over ``steps`` (first, last and evenly in between by position)."""
    picks = np.unique(np.round(np.linspace(0, len(steps) - 1, min(count, len(steps)))).astype(int))
    return [steps[i] for i in picks]


def summary(setting: Setting, dense: InstabilityResult, tickets: list[TicketAtRewind],
            dense_acc: np.ndarray) -> dict:
    """The measured numbers: barriers per step (fractions) with standard errors, accuracies, the ticket's accuracy
    minus the dense one (with the standard error of the difference), stable-from steps, matching per rewind step."""
    ticket = merged(tickets)
    threshold, dense_sd = setting.threshold, float(dense_acc.std(ddof=1))
    dense_mean, dense_se = mean_stderr(dense_acc)
    rows = []
    for t in tickets:
        acc, acc_se = mean_stderr(t.accuracies())
        barrier, barrier_se = float(t.analysis.mean()[0]), float(stderr_over_replicates(t.analysis)[0])
        rows.append({"rewind": t.rewind, "density": t.ticket.density, "barrier": barrier, "barrier_stderr": barrier_se,
                     "barriers": t.analysis.barriers()[0].tolist(),
                     "train_barrier": float(t.analysis.mean("train")[0]),
                     "train_barrier_stderr": float(stderr_over_replicates(t.analysis, "train")[0]),
                     "accuracy": acc, "accuracy_stderr": acc_se, "gap": acc - dense_mean,
                     "gap_stderr": float(np.hypot(acc_se, dense_se)),
                     "accuracies": t.accuracies().tolist(), "matching": acc >= dense_mean - dense_sd,
                     "stable": barrier < threshold})
    return {
        "threshold": threshold,
        "dense": {"steps": dense.steps, "barrier": dense.mean().tolist(),
                  "barrier_stderr": stderr_over_replicates(dense).tolist(), "barriers": dense.barriers().tolist(),
                  "train_barrier": dense.mean("train").tolist(),
                  "train_barrier_stderr": stderr_over_replicates(dense, "train").tolist(),
                  "accuracies": dense_acc.tolist(),
                  "accuracy": dense_mean, "accuracy_sd": dense_sd,
                  "stable_from": stable_from(dense.steps, dense.mean(), threshold)},
        "ticket": {"density": ticket.masks["density"], "rounds": setting.rounds, "rewinds": rows,
                   "stable_from": stable_from(ticket.steps, ticket.mean(), threshold)},
    }


def report(setting: Setting, numbers: dict, seconds: float, command: str) -> str:
    """The markdown report: set-up, the two tables, the verdicts next to the paper's claims."""
    dense, ticket, threshold = numbers["dense"], numbers["ticket"], 100 * numbers["threshold"]
    lines = [
        "# Stability to SGD noise: dense network and IMP ticket on MNIST-1D", "",
        f"{setting.model} on MNIST-1D (4000 train / 1000 test), SGD lr {setting.lr}, momentum 0.9, weight decay "
        f"5e-4, batch 100, T = {setting.steps} steps, initialisation seed 0. Instability: the test-error barrier "
        f"(Frankle et al. 2020) between two copies spawned at step k and trained to T on different data orders, in "
        f"percentage points; {setting.replicates} replicates (pairs of data orders) per k, α grid of "
        f"{setting.points} points; tables give the mean ± standard error over replicates, the figure ± one standard "
        f"deviation. Ticket: IMP with rewinding to k, {setting.rounds} rounds of {100 * setting.fraction:g}% "
        f"(density {100 * ticket['density']:.1f}%), one IMP experiment per rewind step; its accuracy is the mean ± "
        f"standard error over {2 * setting.replicates + 1} networks (the IMP run and both copies of every "
        f"replicate). Stable: mean instability below {threshold:g} points from that k on. Matching: mean accuracy "
        f"at least the dense mean minus one standard deviation. Produced by `{command}` (this invocation: "
        f"{seconds / 60:.1f} minutes; runs finished by earlier invocations are reused).", "",
        "![instability](sgd_noise_stability_instability.png)", "",
        "| spawn step k | k / T | dense instability (points) | dense train barrier (points) |", "|---|---|---|---|",
    ]
    for k, b, se, tb, tse in zip(dense["steps"], dense["barrier"], dense["barrier_stderr"], dense["train_barrier"],
                                 dense["train_barrier_stderr"]):
        lines.append(f"| {k} | {k / setting.steps:.3f} | {_pp(b, se)} | {_pp(tb, tse)} |")
    lines += ["", f"Dense test accuracy: {_pct(dense['accuracies'])}% ({len(dense['accuracies'])} networks, s.d. "
                  f"{100 * dense['accuracy_sd']:.2f} points).", "",
              "![accuracy](sgd_noise_stability_accuracy.png)", "",
              "| ticket rewound to k | instability (points) | train barrier (points) | test accuracy (%) | "
              "minus dense (points) | stable | matching |", "|---|---|---|---|---|---|---|"]
    for row in ticket["rewinds"]:
        lines.append(f"| {row['rewind']} | {_pp(row['barrier'], row['barrier_stderr'])} | "
                     f"{_pp(row['train_barrier'], row['train_barrier_stderr'])} | {_pct(row['accuracies'])} | "
                     f"{100 * row['gap']:+.2f} ± {100 * row['gap_stderr']:.2f} | {_yes(row['stable'])} | "
                     f"{_yes(row['matching'])} |")
    lines += ["", "![paths](sgd_noise_stability_paths.png)", "", *verdicts(setting, numbers), "", CLAIMS]
    return "\n".join(lines)


def verdicts(setting: Setting, numbers: dict) -> list[str]:
    """Plain sentences: where each network becomes stable, and whether the two claims reproduce."""
    dense, ticket, threshold = numbers["dense"], numbers["ticket"], 100 * numbers["threshold"]
    return ["## Verdict", "", dense_verdict(setting, dense, threshold), ticket_verdict(ticket, dense, threshold)]


def dense_verdict(setting: Setting, dense: dict, threshold: float) -> str:
    """Claim 1: unstable at k = 0, stable from a k that is a small fraction (at most 10%) of training."""
    k, at_zero = dense["stable_from"], _pp(dense["barrier"][0], dense["barrier_stderr"][0])
    head = f"1. Dense network: instability {at_zero} points at k = 0"
    if k is None:
        return f"{head}, and not below {threshold:g} points at the last spawn step. Claim 1 does not reproduce."
    at_k = dense["steps"].index(k)
    where = (f"below {threshold:g} points from k = {k} on ({100 * k / setting.steps:.1f}% of training; "
             f"{_pp(dense['barrier'][at_k], dense['barrier_stderr'][at_k])} points there)")
    if k == 0:
        return (f"{head}, {where}: stable from initialisation, like LeNet on MNIST in the paper, not like its "
                f"larger networks. Claim 1 (unstable at initialisation, stable early) does not reproduce here.")
    verdict = "reproduces" if k / setting.steps <= 0.1 else "does not reproduce (stable only late)"
    return (f"{head}, {where}. Claim 1 (unstable at initialisation, stable after a small fraction of training) "
            f"{verdict}.")


def ticket_verdict(ticket: dict, dense: dict, threshold: float) -> str:
    """Claim 2: the ticket rewound to 0 is unstable and not matching; rewound to a later k it is stable and
    matching; and it is matching only where it is stable."""
    rows = ticket["rewinds"]
    described = "; ".join(f"rewound to k = {r['rewind']}: instability {_pp(r['barrier'], r['barrier_stderr'])} points "
                          f"({'stable' if r['stable'] else 'unstable'}), accuracy {_pct(r['accuracies'])}% "
                          f"({'matching' if r['matching'] else 'not matching'})" for r in rows)
    zero, later = rows[0], rows[1:]
    only_when_stable = all(r["stable"] for r in rows if r["matching"])
    reproduces = (zero["rewind"] == 0 and not zero["stable"] and not zero["matching"]
                  and any(r["stable"] and r["matching"] for r in later))
    if reproduces:
        verdict = "reproduces."
    elif zero["stable"] and zero["matching"]:
        verdict = ("does not reproduce here: the ticket is already stable and matching at k = 0, as LeNet on MNIST "
                   "is in the paper, so rewinding has nothing to fix.")
    else:
        verdict = "does not reproduce here."
    return (f"2. Ticket ({100 * ticket['density']:.1f}% of the weights, dense accuracy {_pct(dense['accuracies'])}%; "
            f"dense instability at k = 0: {_pp(dense['barrier'][0], dense['barrier_stderr'][0])} points): "
            f"{described}. Matching only where stable: {_yes(only_when_stable)}. Claim 2 (unstable and not matching "
            f"at k = 0, stable and matching after rewinding to a later k) {verdict}")


def _pp(value: float, stderr: float) -> str:
    return f"{100 * value:.2f}" + ("" if np.isnan(stderr) else f" ± {100 * stderr:.2f}")


def _pct(values: list[float]) -> str:
    mean, stderr = mean_stderr(100 * np.asarray(values))
    return f"{mean:.2f}" + ("" if np.isnan(stderr) else f" ± {stderr:.2f}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    run = invocation(NAME, __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    dense = dense_instability(setting, out)
    progress.done("dense instability")
    tickets = []
    for k in setting.ticket_rewinds:
        tickets.append(ticket_at_rewind(setting, k, out))
        progress.done(f"ticket rewound to {k}")
    seconds = progress.seconds
    dense_acc = dense_accuracies(dense, tickets)
    numbers = summary(setting, dense, tickets, dense_acc)
    ticket = merged(tickets)
    save_figure(plot_stability(dense, ticket, setting), figures / f"{NAME}_instability.png")
    save_figure(plot_accuracy(tickets, dense_acc, setting), figures / f"{NAME}_accuracy.png")
    save_figure(plot_paths({"dense": dense, f"IMP ticket, {100 * ticket.masks['density']:.1f}% of weights": ticket},
                           {"dense": path_steps(dense.steps),
                            f"IMP ticket, {100 * ticket.masks['density']:.1f}% of weights": ticket.steps}),
                figures / f"{NAME}_paths.png")
    command = "python analyses/sgd_noise_stability.py" + (" --quick" if run.quick else "")
    text = report(setting, numbers, seconds, command)
    atomic_write_bytes(figures / f"{NAME}.md", text.encode())
    atomic_write_json(figures / f"{NAME}.json", {"setting": asdict(setting), **numbers, "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
