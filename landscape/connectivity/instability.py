"""Instability analysis (Frankle et al. 2020): from which step k is training stable to SGD noise?

Frankle, Dziugaite, Roy and Carbin (2020), "Linear Mode Connectivity and the Lottery Ticket Hypothesis",
ask whether two copies of a network, taken at step k of one run and trained to the end on different data
orders, land in one linearly connected minimum. For a run's hyperparameters and spawn steps k:

1. the *trunk* is trained once, from step 0 (or from ``start``) to K = max k, with a checkpoint (model
   and optimizer state) at every k; all k share it;
2. for each k and replicate r, two *children* continue the trunk's step-k checkpoint
   (:meth:`landscape.training.Start.spawn`: same weights, optimizer state, learning-rate schedule) with
   data-order seeds ``(s + 2r + 1, s + 2r + 2)``, s the run's ``data_order_seed``, and are trained to the
   run's last step T; nothing else differs between them;
3. the straight path θ(α) = θ_A + α (θ_B − θ_A) between the two final networks is evaluated on the train
   and test splits (:func:`landscape.connectivity.interpolation.interpolate`, BatchNorm statistics recomputed on the
   training split at every α by default), and its barriers are recorded:

   * the *instability* of Frankle et al., max_α E(α) − ½ (E(0) + E(1)), E the classification error
     (a fraction; figures and the CLI show it in %);
   * the barrier of Entezari et al. (2022), max_α [E(α) − ((1 − α) E(0) + α E(1))];

   both also for the loss (nats for cross-entropy). Training from k is *stable* when the barrier is
   within the noise of zero; Frankle et al. find it near zero from early in training on.

Replicates draw independent data orders from the same trunk; the mean and the sample standard deviation
(ddof = 1) over replicates are reported per k. (Frankle et al. also average over initialisations: run one
analysis per ``init_seed``.)

Subnetworks: with ``masks`` the trunk and both children train with the mask (pruned weights stay exactly
zero) and the path is masked too, so it stays in the subnetwork's subspace. A lottery ticket rewound to
step k₀ (weights of a dense run at k₀, fresh optimizer) is analysed with
``start=Start.rewind(dense_run, k0), masks=ticket, spawn_steps=[k0]``: the trunk is then the rewound,
masked network itself, and the children are two rewound copies trained on different data orders.

Layout of ``out_dir`` (every child a run directory, :mod:`landscape.foundation.runs`)::

    instability.json                the results (InstabilityResult), rewritten atomically after each pair
    trunk_000500/                   the trunk, trained to step 500
    k000100_r0a_seed1/              replicate 0, copy a, spawned at k = 100, data_order_seed 1
    k000100_r0b_seed2/              its partner

Resuming: re-running skips every (k, replicate) already in instability.json (measured the same way:
splits, α grid, state, BatchNorm; the file keeps only pairs measured the current way); unfinished
children resume from their last checkpoint, finished ones are only re-measured; the trunk is re-used, and an existing trunk at least K steps long serves smaller
spawn steps (the trainer replays it for checkpoints it lacks). Spawn steps beyond every existing trunk
train a new trunk to the new K. An ``out_dir`` holding an analysis of other hyperparameters, masks or
start is an error.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from landscape.connectivity.interpolation import (Barrier, Definition, InterpolationResult, Quantity, alpha_grid,
                                                  interpolate, load_run_checkpoint)
from landscape.data.loaders import BatchLoader
from landscape.data.registry import load_dataset
from landscape.foundation.devices import torch_device
from landscape.foundation.progress import Progress
from landscape.foundation.runs import atomic_write_json, read_json
from landscape.training import Hparams, Start, tensors_digest, train

SPLITS = ("train", "test")
RESULTS_FILE = "instability.json"
DEFINITIONS: tuple[Definition, ...] = ("frankle", "entezari")
QUANTITIES: tuple[Quantity, ...] = ("error", "loss")
_FORMAT = 1
_TRUNK = re.compile(r"^trunk_(\d+)$")
_IDENTITY_OF_START = ("step", "optimizer", "model_digest")


def child_seeds(data_order_seed: int, replicate: int) -> tuple[int, int]:
    """The data-order seeds of replicate ``replicate``'s two children: ``(s + 2r + 1, s + 2r + 2)``.

    Distinct between copies, between replicates, and from the trunk's seed ``s``; the loader hashes
    ``(seed, epoch)`` (:class:`landscape.data.BatchLoader`), so neighbouring seeds give independent orders.
    """
    if replicate < 0:
        raise ValueError(f"replicate must be non-negative, got {replicate}")
    return data_order_seed + 2 * replicate + 1, data_order_seed + 2 * replicate + 2


def child_name(step: int, replicate: int, copy: str, seed: int) -> str:
    """Run-directory name of a child: ``k<step>_r<replicate><copy>_seed<seed>``, e.g. ``k000100_r0a_seed1``."""
    return f"k{step:06d}_r{replicate}{copy}_seed{seed}"


@dataclass(frozen=True, eq=False)
class PairResult:
    """One replicate at one spawn step: the two children and the path between their final networks.

    Attributes:
        step: the spawn step k.
        replicate: the replicate index r.
        seeds: the children's data-order seeds (copy a, copy b).
        trunk: the trunk's directory name (in the analysis directory).
        children: the children's directory names (copy a, copy b).
        paths: ``{split: InterpolationResult}`` from child a (α = 0) to child b (α = 1).
    """
    step: int
    replicate: int
    seeds: tuple[int, int]
    trunk: str
    children: tuple[str, str]
    paths: Mapping[str, InterpolationResult]

    def barrier(self, split: str = "test", quantity: Quantity = "error",
                definition: Definition = "frankle") -> Barrier:
        """The barrier of the ``quantity`` curve on ``split`` (see
        :func:`landscape.connectivity.interpolation.barrier`)."""
        if split not in self.paths:
            raise KeyError(f"split {split!r} was not measured; measured: {sorted(self.paths)}")
        return self.paths[split].barrier_of(quantity, definition)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the curves, plus their barriers for reading (ignored by :meth:`from_dict`)."""
        barriers = {split: {f"{q}_{d}": dataclasses.asdict(self.barrier(split, q, d))
                            for q in QUANTITIES if q == "loss" or path.is_classification for d in DEFINITIONS}
                    for split, path in self.paths.items()}
        return {"step": self.step, "replicate": self.replicate, "seeds": list(self.seeds), "trunk": self.trunk,
                "children": list(self.children), "paths": {s: _path_to_dict(p) for s, p in self.paths.items()},
                "barriers": barriers}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PairResult:
        a, b = values["seeds"]
        ca, cb = values["children"]
        return cls(step=int(values["step"]), replicate=int(values["replicate"]), seeds=(int(a), int(b)),
                   trunk=str(values["trunk"]), children=(str(ca), str(cb)),
                   paths={s: _path_from_dict(s, values["paths"][s]) for s in SPLITS if s in values["paths"]})


@dataclass(frozen=True, eq=False)
class InstabilityResult:
    """Barriers of an instability analysis per spawn step and replicate, with their mean and spread.

    Attributes:
        hparams: the run's hyperparameters (the children's, but for their data-order seeds).
        masks: ``{"digest", "density"}`` of the subnetwork's masks, or ``None`` for a dense network.
        start: the identity of the trunk's start (:meth:`landscape.training.Start.identity`), or ``None``
            for step 0.
        pairs: one :class:`PairResult` per (spawn step, replicate), sorted.
    """
    hparams: Hparams
    masks: dict[str, Any] | None
    start: dict[str, Any] | None
    pairs: tuple[PairResult, ...]

    @property
    def steps(self) -> list[int]:
        """The spawn steps k, ascending."""
        return sorted({p.step for p in self.pairs})

    @property
    def splits(self) -> list[str]:
        """The data splits measured (those of every pair)."""
        return [s for s in SPLITS if self.pairs and all(s in p.paths for p in self.pairs)]

    @property
    def is_classification(self) -> bool:
        """Whether error curves exist (class-label targets)."""
        return bool(self.pairs) and all(path.is_classification for p in self.pairs for path in p.paths.values())

    def default_quantity(self) -> Quantity:
        """``"error"`` for classification, else ``"loss"``."""
        return "error" if self.is_classification else "loss"

    def barriers(self, split: str = "test", quantity: Quantity | None = None,
                 definition: Definition = "frankle") -> np.ndarray:
        """Barrier heights as a ``(len(steps), replicates)`` array: row i is spawn step ``steps[i]``, column r
        replicate r, NaN where that pair was not measured. ``quantity`` defaults to :meth:`default_quantity`;
        error barriers are fractions, loss barriers in the loss's units."""
        quantity = quantity or self.default_quantity()
        steps = self.steps
        width = 1 + max((p.replicate for p in self.pairs), default=-1)
        out = np.full((len(steps), width), np.nan)
        for p in self.pairs:
            out[steps.index(p.step), p.replicate] = p.barrier(split, quantity, definition).height
        return out

    def mean(self, split: str = "test", quantity: Quantity | None = None,
             definition: Definition = "frankle") -> np.ndarray:
        """Mean barrier over replicates per spawn step, shape ``(len(steps),)``."""
        values = self.barriers(split, quantity, definition)
        counts = np.sum(~np.isnan(values), axis=1)
        return np.nansum(values, axis=1) / np.maximum(counts, 1)

    def std(self, split: str = "test", quantity: Quantity | None = None,
            definition: Definition = "frankle") -> np.ndarray:
        """Sample standard deviation (ddof = 1) of the barrier over replicates per spawn step; NaN for a step
        with fewer than two replicates."""
        values = self.barriers(split, quantity, definition)
        counts = np.sum(~np.isnan(values), axis=1)
        squares = np.nansum((values - self.mean(split, quantity, definition)[:, None]) ** 2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts >= 2, np.sqrt(squares / (counts - 1)), np.nan)

    def summary(self) -> list[dict[str, Any]]:
        """One row per (split, quantity, definition, step): ``mean``, ``std`` (``None`` for one replicate)
        and the replicates' ``values``."""
        rows = []
        quantities = [q for q in QUANTITIES if q == "loss" or self.is_classification]
        for split in self.splits:
            for quantity in quantities:
                for definition in DEFINITIONS:
                    values = self.barriers(split, quantity, definition)
                    mean, std = self.mean(split, quantity, definition), self.std(split, quantity, definition)
                    for i, step in enumerate(self.steps):
                        rows.append({"split": split, "quantity": quantity, "definition": definition, "step": step,
                                     "mean": float(mean[i]), "std": None if np.isnan(std[i]) else float(std[i]),
                                     "values": [float(v) for v in values[i] if not np.isnan(v)]})
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the ``summary`` is for reading; :meth:`from_dict` recomputes it)."""
        return {"format": _FORMAT, "analysis": "instability", "hparams": self.hparams.to_dict(),
                "masks": self.masks, "start": self.start, "pairs": [p.to_dict() for p in self.pairs],
                "summary": self.summary()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> InstabilityResult:
        if values.get("analysis") != "instability" or values.get("format") != _FORMAT:
            raise ValueError(f"not an instability result of format {_FORMAT} (analysis "
                             f"{values.get('analysis')!r}, format {values.get('format')!r})")
        pairs = sorted((PairResult.from_dict(p) for p in values["pairs"]), key=lambda p: (p.step, p.replicate))
        return cls(hparams=Hparams.from_dict(values["hparams"]), masks=values["masks"], start=values["start"],
                   pairs=tuple(pairs))

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` atomically; returns ``path``."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> InstabilityResult:
        """Read a result written by :meth:`save` (e.g. ``<out_dir>/instability.json``)."""
        return cls.from_dict(read_json(path, dict, fix="it is not an instability.json written by landscape; move "
                                                         "it away or delete it to measure again"))


def instability(hparams: Hparams, spawn_steps: Iterable[int], out_dir: str | Path, *,
                replicates: int | Sequence[tuple[int, int]] = 2,
                masks: Mapping[str, Tensor] | None = None,
                start: Start | None = None,
                splits: Sequence[str] = SPLITS,
                points: int = 31,
                alphas: Sequence[float] | np.ndarray | None = None,
                state: Literal["full", "parameters"] = "full",
                batchnorm: Literal["reset", "interpolate"] = "reset",
                device: str | torch.device | None = None,
                progress: bool = True) -> InstabilityResult:
    """Instability analysis of ``hparams`` at ``spawn_steps`` (see the module docstring), resumable in ``out_dir``.

    Args:
        hparams: the run; its ``data_order_seed`` drives the trunk, its ``steps`` the children's length.
        spawn_steps: the steps k at which the children are spawned, between the start step and the run's
            last step (duplicates ignored).
        out_dir: the analysis directory (trunk, children, instability.json); created if needed.
        replicates: the number of replicates (seeds from :func:`child_seeds`), or the seed pairs themselves,
            one ``(seed_a, seed_b)`` per replicate (equal seeds make a determinism check: zero barrier).
        masks: ``{parameter name: 0/1 tensor}`` of a subnetwork, applied in the trunk, the children and on
            the path.
        start: where the trunk starts (e.g. ``Start.rewind(dense_run, k0)`` for a lottery ticket); step 0
            from ``init_seed`` by default.
        splits: the data splits to measure the path on, among ``"train"`` and ``"test"``.
        points, alphas: the α grid (:func:`landscape.connectivity.interpolation.alpha_grid`).
        state, batchnorm: what is interpolated and how BatchNorm statistics are set
            (:func:`landscape.connectivity.interpolation.interpolate`; reset uses the training split).
        device: where to train and measure; CUDA when available by default.
        progress: show progress bars.

    Returns:
        An :class:`InstabilityResult` with the pairs of ``spawn_steps`` x replicates (instability.json also
        keeps the pairs of earlier calls with other steps or replicates, when measured the same way).

    Raises:
        ValueError: a spawn step outside [start step, last step], bad replicates or splits, or ``out_dir``
            holding an analysis of another run.
    """
    out_dir = Path(out_dir)
    steps = _spawn_steps(hparams, spawn_steps, start)
    seed_pairs = _seed_pairs(hparams, replicates)
    splits = _checked_splits(splits)
    grid = alpha_grid(points, alphas)
    masks_id, start_id = _masks_identity(masks), _start_identity(start)
    results_path = out_dir / RESULTS_FILE
    pairs = {(p.step, p.replicate): p for p in _recorded(results_path, hparams, masks_id, start_id)
             if _measured_as(p, splits, grid, state, batchnorm)}
    wanted = [(k, r, seeds) for k in steps for r, seeds in enumerate(seed_pairs)]
    pending = [(k, r, seeds) for k, r, seeds in wanted if (k, r) not in pairs or pairs[(k, r)].seeds != seeds]
    device = torch_device(device)

    if pending:
        trunk_dir, trunk_hparams = _trunk(out_dir, hparams, steps)
        train(trunk_hparams, trunk_dir, masks=masks, start=start, device=device, progress=progress)
        spawns: dict[int, Start] = {}
        bar = Progress("instability", len(pending), unit="pair", enabled=progress)
        for k, r, seeds in pending:
            spawn = spawns.setdefault(k, Start.spawn(trunk_dir, k))
            children = []
            for copy, seed in zip("ab", seeds):
                child = out_dir / child_name(k, r, copy, seed)
                train(dataclasses.replace(hparams, data_order_seed=seed), child, masks=masks, start=spawn,
                      device=device, progress=progress)
                children.append(child)
            paths = _measure(children[0], children[1], masks, splits, grid, state, batchnorm, device)
            pair = PairResult(step=k, replicate=r, seeds=seeds, trunk=trunk_dir.name,
                              children=(children[0].name, children[1].name), paths=paths)
            pairs[(k, r)] = pair
            _result(hparams, masks_id, start_id, pairs.values()).save(results_path)
            bar.update(1)
            bar.set_postfix({"last": f"k={k} r={r}: {_describe(pair)}"})
        bar.close()
    return _result(hparams, masks_id, start_id, (pairs[(k, r)] for k, r, _ in wanted))


def _result(hparams: Hparams, masks_id: dict[str, Any] | None, start_id: dict[str, Any] | None,
            pairs: Iterable[PairResult]) -> InstabilityResult:
    return InstabilityResult(hparams=hparams, masks=masks_id, start=start_id,
                             pairs=tuple(sorted(pairs, key=lambda p: (p.step, p.replicate))))


def _describe(pair: PairResult) -> str:
    split = "test" if "test" in pair.paths else next(iter(pair.paths))
    path = pair.paths[split]
    if path.is_classification:
        return f"{split} error barrier {100 * pair.barrier(split, 'error').height:.2f}%"
    return f"{split} loss barrier {pair.barrier(split, 'loss').height:.4g}"


def _spawn_steps(hparams: Hparams, spawn_steps: Iterable[int], start: Start | None) -> list[int]:
    """Sorted distinct spawn steps, checked against the start step and the run's last step."""
    steps = sorted({int(k) for k in spawn_steps})
    if not steps:
        raise ValueError("no spawn steps given")
    dataset = load_dataset(hparams.data, **hparams.data_kwargs)
    total = hparams.total_steps(BatchLoader(*dataset.train, hparams.batch_size, hparams.data_order_seed)
                                .batches_per_epoch)
    first = start.step if start is not None else 0
    outside = [k for k in steps if not first <= k <= total]
    if outside:
        raise ValueError(f"spawn steps {outside} are outside [{first}, {total}] (the start step and the "
                         f"run's last step)")
    return steps


def _seed_pairs(hparams: Hparams, replicates: int | Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    if isinstance(replicates, int):
        if replicates < 1:
            raise ValueError(f"replicates must be at least 1, got {replicates}")
        return [child_seeds(hparams.data_order_seed, r) for r in range(replicates)]
    pairs = [(int(a), int(b)) for a, b in replicates]
    if not pairs or any(s < 0 for pair in pairs for s in pair):
        raise ValueError(f"replicates must be a positive count or non-negative seed pairs, got {replicates!r}")
    return pairs


def _checked_splits(splits: Sequence[str]) -> tuple[str, ...]:
    if isinstance(splits, str):
        splits = (splits,)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be among {SPLITS}, got {tuple(splits)}")
    return tuple(s for s in SPLITS if s in splits)


def _masks_identity(masks: Mapping[str, Tensor] | None) -> dict[str, Any] | None:
    if not masks:
        return None
    kept = {k: torch.as_tensor(v).bool() for k, v in masks.items()}
    return {"digest": tensors_digest(kept),
            "density": float(sum(int(v.sum()) for v in kept.values()) / sum(v.numel() for v in kept.values()))}


def _start_identity(start: Start | None) -> dict[str, Any] | None:
    return None if start is None else start.identity()


def _recorded(path: Path, hparams: Hparams, masks_id: dict[str, Any] | None,
              start_id: dict[str, Any] | None) -> tuple[PairResult, ...]:
    """The pairs recorded at ``path`` (none if it does not exist), after checking they are of the same runs."""
    if not path.is_file():
        return ()
    recorded = InstabilityResult.load(path)
    differences = []
    if recorded.hparams.identity() != hparams.identity():
        theirs, mine = recorded.hparams.identity(), hparams.identity()
        differences += [f"{k}: {theirs.get(k)!r} there, {mine[k]!r} asked" for k in mine if theirs.get(k) != mine[k]]
    if (recorded.masks or {}).get("digest") != (masks_id or {}).get("digest"):
        differences.append(f"masks: {recorded.masks} there, {masks_id} asked")
    if any((recorded.start or {}).get(f) != (start_id or {}).get(f) for f in _IDENTITY_OF_START):
        differences.append(f"start: {recorded.start} there, {start_id} asked")
    if differences:
        raise ValueError(f"{path.parent} holds an instability analysis of other runs ({'; '.join(differences)}); "
                         f"use another directory")
    return recorded.pairs


def _measured_as(pair: PairResult, splits: Sequence[str], grid: np.ndarray, state: str, batchnorm: str) -> bool:
    """Whether ``pair`` was measured on these splits, α grid, state and BatchNorm handling."""
    return (set(pair.paths) == set(splits)
            and all(np.array_equal(p.alphas, grid) and p.state == state and p.batchnorm == batchnorm
                    for p in pair.paths.values()))


def _trunk(out_dir: Path, hparams: Hparams, steps: Sequence[int]) -> tuple[Path, Hparams]:
    """The trunk's directory and hyperparameters: the shortest existing trunk reaching max(steps), or a new
    one of exactly that length, checkpointing at every spawn step."""
    lengths = [int(m.group(1)) for p in (out_dir.iterdir() if out_dir.is_dir() else ())
               if p.is_dir() and (m := _TRUNK.match(p.name))]
    length = min((n for n in lengths if n >= steps[-1]), default=steps[-1])
    checkpoints = sorted({s for s in hparams.checkpoint_steps if s <= length} | set(steps))
    return (out_dir / f"trunk_{length:06d}",
            dataclasses.replace(hparams, steps=f"{length}it", checkpoint_steps=tuple(checkpoints)))


def _measure(dir_a: Path, dir_b: Path, masks: Mapping[str, Tensor] | None, splits: Sequence[str], grid: np.ndarray,
             state: str, batchnorm: str, device: torch.device) -> dict[str, InterpolationResult]:
    """The path between two children's final checkpoints on ``splits``, masked by ``masks`` (BatchNorm reset on
    the training split)."""
    a, b = load_run_checkpoint(dir_a), load_run_checkpoint(dir_b)
    return interpolate(a.model.to(device), b.model, a.loss_fn, {s: a.data[s] for s in splits}, alphas=grid,
                       state=state, batchnorm=batchnorm, bn_data=a.data["train"], masks=masks)


def _path_to_dict(path: InterpolationResult) -> dict[str, Any]:
    return {"alphas": path.alphas.tolist(), "loss": path.loss.tolist(),
            "error": None if path.error is None else path.error.tolist(), "state": path.state,
            "batchnorm": path.batchnorm}


def _path_from_dict(name: str, values: Mapping[str, Any]) -> InterpolationResult:
    return InterpolationResult(alphas=np.asarray(values["alphas"], dtype=float),
                               loss=np.asarray(values["loss"], dtype=float),
                               error=None if values["error"] is None else np.asarray(values["error"], dtype=float),
                               name=name, state=values["state"], batchnorm=values["batchnorm"])
