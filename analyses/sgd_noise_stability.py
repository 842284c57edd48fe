"""Stability to SGD noise (Frankle, Dziugaite, Roy & Carbin 2020) of a dense network, IMP tickets and their controls.

Instability analysis on MNIST-1D: train a network to step k, spawn two copies that differ only in the order of
their training batches, train both to the last step T, and measure the test-error barrier on the straight line
between them, max_α E(α) − ½ (E(0) + E(1)) (the *instability*, in percentage points of test error;
:mod:`landscape.connectivity.instability`). For each of several initialisation seeds (``init_seed =
data_order_seed = seed``), with ``R`` replicates (independent pairs of data orders) per k:

* dense network: instability against the spawn step k, all k sharing one trunk run;
* IMP ticket: for each rewind step k, iterative magnitude pruning with rewinding to k
  (:func:`landscape.pruning.iterative_magnitude_pruning`, a fraction p of the remaining weights per round, n
  rounds) down to the density (1 − p)^n; the ticket ``m ⊙ θ_k`` (dense weights at k, fresh optimizer) is then
  spawned into pairs trained from k to T with the mask, as in Frankle et al.'s Section 5;
* the paper's controls at the ticket's density, spawned and trained the same way from k: random pruning
  (``m' ⊙ θ_k``, ``m'`` a random mask with the ticket's per-layer counts) and random reinitialisation
  (``m ⊙ θ'_0``, fresh weights, trained from k like the ticket).

The full setting trains ``cnn1d`` for 600 steps at learning rate 0.1 (twice the trainer's default, at which the
dense barrier at k = 0 sits at the 2-point threshold), with 2 replicates per seed and 7 seeds; the ticket has
16.8% of the weights (4 rounds of 36%: the density Frankle et al. use for ResNet-20, reached in fewer rounds
than their 20% per round to fit the budget). Rewind steps 0 and 50 (8% of training) only.

Statistics: every number is first averaged within a seed (over its replicates, or its 2R + 1 networks for
accuracies), then over seeds: mean ± total error, the 95% Student-t half-width over seeds; figures show mean ±
s.d. over seeds. A network is *stable* at k where its mean instability plus its total error is below the
threshold (2 points, Frankle et al.'s), *unstable* where the mean minus the error is above it, undecided
otherwise. A ticket or control is *matching* when its mean test accuracy is at least the dense mean minus one
standard deviation of the dense networks' accuracies (all seeds pooled), and *below dense* when its accuracy gap
to the dense network (per seed, then over seeds) is negative beyond its total error. Accuracies pool every
independently trained copy: for the ticket the IMP run and both copies of every replicate (``2R + 1`` networks per
seed), for the controls both copies of every replicate (``2R``), for the dense network the copies spawned at k = 0
and the IMP dense run.

Writes ``figures/sgd_noise_stability_instability.png`` (instability against k), ``..._accuracy.png`` (accuracy
against the rewind step, with the dense band), ``..._paths.png`` (test error along the paths),
``figures/sgd_noise_stability.md`` (our numbers next to the paper's claims) and ``figures/sgd_noise_stability.json``
(the numbers). Resumable: every run lives under ``--out`` and re-running skips what is done.

    python analyses/sgd_noise_stability.py            # full: about 10 CPU-minutes on one thread (analyses/README.md)
    python analyses/sgd_noise_stability.py --quick    # smoke test: ~15 s on one thread, writes under --out only
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from landscape.connectivity.instability import InstabilityResult, instability
from landscape.foundation.runs import atomic_write_bytes, atomic_write_json
from landscape.linalg.uncertainty import total_error
from landscape.plots.style import bounded_errors, error_caption, new_figure, plain_ticks
from landscape.plots.surface import ALPHA_LABEL, save_figure
from landscape.pruning import PruningHparams, iterative_magnitude_pruning, round_dir, run_masks
from landscape.pruning.controls import random_masks, reinitialize
from landscape.training import Hparams, Start, init_model
from reproduction import Progress, invocation

NAME = "sgd_noise_stability"
NETWORKS = ("ticket", "random", "reinit")   # what is spawned at each rewind step
LABELS = {"dense": "dense", "ticket": "IMP ticket", "random": "random pruning", "reinit": "random reinit"}
COLOURS = {"dense": "k", "ticket": "C1", "random": "C2", "reinit": "C3"}


@dataclass(frozen=True)
class Setting:
    """The experiment's size: model and training, seeds, the spawn and rewind steps, pruning, replicates, path grid."""
    model: str
    model_kwargs: dict
    steps: int
    lr: float
    seeds: tuple[int, ...]
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


FULL = Setting(model="cnn1d", model_kwargs={}, steps=600, lr=0.1, seeds=tuple(range(7)),
               dense_spawn_steps=(0, 5, 15, 50, 150), ticket_rewinds=(0, 50), rounds=4, fraction=0.36, replicates=2,
               points=11)
QUICK = Setting(model="cnn1d", model_kwargs={"channels": 4}, steps=30, lr=0.05, seeds=(0, 1),
                dense_spawn_steps=(0, 10), ticket_rewinds=(0, 10), rounds=1, fraction=0.5, replicates=1, points=3)
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
   they are stable, they match.
3. Randomly pruned and randomly reinitialised subnetworks at the same sparsity are unstable and not matching at
   every rewind step.
"""


def training_hparams(setting: Setting, seed: int) -> Hparams:
    """Every run's training (MNIST-1D, SGD with momentum 0.9, weight decay 5e-4, batch 100)."""
    return Hparams(model=setting.model, model_kwargs=setting.model_kwargs, data="mnist1d", steps=f"{setting.steps}it",
                   lr=setting.lr, batch_size=100, init_seed=seed, data_order_seed=seed, eval_every=0,
                   checkpoint_every=0)


def control_seed(seed: int, rewind: int, control: str) -> int:
    """The seed of control ``control`` (random mask or fresh weights) of initialisation seed ``seed`` at ``rewind``."""
    return int(np.random.SeedSequence([seed, rewind, NETWORKS.index(control)]).generate_state(1)[0])


def run_seed(setting: Setting, seed: int, out: Path) -> dict[str, Any]:
    """One initialisation seed: the dense instability, and at every rewind step the IMP ticket and its controls
    spawned there; ``{"dense": InstabilityResult, "imp": {k: IMPResult}, k: {network: InstabilityResult}}``."""
    hparams, out = training_hparams(setting, seed), out / f"seed{seed}"
    result: dict[str, Any] = {"dense": instability(hparams, setting.dense_spawn_steps, out / "dense",
                                                   replicates=setting.replicates, points=setting.points,
                                                   progress=False), "imp": {}}
    for k in setting.ticket_rewinds:
        imp = iterative_magnitude_pruning(hparams, PruningHparams(rounds=setting.rounds, fraction=setting.fraction,
                                                                  rewind=f"{k}it"),
                                          out / f"imp_rewind{k:05d}", progress=False)
        masks = run_masks(round_dir(imp.path, setting.rounds))
        rewound = Start.rewind(round_dir(imp.path, 0), k)
        starts = {"ticket": (masks, rewound),
                  "random": (random_masks(masks, control_seed(seed, k, "random")), rewound),
                  "reinit": (masks, Start.rewind(reinitialize(init_model(hparams), control_seed(seed, k, "reinit"),
                                                              masks), k))}
        result["imp"][k] = imp
        result[k] = {name: instability(hparams, [k], out / f"{name}_rewind{k:05d}", replicates=setting.replicates,
                                       masks=m, start=start, points=setting.points, progress=False)
                     for name, (m, start) in starts.items()}
    return result


def endpoint_accuracies(result: InstabilityResult, step: int) -> np.ndarray:
    """Test accuracies (1 − error at α = 0 and α = 1) of both copies of every replicate spawned at ``step``."""
    return np.array([1.0 - p.paths["test"].error[i] for p in result.pairs if p.step == step
                     for i in (0, -1)])


def stable_from(steps: list[int], barriers: np.ndarray, threshold: float) -> int | None:
    """The smallest step of ``steps`` from which every mean barrier (``barriers``, one per step, fractions) is below
    ``threshold``; ``None`` if the last one is not."""
    reached = None
    for step, value in zip(reversed(steps), reversed(barriers)):
        if value >= threshold:
            break
        reached = step
    return reached


def over_seeds(values: Any) -> dict[str, Any]:
    """Mean, sample s.d. and total error (95% Student-t half-width of the mean) of per-seed values."""
    values = np.asarray(values, dtype=float)
    n = values.size
    sd = float(values.std(ddof=1)) if n > 1 else math.nan
    error = total_error(sd / math.sqrt(n), n) if n > 1 else math.nan
    return {"per_seed": values.tolist(), "mean": float(values.mean()), "sd": sd, "error": error}


def stability(barrier: dict[str, Any], threshold: float) -> str:
    """"stable" (mean + error below ``threshold``), "unstable" (mean − error above it) or "undecided"."""
    if barrier["mean"] + barrier["error"] < threshold:
        return "stable"
    return "unstable" if barrier["mean"] - barrier["error"] > threshold else "undecided"


def summary(setting: Setting, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The measured numbers (fractions): barriers per step over seeds, accuracies, gaps to dense, verdict words."""
    threshold = setting.threshold
    dense_results = [r["dense"] for r in results]
    steps = dense_results[0].steps
    dense_acc = [np.concatenate([[r["imp"][setting.ticket_rewinds[0]].dense.test.accuracy],
                                 endpoint_accuracies(r["dense"], 0)]) for r in results]
    pooled = np.concatenate(dense_acc)
    dense_mean, dense_sd = float(pooled.mean()), float(pooled.std(ddof=1))
    barriers = [over_seeds([d.mean()[i] for d in dense_results]) for i in range(len(steps))]
    dense = {"steps": steps, "barrier": barriers, "stability": [stability(b, threshold) for b in barriers],
             "replicate_barriers": [d.barriers().tolist() for d in dense_results],
             "train_barrier": [over_seeds([d.mean("train")[i] for d in dense_results]) for i in range(len(steps))],
             "accuracies": [a.tolist() for a in dense_acc], "accuracy": over_seeds([a.mean() for a in dense_acc]),
             "accuracy_sd": dense_sd,
             "stable_from": stable_from(steps, np.array([b["mean"] for b in barriers]), threshold)}
    networks: dict[str, list[dict[str, Any]]] = {name: [] for name in NETWORKS}
    for k in setting.ticket_rewinds:
        for name in NETWORKS:
            analyses = [r[k][name] for r in results]
            acc = [np.concatenate([[r["imp"][k].rounds[-1].test.accuracy] if name == "ticket" else [],
                                   endpoint_accuracies(r[k][name], k)]) for r in results]
            barrier = over_seeds([a.mean()[0] for a in analyses])
            accuracy = over_seeds([a.mean() for a in acc])
            gap = over_seeds([a.mean() - d.mean() for a, d in zip(acc, dense_acc)])
            networks[name].append({
                "rewind": k, "density": float(np.mean([float(a.masks["density"]) for a in analyses])),
                "barrier": barrier, "stability": stability(barrier, threshold),
                "replicate_barriers": [a.barriers()[0].tolist() for a in analyses],
                "train_barrier": over_seeds([a.mean("train")[0] for a in analyses]),
                "accuracies": [a.tolist() for a in acc], "accuracy": accuracy, "gap": gap,
                "matching": accuracy["mean"] >= dense_mean - dense_sd,
                "below_dense": gap["mean"] + gap["error"] < 0})
    return {"threshold": threshold, "seeds": list(setting.seeds), "dense": dense, **networks}


def _symlog_steps(ax, ks: list[int]) -> None:
    positive = [k for k in ks if k > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_stability(numbers: dict[str, Any], setting: Setting) -> Figure:
    """Instability against k: dense against its spawn step, the ticket and its controls against the rewind step;
    mean ± s.d. over seeds, dots the seeds' means, with the stability threshold."""
    fig = new_figure(6.4, 4.6)
    ax = fig.subplots()
    curves = {"dense": (numbers["dense"]["steps"], numbers["dense"]["barrier"])}
    curves |= {name: ([r["rewind"] for r in numbers[name]], [r["barrier"] for r in numbers[name]]) for name in NETWORKS}
    for name, (ks, barriers) in curves.items():
        mean = 100 * np.array([b["mean"] for b in barriers])
        sd = 100 * np.array([b["sd"] for b in barriers])
        label = LABELS[name] if name == "dense" else f"{LABELS[name]}, {100 * setting.density:.1f}% of weights"
        ax.errorbar(ks, mean, yerr=bounded_errors(mean, sd), fmt="-o", color=COLOURS[name], capsize=3, ms=4,
                    label=label)
        for k, b in zip(ks, barriers):
            ax.plot(np.full(len(b["per_seed"]), k), 100 * np.array(b["per_seed"]), ".", color=COLOURS[name],
                    alpha=0.4, ms=4)
    ax.axhline(100 * setting.threshold, color="k", ls=":", lw=1, label=f"stable below {100 * setting.threshold:g}")
    _symlog_steps(ax, sorted({k for ks, _ in curves.values() for k in ks}))
    ax.set_xlabel("spawn step k (ticket and controls: rewind step), symlog scale")
    ax.set_ylabel("instability: test-error barrier (points)")
    ax.set_title(f"{setting.model} on MNIST-1D, {setting.steps} steps; {error_caption(len(setting.seeds))}\n"
                 f"({setting.replicates} replicates per seed; dots: seed means)", fontsize=10)
    plain_ticks(ax, "y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best", framealpha=0.8)
    return fig


def plot_accuracy(numbers: dict[str, Any], setting: Setting) -> Figure:
    """Test accuracy of the ticket and its controls against the rewind step (mean ± s.d. over seeds), and the dense
    networks' mean ± one s.d. (the matching band)."""
    fig = new_figure(5.8, 4.2)
    ax = fig.subplots()
    dense = 100 * np.concatenate([np.asarray(a) for a in numbers["dense"]["accuracies"]])
    ax.axhline(dense.mean(), color="k", lw=1, ls="--", label=f"dense, {dense.size} networks")
    ax.axhspan(dense.mean() - dense.std(ddof=1), dense.mean() + dense.std(ddof=1), color="k", alpha=0.1, lw=0,
               label="dense mean ± 1 s.d. (matching)")
    for name in NETWORKS:
        ks = [r["rewind"] for r in numbers[name]]
        mean = 100 * np.array([r["accuracy"]["mean"] for r in numbers[name]])
        sd = 100 * np.array([r["accuracy"]["sd"] for r in numbers[name]])
        ax.errorbar(ks, mean, yerr=bounded_errors(mean, sd), fmt="-o", color=COLOURS[name], capsize=3, ms=4,
                    label=f"{LABELS[name]}, {100 * setting.density:.1f}% of weights")
    _symlog_steps(ax, list(setting.ticket_rewinds))
    ax.set_xlabel("rewind step k (symlog scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Matching? {error_caption(len(setting.seeds))}", fontsize=10)
    plain_ticks(ax, "y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best", framealpha=0.8)
    return fig


def plot_paths(results: list[dict[str, Any]], setting: Setting) -> Figure:
    """Test error along the path between the two copies, one panel per network, a few k each (one colour per k
    across panels): the mean over seeds of each seed's mean over replicates, with a band of ± one s.d. over seeds."""
    panels = {"dense": path_steps(list(setting.dense_spawn_steps)),
              **{name: list(setting.ticket_rewinds) for name in NETWORKS}}
    every_k = sorted({k for ks in panels.values() for k in ks})
    colour = {k: colormaps["viridis"](0.9 * i / max(len(every_k) - 1, 1)) for i, k in enumerate(every_k)}
    fig = new_figure(4.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (name, ks) in zip(axes, panels.items()):
        for k in ks:
            analyses = [r["dense"] if name == "dense" else r[k][name] for r in results]
            per_seed = np.array([np.mean([100 * p.paths["test"].error for p in a.pairs if p.step == k], axis=0)
                                 for a in analyses])
            alphas = next(p.paths["test"].alphas for p in analyses[0].pairs if p.step == k)
            mean = per_seed.mean(axis=0)
            sd = per_seed.std(axis=0, ddof=1) if per_seed.shape[0] > 1 else np.zeros_like(mean)
            ax.plot(alphas, mean, "-o", color=colour[k], ms=3, lw=1.5, label=f"k = {k}")
            ax.fill_between(alphas, mean - sd, mean + sd, color=colour[k], alpha=0.2, lw=0)
        ax.set_xlabel(ALPHA_LABEL)
        ax.set_title(LABELS[name] + ("" if name == "dense" else f", {100 * setting.density:.1f}%"), fontsize="small")
        plain_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best", framealpha=0.8)
    axes[0].set_ylabel("test error (%)")
    fig.suptitle(f"Test error between the two copies ({error_caption(len(setting.seeds))})", fontsize=10)
    return fig


def path_steps(steps: list[int], count: int = 3) -> list[int]:
    """``count`` spawn steps spread over ``steps`` (first, last and evenly in between by position)."""
    picks = np.unique(np.round(np.linspace(0, len(steps) - 1, min(count, len(steps)))).astype(int))
    return [steps[i] for i in picks]


def report(setting: Setting, numbers: dict[str, Any], seconds: float, command: str) -> str:
    """The markdown report: set-up, the two tables, the verdicts next to the paper's claims."""
    dense, threshold, seeds = numbers["dense"], 100 * numbers["threshold"], len(setting.seeds)
    lines = [
        "# Stability to SGD noise: dense network, IMP tickets and their controls on MNIST-1D", "",
        f"{setting.model} on MNIST-1D (4000 train / 1000 test), SGD lr {setting.lr}, momentum 0.9, weight decay "
        f"5e-4, batch 100, T = {setting.steps} steps, {seeds} initialisation seeds ({', '.join(map(str, setting.seeds))}; "
        f"data order seeded alike). Instability: the test-error barrier (Frankle et al. 2020) between two copies "
        f"spawned at step k and trained to T on different data orders, in percentage points; {setting.replicates} "
        f"replicates (pairs of data orders) per k and seed, α grid of {setting.points} points. Ticket: IMP with "
        f"rewinding to k, one IMP experiment per rewind step and seed, {setting.rounds} rounds of "
        f"{100 * setting.fraction:g}% (global magnitude pruning; density {100 * setting.density:.1f}%); controls at "
        f"the same density spawned from k: random pruning (random mask with the ticket's per-layer counts on θ_k) "
        f"and random reinitialisation (ticket mask on fresh weights). Tables: mean over seeds ± total error (95% "
        f"Student-t over seeds, of the per-seed means); figures ± one s.d. over seeds. Stable: mean + error below "
        f"{threshold:g} points; unstable: mean − error above it; otherwise undecided. Matching: mean accuracy at "
        f"least the dense mean minus one s.d. of the dense networks. Produced by `{command}` (this invocation: "
        f"{seconds / 60:.1f} minutes on one thread; runs finished by earlier invocations are reused).", "",
        "![instability](sgd_noise_stability_instability.png)", "",
        "| spawn step k | k / T | dense instability (points) | dense train barrier (points) | |", "|---|---|---|---|---|",
    ]
    for k, b, tb, word in zip(dense["steps"], dense["barrier"], dense["train_barrier"], dense["stability"]):
        lines.append(f"| {k} | {k / setting.steps:.3f} | {_pp(b)} | {_pp(tb)} | {word} |")
    lines += ["", f"Dense test accuracy: {_pp(dense['accuracy'])}% over seeds ({sum(map(len, dense['accuracies']))} "
                  f"networks, s.d. {100 * dense['accuracy_sd']:.2f} points).", "",
              "![accuracy](sgd_noise_stability_accuracy.png)", "",
              "| network | rewound to k | instability (points) | | train barrier (points) | test accuracy (%) | "
              "minus dense (points) | matching |", "|---|---|---|---|---|---|---|---|"]
    for name in NETWORKS:
        for row in numbers[name]:
            lines.append(f"| {LABELS[name]} | {row['rewind']} | {_pp(row['barrier'])} | {row['stability']} | "
                         f"{_pp(row['train_barrier'])} | {_pp(row['accuracy'])} | {_pp(row['gap'], sign=True)} | "
                         f"{_yes(row['matching'])} |")
    lines += ["", "![paths](sgd_noise_stability_paths.png)", "", *verdicts(setting, numbers), "", CLAIMS]
    return "\n".join(lines)


def verdicts(setting: Setting, numbers: dict[str, Any]) -> list[str]:
    """Plain sentences: where each network is stable and matching, and whether the three claims reproduce."""
    return ["## Verdict", "", dense_verdict(setting, numbers["dense"], 100 * numbers["threshold"]),
            ticket_verdict(numbers), controls_verdict(numbers)]


def dense_verdict(setting: Setting, dense: dict[str, Any], threshold: float) -> str:
    """Claim 1: unstable at k = 0, stable from a k that is a small fraction (at most 10%) of training; undecided
    where the errors over seeds do not tell."""
    words, seeds = dense["stability"], len(dense["barrier"][0]["per_seed"])
    head = f"1. Dense network: instability {_pp(dense['barrier'][0])} points at k = 0 ({words[0]})"
    first = next((i for i, w in enumerate(words) if w == "stable" and all(v == "stable" for v in words[i:])), None)
    means = ", ".join(f"{100 * b['mean']:.2f}" for b in dense["barrier"])
    trend = f"mean instability {means} points at k = {', '.join(map(str, dense['steps']))} ({', '.join(words)})"
    if first is None:
        if words[0] == "unstable":
            return f"{head}; {trend}: never stable beyond the errors. Claim 1 does not reproduce here."
        return (f"{head}; {trend}. Within the errors of {seeds} seeds neither unstable at initialisation nor stable "
                f"later: claim 1 is not decided here" + (" (the means fall as the claim says)." if
                                                        dense["barrier"][0]["mean"] > dense["barrier"][-1]["mean"]
                                                        else "."))
    k = dense["steps"][first]
    where = (f"stable beyond the errors from k = {k} on ({100 * k / setting.steps:.1f}% of training; "
             f"{_pp(dense['barrier'][first])} points there)")
    if words[0] == "stable":
        return (f"{head}, {where}: stable from initialisation, like LeNet on MNIST in the paper, not like its larger "
                f"networks. Claim 1 (unstable at initialisation, stable early) does not reproduce here.")
    if words[0] == "undecided":
        return (f"{head}: the seeds do not decide whether it is unstable at initialisation; {where}. Claim 1 is "
                f"not decided by these {seeds} seeds (stable early: yes).")
    verdict = "reproduces" if k / setting.steps <= 0.1 else "does not reproduce (stable only late)"
    return f"{head}, {where}. Claim 1 (unstable at initialisation, stable after a small fraction of training) {verdict}."


def ticket_verdict(numbers: dict[str, Any]) -> str:
    """Claim 2: rewound to 0 the ticket is unstable and not matching; rewound to a later k, stable and matching."""
    rows = numbers["ticket"]
    described = "; ".join(f"rewound to k = {r['rewind']}: instability {_pp(r['barrier'])} points ({r['stability']}), "
                          f"accuracy {_pp(r['accuracy'])}% ({'matching' if r['matching'] else 'not matching'}; "
                          f"{_pp(r['gap'], sign=True)} points from dense)" for r in rows)
    zero, later = rows[0], rows[1:]
    if zero["stability"] == "unstable" and not zero["matching"] and any(
            r["stability"] == "stable" and r["matching"] for r in later):
        verdict = "reproduces."
    elif zero["stability"] == "stable" and zero["matching"]:
        verdict = ("does not reproduce here: the ticket is already stable and matching at k = 0, as LeNet on MNIST is "
                   "in the paper, so rewinding has nothing to fix.")
    elif zero["stability"] == "stable":
        verdict = ("does not reproduce here: rewound to 0 the ticket is already stable beyond the errors, so "
                   "instability cannot be what keeps it from matching; its shortfall from dense "
                   f"({_pp(zero['gap'], sign=True)} points) is "
                   + ("beyond" if zero["below_dense"] else "within") + " its error.")
    elif zero["stability"] == "undecided":
        verdict = "is not decided: the seeds do not tell whether the ticket rewound to 0 is unstable."
    else:
        verdict = "does not reproduce here."
    return f"2. Ticket ({100 * rows[0]['density']:.1f}% of the weights): {described}. Claim 2 {verdict}"


def controls_verdict(numbers: dict[str, Any]) -> str:
    """Claim 3: random pruning and random reinitialisation are unstable and not matching at every rewind step."""
    parts, holds = [], True
    for name in NETWORKS[1:]:
        for r in numbers[name]:
            parts.append(f"{LABELS[name]} at k = {r['rewind']}: instability {_pp(r['barrier'])} points "
                         f"({r['stability']}), accuracy {_pp(r['accuracy'])}% "
                         f"({'matching' if r['matching'] else 'not matching'})")
            holds &= r["stability"] == "unstable" and not r["matching"]
    unstable = all(r["stability"] == "unstable" for name in NETWORKS[1:] for r in numbers[name])
    not_matching = all(not r["matching"] for name in NETWORKS[1:] for r in numbers[name])
    verdict = ("reproduces" if holds else
               "reproduces in part: not matching, but not unstable beyond the errors everywhere" if not_matching else
               "reproduces in part: unstable, but matching somewhere" if unstable else "does not reproduce here")
    return f"3. Controls: {'; '.join(parts)}. Claim 3 (controls unstable and not matching) {verdict}."


def _pp(stats: dict[str, Any], sign: bool = False) -> str:
    value = f"{100 * stats['mean']:+.2f}" if sign else f"{100 * stats['mean']:.2f}"
    return value + ("" if not math.isfinite(stats["error"]) else f" ± {100 * stats['error']:.2f}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    run = invocation(NAME, __doc__.split("\n\n")[0])
    setting, out, figures = (QUICK if run.quick else FULL), run.out, run.figures
    progress = Progress()
    results = progress.each(setting.seeds, lambda seed: run_seed(setting, seed, out))
    seconds = progress.seconds
    numbers = summary(setting, results)
    save_figure(plot_stability(numbers, setting), figures / f"{NAME}_instability.png")
    save_figure(plot_accuracy(numbers, setting), figures / f"{NAME}_accuracy.png")
    save_figure(plot_paths(results, setting), figures / f"{NAME}_paths.png")
    command = "python analyses/sgd_noise_stability.py" + (" --quick" if run.quick else "")
    text = report(setting, numbers, seconds, command)
    atomic_write_bytes(figures / f"{NAME}.md", text.encode())
    atomic_write_json(figures / f"{NAME}.json", {"setting": asdict(setting), **numbers, "seconds": seconds})
    print(text)


if __name__ == "__main__":
    main()
