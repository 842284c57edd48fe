"""Rewinding-step sweep: IMP rewound to several steps k from one dense run, beside the dense network's instability.

Frankle, Dziugaite, Roy & Carbin (2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis") and Renda,
Frankle & Carbin (2020, "Comparing Rewinding and Fine-tuning in Neural Network Pruning") find that on deeper
networks IMP rewound to the initialisation (k = 0) and randomly reinitialised subnetworks match the dense network
only at moderate sparsity, while IMP rewound to a step k early in training keeps matching far beyond, and that
this happens at the steps k from which the dense network is *stable* (two copies trained from ``θ_k`` on
different data orders are linearly connected).

For one dense run (hyperparameters ``hparams``, its seeds) and rewind steps ``k_1 < … < k_m``,
:func:`rewind_sweep` measures:

* one IMP experiment per k (:func:`landscape.pruning.imp.iterative_magnitude_pruning`, its controls included),
  all sharing the dense run and its checkpoints at every k; round 1's mask is the same for every k (it prunes
  the dense weights), later masks differ as the tickets trained from different ``θ_k`` do;
* the dense network's instability at each k (:func:`landscape.connectivity.instability.instability`, spawned
  at k with its optimizer state);
* each ticket's instability: the ticket rewound to k (``m_n ⊙ θ_k``, fresh optimizer) trained twice on different
  data orders, the error barrier on the masked path between the two.

Instability is the error barrier of Frankle et al., ``max_α E(α) − ½ (E(0) + E(1))`` with ``E`` the test error
(a fraction); a network is called *stable* below ``STABLE_BARRIER`` (0.02, the 2% of Frankle et al. 2020).
Over independent seeds (one sweep each), :func:`summarize` judges *matching* (:func:`judge_matching`): the mean
test accuracy over seeds is at least the dense network's mean minus a tolerance, by default one sample standard
deviation of the dense accuracy over seeds, the band Frankle et al. (2020) draw around the dense accuracy.

Layout of a sweep directory (every part resumable; rerunning trains only what is missing)::

    dense/                            the dense run, checkpointed at every k
    dense_instability/                instability of the dense network spawned at each k
    rewind_000040/                    IMP rewound to k = 40 (its round_00 holds only round.json)
    ticket_instability/k000040_round02/   instability of round 2's ticket rewound to k = 40
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.connectivity.instability import InstabilityResult, instability
from landscape.data.registry import load_dataset
from landscape.foundation.progress import phase
from landscape.pruning.imp import IMPResult, PruningHparams, RoundResult, iterative_magnitude_pruning, run_masks
from landscape.training import Hparams, Start, train

STABLE_BARRIER = 0.02
DENSE_DIR = "dense"


def rewind_dir(sweep_dir: str | Path, step: int) -> Path:
    """The IMP directory of the experiment rewound to ``step`` in a sweep directory."""
    return Path(sweep_dir) / f"rewind_{step:06d}"


def ticket_instability_dir(sweep_dir: str | Path, step: int, round: int) -> Path:
    """The instability analysis of round ``round``'s ticket rewound to ``step``."""
    return Path(sweep_dir) / "ticket_instability" / f"k{step:06d}_round{round:02d}"


@dataclass(frozen=True, eq=False)
class RewindSweepResult:
    """One dense run's rewinding sweep.

    Attributes:
        path: the sweep directory.
        imps: ``{k: IMPResult}``, one IMP experiment per rewind step, ascending.
        dense_instability: the dense network spawned at every k.
        ticket_instability: ``{(k, round): InstabilityResult}`` for the tickets measured (empty if none).
    """
    path: Path
    imps: Mapping[int, IMPResult]
    dense_instability: InstabilityResult
    ticket_instability: Mapping[tuple[int, int], InstabilityResult]

    @property
    def steps(self) -> list[int]:
        """The rewind steps k, ascending."""
        return sorted(self.imps)

    @property
    def dense(self) -> RoundResult:
        """The shared dense network (round 0)."""
        return self.imps[self.steps[0]].dense

    @property
    def densities(self) -> np.ndarray:
        """The pruned rounds' densities (kept / prunable weights), the same for every k."""
        return np.array([r.density for r in self.imps[self.steps[0]].tickets])

    def accuracy(self, step: int, network: str = "ticket") -> np.ndarray:
        """Test accuracy per pruned round of the ticket rewound to ``step``, or of its control ``network``
        (``"reinit"``, ``"random"``, ...)."""
        rounds = self.imps[step].tickets
        if network == "ticket":
            return np.array([r.test.accuracy for r in rounds], dtype=float)
        missing = [r.round for r in rounds if network not in r.controls]
        if missing:
            raise KeyError(f"control {network!r} was not run in rounds {missing} of rewind step {step}")
        return np.array([r.controls[network].test.accuracy for r in rounds], dtype=float)

    def ticket_barriers(self, step: int, split: str = "test") -> np.ndarray:
        """Instability (error barrier, a fraction) per pruned round of the tickets rewound to ``step``, the mean
        over replicates; NaN for a round not measured."""
        return np.array([self.ticket_instability[(step, r.round)].mean(split, "error")[0]
                         if (step, r.round) in self.ticket_instability else np.nan
                         for r in self.imps[step].tickets])

    def dense_barriers(self, split: str = "test") -> np.ndarray:
        """The dense network's instability (error barrier, mean over replicates) at each rewind step."""
        return self.dense_instability.mean(split, "error")


def rewind_sweep(hparams: Hparams, pruning: PruningHparams, rewind_steps: Sequence[str], sweep_dir: str | Path, *,
                 replicates: int = 1, ticket_instability: bool = True, splits: Sequence[str] = ("test",),
                 points: int = 11, device: str | torch.device | None = None,
                 progress: bool = True) -> RewindSweepResult:
    """IMP rewound to each of ``rewind_steps`` from one dense run, with the dense network's instability at each
    step and (``ticket_instability``) every ticket's (see the module docstring); resumable in ``sweep_dir``.

    Args:
        hparams: the dense run's training (every network of the sweep trains with it from its start step).
        pruning: rounds, fraction, scope, controls of every IMP experiment; its ``rewind`` is replaced by each
            of ``rewind_steps``.
        rewind_steps: rewind points as ``"40it"`` or ``"1ep"``, at least one, naming distinct steps.
        sweep_dir: the sweep directory; created if needed.
        replicates: pairs of copies per instability measurement (error barriers averaged over them).
        ticket_instability: also measure every ticket's instability (two trainings per ticket and replicate).
        splits, points: where and on how many α the paths are evaluated
            (:func:`landscape.connectivity.instability.instability`; the summary reads ``"test"``).
        device: where to train. progress: progress bars and phase lines.

    Raises:
        ValueError: no rewind steps, two naming the same step, a step not before the end of training, or
            ``replicates`` below 1.
    """
    sweep_dir = Path(sweep_dir)
    plans = _plans(hparams, pruning, rewind_steps)
    if replicates < 1:
        raise ValueError(f"replicates must be at least 1, got {replicates}")
    steps = sorted(plans)
    dense_dir = sweep_dir / DENSE_DIR
    phase(f"rewinding sweep: dense run, checkpointed at k = {', '.join(map(str, steps))}", enabled=progress)
    train(dataclasses.replace(hparams, checkpoint_steps=tuple(sorted({*hparams.checkpoint_steps, *steps}))),
          dense_dir, device=device, progress=progress)
    imps = {k: iterative_magnitude_pruning(hparams, plans[k], rewind_dir(sweep_dir, k), dense=dense_dir,
                                           device=device, progress=progress) for k in steps}
    phase("rewinding sweep: dense instability at each k", enabled=progress)
    dense_instability = instability(hparams, steps, sweep_dir / "dense_instability", replicates=replicates,
                                    splits=splits, points=points, device=device, progress=progress)
    tickets: dict[tuple[int, int], InstabilityResult] = {}
    if ticket_instability:
        for k in steps:
            phase(f"rewinding sweep: instability of the tickets rewound to k = {k}", enabled=progress)
            start = Start.rewind(dense_dir, k)
            for ticket in imps[k].tickets:
                tickets[(k, ticket.round)] = instability(
                    hparams, [k], ticket_instability_dir(sweep_dir, k, ticket.round), replicates=replicates,
                    masks=run_masks(ticket.run_dir), start=start, splits=splits, points=points, device=device,
                    progress=progress)
    return RewindSweepResult(path=sweep_dir, imps=imps, dense_instability=dense_instability,
                             ticket_instability=tickets)


def rewind_sweeps(hparams: Hparams, pruning: PruningHparams, rewind_steps: Sequence[str], out_dir: str | Path, *,
                  seeds: int, **options: Any) -> list[RewindSweepResult]:
    """:func:`rewind_sweep` for ``seeds`` independent seeds: seed ``i`` adds ``i`` to ``hparams``' ``init_seed`` and
    ``data_order_seed`` and lives in ``out_dir/seed<i>``; ``options`` are :func:`rewind_sweep`'s."""
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    return [rewind_sweep(dataclasses.replace(hparams, init_seed=hparams.init_seed + i,
                                             data_order_seed=hparams.data_order_seed + i),
                         pruning, rewind_steps, Path(out_dir) / f"seed{i}", **options) for i in range(seeds)]


def _plans(hparams: Hparams, pruning: PruningHparams, rewind_steps: Sequence[str]) -> dict[int, PruningHparams]:
    """``{k: pruning rewound to k}`` for the distinct steps named by ``rewind_steps``."""
    if isinstance(rewind_steps, str) or not rewind_steps:
        raise ValueError(f"rewind_steps must be a non-empty list of rewind points such as ['0it', '40it'], got "
                         f"{rewind_steps!r}")
    dataset = load_dataset(hparams.data, **hparams.data_kwargs)
    batches_per_epoch = len(dataset.train[1]) // hparams.batch_size
    plans: dict[int, PruningHparams] = {}
    for rewind in rewind_steps:
        plan = dataclasses.replace(pruning, rewind=str(rewind))
        k = plan.rewind_step(batches_per_epoch)
        if k in plans:
            raise ValueError(f"rewind points {plans[k].rewind!r} and {rewind!r} are both step {k}; give each step "
                             f"once")
        plans[k] = plan
    total = hparams.total_steps(batches_per_epoch)
    late = [k for k in plans if k >= total]
    if late:
        raise ValueError(f"rewind steps {sorted(late)} are not before the end of training ({total} steps)")
    return plans


@dataclass(frozen=True)
class Matching:
    """Whether subnetworks match the dense network, per density (Frankle et al. 2020).

    Attributes:
        mean, sd: the subnetworks' test accuracy over seeds per density, mean and sample s.d. (NaN for one seed).
        dense_mean, dense_sd: the same for the dense network.
        tolerance: how far below ``dense_mean`` a mean may fall and still match (accuracy, a fraction).
        matching: ``mean >= dense_mean - tolerance`` per density.
    """
    mean: np.ndarray
    sd: np.ndarray
    dense_mean: float
    dense_sd: float
    tolerance: float
    matching: np.ndarray

    def matching_down_to(self, densities: Sequence[float]) -> float | None:
        """The smallest density down to which every round matches, or ``None`` when the first already fails."""
        reached = None
        for d, ok in zip(densities, self.matching):
            if not ok:
                break
            reached = float(d)
        return reached


def judge_matching(accuracies: Any, dense_accuracies: Any, tolerance: float | None = None) -> Matching:
    """Matching judgement: the mean over seeds of ``accuracies`` (shape ``(seeds, densities)``) against the mean
    of ``dense_accuracies`` (``(seeds,)``) minus ``tolerance``, by default the dense accuracies' sample standard
    deviation (ddof = 1).

    Raises:
        ValueError: shapes that do not fit, NaN accuracies, a negative tolerance, or one dense seed and no
            ``tolerance`` (one seed has no spread).
    """
    acc = np.atleast_2d(np.asarray(accuracies, dtype=float))
    dense = np.asarray(dense_accuracies, dtype=float).reshape(-1)
    if acc.size == 0 or dense.size == 0:
        raise ValueError("judge_matching needs at least one accuracy and one dense accuracy")
    if np.isnan(acc).any() or np.isnan(dense).any():
        raise ValueError("judge_matching got NaN accuracies; every network must have been evaluated")
    if tolerance is None:
        if dense.size < 2:
            raise ValueError("one dense seed has no spread to judge matching by; give tolerance= (an accuracy "
                             "fraction, e.g. 0.005) or the dense accuracies of at least two seeds")
        tolerance = float(dense.std(ddof=1))
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative accuracy fraction, got {tolerance}")
    mean = acc.mean(axis=0)
    sd = acc.std(axis=0, ddof=1) if acc.shape[0] > 1 else np.full(acc.shape[1], np.nan)
    dense_mean = float(dense.mean())
    return Matching(mean=mean, sd=sd, dense_mean=dense_mean,
                    dense_sd=float(dense.std(ddof=1)) if dense.size > 1 else math.nan, tolerance=float(tolerance),
                    matching=mean >= dense_mean - tolerance)


@dataclass(frozen=True, eq=False)
class SweepSummary:
    """Rewinding sweeps of independent seeds side by side.

    Attributes:
        steps: the rewind steps k. densities: the pruned rounds' densities.
        dense_accuracy: ``(seeds,)`` the dense network's test accuracy.
        accuracy: ``{(k, network): (seeds, rounds)}`` test accuracies, ``network`` ``"ticket"`` or a control.
        matching: ``{(k, network): Matching}``.
        ticket_instability: ``{k: (seeds, rounds)}`` the tickets' error barriers (NaN where not measured).
        dense_instability: ``(seeds, len(steps))`` the dense network's error barrier at each k.
        stable_barrier: the threshold below which a mean barrier counts as stable.
    """
    steps: tuple[int, ...]
    densities: np.ndarray
    dense_accuracy: np.ndarray
    accuracy: Mapping[tuple[int, str], np.ndarray]
    matching: Mapping[tuple[int, str], Matching]
    ticket_instability: Mapping[int, np.ndarray]
    dense_instability: np.ndarray
    stable_barrier: float

    @property
    def seeds(self) -> int:
        return int(self.dense_accuracy.size)

    def dense_stable(self) -> np.ndarray:
        """Per rewind step: whether the dense network's mean barrier over seeds is below ``stable_barrier``."""
        return self.dense_instability.mean(axis=0) < self.stable_barrier

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready numbers (accuracies and barriers as fractions, per seed)."""
        return {"steps": list(self.steps), "densities": self.densities.tolist(),
                "dense_accuracy": self.dense_accuracy.tolist(), "stable_barrier": self.stable_barrier,
                "dense_instability": {str(k): self.dense_instability[:, i].tolist() for i, k in enumerate(self.steps)},
                "dense_stable": {str(k): bool(s) for k, s in zip(self.steps, self.dense_stable())},
                "networks": [{"step": k, "network": network, "accuracy": acc.tolist(),
                              "matching": self.matching[(k, network)].matching.tolist(),
                              "tolerance": self.matching[(k, network)].tolerance,
                              "instability": (_nan_to_none(self.ticket_instability[k]) if network == "ticket"
                                              else None)}
                             for (k, network), acc in self.accuracy.items()]}


def summarize(results: Sequence[RewindSweepResult], *, tolerance: float | None = None,
              stable_barrier: float = STABLE_BARRIER) -> SweepSummary:
    """Put the sweeps of independent seeds side by side and judge matching (:func:`judge_matching`; the default
    tolerance is one standard deviation of the dense accuracy over seeds, so it needs two seeds).

    Raises:
        ValueError: no results, or sweeps of different rewind steps, densities or controls.
    """
    if not results:
        raise ValueError("summarize needs at least one rewinding sweep")
    first = results[0]
    steps = first.steps
    controls = sorted(first.imps[steps[0]].pruning.controls)
    for r in results[1:]:
        same = (r.steps == steps and np.array_equal(r.densities, first.densities)
                and sorted(r.imps[steps[0]].pruning.controls) == controls)
        if not same:
            raise ValueError(f"sweeps differ: {r.path} has rewind steps {r.steps}, densities {r.densities.tolist()}, "
                             f"{first.path} {steps}, {first.densities.tolist()}; summarise sweeps of one setting")
    dense = np.array([r.dense.test.accuracy for r in results], dtype=float)
    networks = ["ticket", *controls]
    accuracy = {(k, n): np.array([r.accuracy(k, n) for r in results]) for k in steps for n in networks}
    matching = {key: judge_matching(acc, dense, tolerance) for key, acc in accuracy.items()}
    return SweepSummary(steps=tuple(steps), densities=first.densities, dense_accuracy=dense, accuracy=accuracy,
                        matching=matching, ticket_instability={k: np.array([r.ticket_barriers(k) for r in results])
                                                               for k in steps},
                        dense_instability=np.array([r.dense_barriers() for r in results]),
                        stable_barrier=stable_barrier)


def summary_table(summary: SweepSummary) -> str:
    """A text table: the dense network's accuracy and instability at each k, then per k and density the ticket's
    and each control's test accuracy (mean ± s.d. over seeds) with the matching verdict, and the ticket's
    instability (percentage points of test error)."""
    first = summary.matching[(summary.steps[0], "ticket")]
    lines = [f"rewinding sweep over {summary.seeds} seed(s); dense test accuracy {_pm(summary.dense_accuracy)}%",
             f"matching: mean test accuracy >= dense mean - {100 * first.tolerance:.2f} points; stable: mean error "
             f"barrier < {100 * summary.stable_barrier:g} points"]
    for i, k in enumerate(summary.steps):
        lines.append(f"dense instability at k={k}: {_pm(summary.dense_instability[:, i])} points "
                     f"({'stable' if summary.dense_stable()[i] else 'unstable'})")
    networks = [n for (k, n) in summary.accuracy if k == summary.steps[0]]
    header = f"{'k':>6} {'density':>8} " + " ".join(f"{n + ' acc':>16} {'match':>5}" for n in networks) \
        + f" {'instability':>14}"
    lines.append(header)
    for k in summary.steps:
        for j, d in enumerate(summary.densities):
            cells = " ".join(f"{_pm(summary.accuracy[(k, n)][:, j]) + '%':>16} "
                             f"{'yes' if summary.matching[(k, n)].matching[j] else 'no':>5}" for n in networks)
            barrier = summary.ticket_instability[k][:, j]
            shown = _pm(barrier) if not np.isnan(barrier).all() else "n/a"
            lines.append(f"{k:>6} {100 * d:>7.2f}% {cells} {shown:>14}")
    return "\n".join(lines)


def _pm(fractions: np.ndarray) -> str:
    """``mean ± s.d.`` of fractions in percent (the mean alone for one value)."""
    values = 100 * np.asarray(fractions, dtype=float)
    return f"{values.mean():.2f}" + (f" ± {values.std(ddof=1):.2f}" if values.size > 1 else "")


def _nan_to_none(values: np.ndarray) -> list:
    return [[None if math.isnan(v) else float(v) for v in row] for row in values.tolist()]
