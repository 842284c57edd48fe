"""Iterative magnitude pruning (IMP) with rewinding, its controls, and stability to pruning.

The procedure of Frankle & Carbin (2019, "The Lottery Ticket Hypothesis"), with the late rewinding of
Frankle et al. (2019, "Stabilizing the Lottery Ticket Hypothesis"; 2020, "Linear Mode Connectivity and
the Lottery Ticket Hypothesis"). With ``θ_s`` the dense run's state after ``s`` updates, ``T`` the
training length, ``k`` the rewind step, ``p`` the fraction pruned per round and ``N`` the number of
prunable weights (per layer for ``scope="layer"``):

* round 0 trains the dense network ``θ_0 → θ_T``, checkpointing ``θ_k``;
* round ``n ≥ 1`` keeps the ``round(N (1 − p)^n)`` largest ``|w|`` of round ``n − 1``'s trained weights
  among those its mask kept (:func:`~landscape.pruning.masks.prune_to_density`), so the density is
  ``(1 − p)^n`` up to one weight, without rounding errors piling up over rounds; then it trains
  ``m_n ⊙ θ_k`` over steps ``k … T``: the full state at ``k`` (BatchNorm buffers included), a fresh
  optimizer, the learning-rate schedule and batch stream continued from ``k``
  (:meth:`landscape.training.Start.rewind`). ``k = 0`` is the original lottery-ticket procedure.

Controls of round ``n`` (all but the supermask trained over the same steps ``k … T`` with the same
hyperparameters, so that only the starting weights or the mask differ from the ticket's):

* ``reinit``: ``m_n ⊙ θ'_0``, a fresh random initialisation (Frankle & Carbin 2019);
* ``random``: ``m'_n ⊙ θ_k``, ``m'_n`` a random mask with ``m_n``'s per-layer counts (random pruning);
* ``signs``: ``m_n ⊙ sign(θ_k) σ_l``, each layer's kept weights at one magnitude, the standard deviation
  of its weights at ``k``, with their signs (Zhou et al. 2019, "Deconstructing Lottery Tickets");
* ``supermask``: ``m_n ⊙ θ_0`` evaluated without training (Zhou et al. 2019).

Stability to pruning (Frankle et al. 2019): the L2 distance, over the coordinates the mask keeps, between
the subnetwork trained from the rewind point and the dense network at the end of training,
``d_n = ||m_n ⊙ (θ_T^(n) − θ_T^(0))||_2`` (parameter units; unmasked parameters such as biases count in
full), also relative to ``||m_n ⊙ θ_T^(0)||_2``. Stabler tickets (smaller ``d``) were the more accurate
ones in that paper.

An IMP directory holds ``imp.json`` (what identifies the experiment, checked on resuming) and one run
directory per round, ``round_00`` (dense) to ``round_NN``, each with its ``round.json`` summary and its
controls' run directories under ``controls/``. Rounds whose summary lists every control asked for are
skipped when the experiment is run again; an interrupted training run resumes from its last checkpoint.

Several experiments may share one dense run (``dense=``, e.g. IMP rewound to different steps k,
:mod:`landscape.pruning.rewinding`): it is trained, resumed, or replayed for a checkpoint it lacks in its own run
directory, which ``imp.json`` names relative to the IMP directory; ``round_00`` then holds only its ``round.json``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.connectivity.interpolation import load_run_checkpoint
from landscape.data.registry import load_dataset
from landscape.foundation.devices import widest_float
from landscape.foundation.progress import phase
from landscape.foundation.runs import Run, RunConfigError, atomic_write_json, load_checkpoint, read_json
from landscape.foundation.settings import Settings, setting
from landscape.pruning.controls import random_masks, reinitialize, signs_only, supermask
from landscape.pruning.masks import Masks, density, layer_densities, prunable_names, prune_to_density
from landscape.training import Hparams, Start, init_model, load_model, train
from landscape.training.evaluation import Evaluation, evaluate

CONTROLS = ("reinit", "random", "signs", "supermask")
_REWIND = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")
_FORMAT = 1
_FIX = "it is not the file landscape prune wrote; repair it, or delete the IMP directory to start over"


@dataclass(frozen=True)
class PruningHparams(Settings):
    """How to prune: rounds, fraction per round, scope, rewind point, controls.

    Fields marked ``identity=False`` (how far to go and which controls to add) may change between the
    calls that resume an experiment; the others define it.
    """

    digest_length = 6

    rounds: int = setting(8, "pruning rounds after the dense run; round n has density (1 - fraction)^n",
                          identity=False)
    target_density: float | None = setting(None, "prune until the density is at most this (overrides rounds)",
                                          identity=False)
    fraction: float = setting(0.2, "fraction of the remaining weights pruned per round")
    scope: str = setting("global", "'global' (one magnitude threshold over all layers) or 'layer' (per layer)")
    rewind: str = setting("0it", "rewind point: '0it' (the initialisation) or a step as '100it' or '1ep' (late "
                                "rewinding)")
    exclude_output: bool = setting(False, "leave the output layer's weights dense")
    controls: tuple[str, ...] = setting((), f"controls trained or evaluated every round, from {CONTROLS}",
                                        identity=False)
    control_seed: int = setting(0, "seed of the random controls (fresh initialisations, random masks)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "controls", tuple(self.controls))
        unknown = [c for c in self.controls if c not in CONTROLS]
        problems = [msg for bad, msg in (
            (self.rounds < 0, f"rounds must be non-negative, got {self.rounds}"),
            (self.target_density is not None and not 0.0 < self.target_density <= 1.0,
             f"target_density must be in (0, 1], got {self.target_density}"),
            (not 0.0 < self.fraction < 1.0, f"fraction must be in (0, 1), got {self.fraction}"),
            (self.scope not in ("global", "layer"), f"scope must be 'global' or 'layer', got {self.scope!r}"),
            (_REWIND.match(self.rewind) is None, f"rewind must look like '100it' or '1ep', got {self.rewind!r}"),
            (bool(unknown), f"unknown controls {unknown}; known: {CONTROLS}"),
            (len(set(self.controls)) != len(self.controls), f"controls repeat: {self.controls}"),
            (self.control_seed < 0, f"control_seed must be non-negative, got {self.control_seed}"),
        ) if bad]
        if problems:
            raise ValueError("invalid pruning hyperparameters: " + "; ".join(problems))

    @property
    def total_rounds(self) -> int:
        """``rounds``, or the first ``n`` with ``(1 - fraction)^n <= target_density`` when that is set."""
        if self.target_density is None:
            return self.rounds
        return max(0, math.ceil(math.log(self.target_density) / math.log(1.0 - self.fraction) - 1e-9))

    def round_density(self, round: int) -> float:
        """The target density ``(1 - fraction)^round`` of round ``round``."""
        return (1.0 - self.fraction) ** round

    def rewind_step(self, batches_per_epoch: int) -> int:
        """The rewind point in optimizer steps."""
        count, unit = _REWIND.match(self.rewind).groups()  # type: ignore[union-attr]
        return int(count) * (batches_per_epoch if unit == "ep" else 1)


@dataclass(frozen=True)
class PruningDistance:
    """Stability to pruning (Frankle et al. 2019): ``distance = ||m ⊙ (θ_sub − θ_dense)||_2`` over the kept
    coordinates of every parameter, and ``relative = distance / ||m ⊙ θ_dense||_2``."""
    distance: float
    relative: float


@dataclass(frozen=True)
class ControlResult:
    """A control of one round: its density, final train and test evaluation, and run directory
    (``None`` for the untrained supermask)."""
    name: str
    density: float
    train: Evaluation
    test: Evaluation
    run_dir: Path | None


@dataclass(frozen=True)
class RoundResult:
    """One IMP round (round 0 is the dense network).

    Attributes:
        round: ``n``. density: fraction of the prunable weights kept, ``kept / total``.
        layer_densities: the same per pruned parameter (empty for round 0).
        train, test: the final evaluation of the round's trained network.
        run_dir: its run directory. stability: stability to pruning (``None`` for round 0).
        controls: ``{name: ControlResult}``.
    """
    round: int
    density: float
    kept: int
    total: int
    layer_densities: dict[str, float]
    train: Evaluation
    test: Evaluation
    run_dir: Path
    stability: PruningDistance | None
    controls: dict[str, ControlResult]


@dataclass(frozen=True)
class IMPResult:
    """An IMP experiment: its directory, hyperparameters, rewind step and rounds (0 = dense) in order."""
    path: Path
    hparams: Hparams
    pruning: PruningHparams
    rewind_step: int
    rounds: tuple[RoundResult, ...]

    @property
    def dense(self) -> RoundResult:
        return self.rounds[0]

    @property
    def tickets(self) -> tuple[RoundResult, ...]:
        """The pruned rounds, 1 onwards."""
        return self.rounds[1:]


def round_dir(imp_dir: str | Path, round: int) -> Path:
    """The run directory of round ``round`` (``round_00`` is the dense network's, or only its ``round.json`` when
    the experiment shares a dense run: :func:`dense_run_dir`)."""
    return Path(imp_dir) / f"round_{round:02d}"


def control_dir(imp_dir: str | Path, round: int, name: str) -> Path:
    """The run directory of control ``name`` in round ``round``."""
    return round_dir(imp_dir, round) / "controls" / name


def run_masks(run_dir: str | Path) -> Masks | None:
    """The boolean masks a run was trained with (its ``masks.safetensors``), or ``None`` for a dense run."""
    path = Path(run_dir) / "masks.safetensors"
    return {k: v.bool() for k, v in load_checkpoint(path).model.items()} if path.is_file() else None


@torch.no_grad()
def pruning_distance(subnetwork: nn.Module, dense: nn.Module, masks: Mapping[str, Tensor]) -> PruningDistance:
    """Stability to pruning: ``||m ⊙ (θ_sub − θ_dense)||_2`` over all parameters (masks where given, every
    coordinate otherwise), and that distance over ``||m ⊙ θ_dense||_2``. Summed in float64 (float32 on MPS) on
    ``subnetwork``'s device, read once; neither model is moved."""
    dense_params = dict(dense.named_parameters())
    sums = []
    for name, p in subnetwork.named_parameters():
        wide = widest_float(p.device)
        q = dense_params[name].detach().to(device=p.device, dtype=wide)
        m = masks[name].to(device=p.device, dtype=wide) if name in masks else 1.0
        sums.append(torch.stack([((p.detach().to(wide) - q) * m).pow(2).sum(), (q * m).pow(2).sum()]))
    squared, norm = torch.stack(sums).sum(0).tolist()
    distance = math.sqrt(squared)
    return PruningDistance(distance=distance, relative=distance / math.sqrt(norm) if norm > 0 else math.inf)


def dense_run_dir(imp_dir: str | Path) -> Path:
    """The run directory of the dense network of the IMP experiment in ``imp_dir``: ``round_00``, or the shared
    dense run its ``imp.json`` names."""
    imp_dir = Path(imp_dir)
    path = imp_dir / "imp.json"
    shared = read_json(path, dict, fix=_FIX).get("dense") if path.is_file() else None
    return round_dir(imp_dir, 0) if shared is None else imp_dir / shared


def iterative_magnitude_pruning(hparams: Hparams, pruning: PruningHparams, imp_dir: str | Path, *,
                                dense: str | Path | None = None, device: str | torch.device | None = None,
                                progress: bool = True) -> IMPResult:
    """Run (or resume) IMP with rewinding and the chosen controls in ``imp_dir`` (see the module docstring).

    Args:
        hparams: the training run of every round (the dense run's; the rounds continue it from the rewind
            step). Its ``checkpoint_steps`` get the rewind step added.
        pruning: rounds or target density, fraction, scope, rewind point, controls.
        imp_dir: the experiment directory; created if needed.
        dense: a run directory for the dense network shared with other experiments of the same ``hparams``
            (trained there if it is not yet, replayed for a missing checkpoint at the rewind step); by default
            the dense network is trained in ``round_00``.
        device: where to train (default CUDA when available). progress: training progress bars.

    Returns:
        the :class:`IMPResult` of rounds ``0 … pruning.total_rounds``.

    Raises:
        RunConfigError: ``imp_dir`` holds an experiment with other training or pruning hyperparameters, or another
            shared dense run.
    """
    imp_dir = Path(imp_dir)
    shared = None if dense is None else Path(os.path.relpath(dense, imp_dir)).as_posix()
    dataset = load_dataset(hparams.data, **hparams.data_kwargs)
    batches_per_epoch = len(dataset.train[1]) // hparams.batch_size
    k = pruning.rewind_step(batches_per_epoch)
    if k >= hparams.total_steps(batches_per_epoch):
        raise ValueError(f"rewind step {k} is not before the end of training ({hparams.total_steps(batches_per_epoch)} "
                         f"steps)")
    _claim(imp_dir, hparams, pruning, k, shared)
    dense_dir = dense_run_dir(imp_dir)
    dense_hparams = dataclasses.replace(hparams, checkpoint_steps=tuple(sorted({*hparams.checkpoint_steps, k})))
    rounds = [_dense_round(dense_hparams, pruning, imp_dir, dense_dir, device, progress)]
    for n in range(1, pruning.total_rounds + 1):
        rounds.append(_pruned_round(n, hparams, pruning, imp_dir, dense_dir, k, device, progress))
    return IMPResult(path=imp_dir, hparams=hparams, pruning=pruning, rewind_step=k, rounds=tuple(rounds))


def load_imp(imp_dir: str | Path) -> IMPResult:
    """The finished rounds of the IMP experiment in ``imp_dir`` (those with a ``round.json``), without training."""
    imp_dir = Path(imp_dir)
    path = imp_dir / "imp.json"
    if not path.is_file():
        raise FileNotFoundError(f"{imp_dir} is not an IMP directory: it has no imp.json")
    saved = read_json(path, dict, fix=_FIX)
    rounds, dense_dir = [], dense_run_dir(imp_dir)
    while (round_dir(imp_dir, len(rounds)) / "round.json").is_file():
        rounds.append(_read_round(imp_dir, len(rounds), dense_dir))
    if not rounds:
        raise FileNotFoundError(f"{imp_dir} has no finished round (not even the dense run)")
    return IMPResult(path=imp_dir, hparams=Hparams.from_config(saved, path),
                     pruning=PruningHparams(**{**saved["pruning"], "controls": tuple(saved["pruning"]["controls"])}),
                     rewind_step=int(saved["rewind_step"]), rounds=tuple(rounds))


def _claim(imp_dir: Path, hparams: Hparams, pruning: PruningHparams, k: int, dense: str | None) -> None:
    """Write imp.json for a new experiment, or check that the one in ``imp_dir`` is the same, its shared dense run
    (``dense``, relative to ``imp_dir``) included (then record the latest rounds and controls asked for)."""
    path = imp_dir / "imp.json"
    if path.is_file():
        saved = read_json(path, dict, fix=_FIX)
        theirs_hp = Hparams.from_config(saved, path).identity()
        theirs_pr = {key: saved["pruning"].get(key) for key in pruning.identity()}
        differences = [f"{key}: {theirs.get(key)!r} in the directory, {value!r} asked"
                       for mine, theirs in ((hparams.identity(), theirs_hp), (pruning.identity(), theirs_pr))
                       for key, value in mine.items() if theirs.get(key) != value]
        if saved.get("dense") != dense:
            differences.append(f"dense run: {saved.get('dense') or 'round_00'} in the directory, {dense or 'round_00'} "
                               f"asked")
        if differences:
            raise RunConfigError(f"{imp_dir} holds another IMP experiment ({'; '.join(differences)}); use another "
                                 f"directory, or delete this one to start over")
    atomic_write_json(path, {"format": _FORMAT, "hparams": hparams.to_dict(), "pruning": pruning.to_dict(),
                             "rewind_step": k, "dense": dense})


def _dense_round(hparams: Hparams, pruning: PruningHparams, imp_dir: Path, dense_dir: Path,
                 device: str | torch.device | None, progress: bool) -> RoundResult:
    """Round 0: train the dense network in ``dense_dir`` (or resume it), summarised in ``round_00/round.json``."""
    run_dir = round_dir(imp_dir, 0)
    if (run_dir / "round.json").is_file():
        return _read_round(imp_dir, 0, dense_dir)
    phase("dense training", enabled=progress)
    result = train(hparams, dense_dir, device=device, progress=progress)
    named = dict(result.model.named_parameters())
    total = sum(named[n].numel() for n in prunable_names(result.model, exclude_output=pruning.exclude_output))
    record = {"round": 0, "density": 1.0, "kept": total, "total": total, "layer_densities": {},
              "train": dataclasses.asdict(result.train), "test": dataclasses.asdict(result.test), "stability": None,
              "controls": {}}
    atomic_write_json(run_dir / "round.json", record)
    return _read_round(imp_dir, 0, dense_dir)


def _pruned_round(n: int, hparams: Hparams, pruning: PruningHparams, imp_dir: Path, dense_dir: Path, k: int,
                  device: str | torch.device | None, progress: bool) -> RoundResult:
    """Round ``n``: its ticket (unless done) and the controls asked for that it lacks."""
    run_dir = round_dir(imp_dir, n)
    summary = run_dir / "round.json"
    record = read_json(summary, dict, fix=_FIX) if summary.is_file() else None
    if record is not None and all(c in record["controls"] for c in pruning.controls):
        return _read_round(imp_dir, n, dense_dir)
    phase(f"pruning round {n}/{pruning.total_rounds}", enabled=progress)
    if record is None:
        masks, record = _ticket(n, hparams, pruning, imp_dir, dense_dir, k, device, progress)
    else:
        masks = _saved_masks(run_dir)
    for name in pruning.controls:
        if name not in record["controls"]:
            record["controls"][name] = _control(name, n, hparams, pruning, imp_dir, dense_dir, k, masks, device,
                                                progress)
            atomic_write_json(summary, record)
    return _read_round(imp_dir, n, dense_dir)


def _ticket(n: int, hparams: Hparams, pruning: PruningHparams, imp_dir: Path, dense_dir: Path, k: int,
            device: str | torch.device | None, progress: bool) -> tuple[Masks, dict[str, Any]]:
    """Prune round ``n - 1``'s trained weights to round ``n``'s density, rewind, train; the masks and the
    round's summary record (also written to its round.json)."""
    run_dir, previous = round_dir(imp_dir, n), (round_dir(imp_dir, n - 1) if n > 1 else dense_dir)
    masks = prune_to_density(load_model(previous), pruning.round_density(n), run_masks(previous),
                             scope=pruning.scope, exclude_output=pruning.exclude_output)  # type: ignore[arg-type]
    result = train(hparams, run_dir, masks=masks, start=Start.rewind(dense_dir, k), device=device, progress=progress)
    kept, total = int(sum(int(m.sum()) for m in masks.values())), sum(m.numel() for m in masks.values())
    stability = pruning_distance(result.model, load_model(dense_dir), masks)   # the trained model stays on its device
    record = {"round": n, "density": kept / total, "kept": kept, "total": total,
              "layer_densities": layer_densities(masks), "train": dataclasses.asdict(result.train),
              "test": dataclasses.asdict(result.test), "stability": dataclasses.asdict(stability), "controls": {}}
    atomic_write_json(run_dir / "round.json", record)
    return masks, record


def _saved_masks(run_dir: Path) -> Masks:
    masks = run_masks(run_dir)
    if masks is None:
        raise FileNotFoundError(f"{run_dir} has a round.json but no masks.safetensors: the round is damaged; delete "
                                f"it to recompute it")
    return masks


def _control(name: str, n: int, hparams: Hparams, pruning: PruningHparams, imp_dir: Path, dense_dir: Path, k: int,
             masks: Masks, device: str | torch.device | None, progress: bool) -> dict[str, Any]:
    """Train (or, for the supermask, evaluate) control ``name`` of round ``n``; its summary record."""
    seed = _control_seed(pruning.control_seed, n, name)
    if name == "supermask":
        initial = load_run_checkpoint(Run(dense_dir).checkpoint_path(0))
        model = supermask(initial.model, masks)
        evaluations = {split: evaluate(model, initial.loss_fn, batches) for split, batches in initial.data.items()}
        return {"density": density(masks), "train": dataclasses.asdict(evaluations["train"]),
                "test": dataclasses.asdict(evaluations["test"]), "run_dir": None}
    rewound = load_model(dense_dir, k)
    if name == "reinit":
        start, control_masks = Start.rewind(reinitialize(init_model(hparams), seed, masks), k), masks
    elif name == "random":
        start, control_masks = Start.rewind(rewound, k), random_masks(masks, seed)
    else:
        start, control_masks = Start.rewind(signs_only(rewound, masks), k), masks
    run_dir = control_dir(imp_dir, n, name)
    result = train(hparams, run_dir, masks=control_masks, start=start, device=device, progress=progress)
    return {"density": density(control_masks), "train": dataclasses.asdict(result.train),
            "test": dataclasses.asdict(result.test), "run_dir": str(run_dir.relative_to(imp_dir))}


def _control_seed(base: int, n: int, name: str) -> int:
    """A seed for control ``name`` of round ``n``, distinct across rounds and controls."""
    return int(np.random.SeedSequence([base, n, CONTROLS.index(name)]).generate_state(1)[0])


def _read_round(imp_dir: Path, n: int, dense_dir: Path) -> RoundResult:
    record = read_json(round_dir(imp_dir, n) / "round.json", dict, fix=_FIX)
    stability = record["stability"]
    controls = {name: ControlResult(name=name, density=float(c["density"]), train=Evaluation(**c["train"]),
                                    test=Evaluation(**c["test"]),
                                    run_dir=None if c["run_dir"] is None else imp_dir / c["run_dir"])
                for name, c in record["controls"].items()}
    return RoundResult(round=n, density=float(record["density"]), kept=int(record["kept"]),
                       total=int(record["total"]), layer_densities=dict(record["layer_densities"]),
                       train=Evaluation(**record["train"]), test=Evaluation(**record["test"]),
                       run_dir=dense_dir if n == 0 else round_dir(imp_dir, n),
                       stability=None if stability is None else PruningDistance(**stability),
                       controls=controls)
