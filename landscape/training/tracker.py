"""Curvature instruments during training, on a schedule, without changing the training.

    tracker = Tracker(loss_fn, (x_eval, y_eval), instruments=("top_eigen", "trace"), schedule=200,
                      model=model, run="runs/x")
    for step in range(steps):
        ...; optimizer.step()
        tracker.step(step + 1)                       # or: train(hparams, run_dir, callbacks=[tracker])

At every scheduled step the tracker builds a curvature operator (:class:`~landscape.operators.Hessian` by
default) on a fixed evaluation batch or data set at the current weights, runs the chosen instruments and
appends one record per instrument to the run's metrics.jsonl::

    {"step": 200, "instrument": "top_eigen", "eigenvalues": [...], "residuals": [...], "converged": true,
     "warm": true, "matvecs": 17, "seconds": 0.21}

Instruments and the values of their records (errors in brackets):

* ``top_eigen``, ``bottom_eigen``: ``eigenvalues`` (``residuals``), largest / most negative first
  (:func:`landscape.linalg.eigs`);
* ``trace``: ``value`` (``stderr``): the shared top eigenvalues plus Hutchinson on the deflated rest
  (:func:`landscape.instruments.deflation.deflated_trace`);
* ``density``: the SLQ ``nodes`` and ``weights`` of each run, ``negative_fraction`` (``negative_fraction_error``),
  the SLQ mass below 0, with ``negative_fraction_stderr``, ``negative_fraction_quadrature_error``,
  ``negative_fraction_reliable`` and ``negative_fraction_reason`` (:func:`landscape.linalg.density`);
* ``saddle_index``: ``fraction`` (``error``), ``count``, ``threshold``, ``method``, with ``stderr``,
  ``quadrature_error``, ``reliable`` and ``reason`` (:func:`landscape.instruments.saddle_index`);
* ``fisher_trace``: ``value`` (``stderr``), ``kind`` (:func:`landscape.instruments.fisher_trace`);
* ``flatness``: ``lambda_max`` (``lambda_max_error``), ``trace``, ``frobenius``, ``occam``, ``effective_dim``
  (each with ``<name>_stderr``) (:func:`landscape.instruments.flatness`);
* ``subspace_overlap``: ``fraction`` (``error``), ``gradient_norm`` (:func:`landscape.instruments.subspace_overlap`);
* ``block_spectra``: per block of the ``blocks`` partition (layer, transformer, parameter), its ``names``,
  ``top_eigenvalues`` (the largest), ``traces`` (``trace_stderrs``) and the full ``blocks`` (eigenvalues,
  residuals, density nodes and weights) (:func:`landscape.instruments.block_spectra`, Hessian blocks).

``matvecs`` counts the curvature products of the record's own work: the top and bottom eigenpairs are
computed once per measurement (for the largest ``k`` any instrument asks) and shared, counted in the record
of the first instrument that needed them.

Guarantees:

* **Untouched training.** Each measurement runs inside :func:`landscape.foundation.state.untouched` with the model in
  eval mode: the modules' train/eval modes, every ``.grad``, and the Python, NumPy and torch random states
  are restored; operators evaluate functional copies of the parameters, and the optimizer is never seen.
  A tracked run therefore ends bit-identical to an untracked one.
* **Warm starts.** Each eigen solve starts from the previous measurement's eigenvectors (when
  ``warm_start``), so that consecutive solves cost fewer products.
* **Resumable.** Before measuring, the tracker reads which ``(step, instrument)`` records of its own
  ``name`` the metrics file already holds (on first use, and again whenever the step goes backwards, as it
  does when the trainer resumes a run and drops the records after its checkpoint) and measures only the
  missing ones: a resumed tracked run repeats no measurement and loses none. As a trainer callback, its
  warm-start eigenvectors are saved with every checkpoint (:meth:`Tracker.state_dict`) and restored on
  resume, so a resumed run records exactly (bit for bit, matvec counts included) what an uninterrupted one
  records; only the ``seconds`` of each record differ.
* **Several trackers, one run.** Trackers that write to the same run with different evaluation data or
  settings (say the empirical and the true Fisher trace) each need a ``name``: every record carries its
  tracker's name (``"tracker"``, absent for the unnamed default), resumption keys on it, and
  :func:`landscape.plots.tracking.plot_tracking` draws one curve per name.
* **Any logger.** Records also go to the tracker's ``sinks`` (:mod:`landscape.training.sinks`): TensorBoard,
  a framework's own logger (:mod:`landscape.integrations`).
* **Its cost said.** :meth:`Tracker.cost_summary` gives the seconds, share, matvecs and measurements of each
  instrument (the trainer prints it at the end of a run when it shows progress), and ``saddle_index`` warns once,
  with its measured share, when it takes more than half the tracker's time (it can multiply a run's time).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape.data.registry import load_dataset
from landscape.foundation.runs import FileFormatError, Run
from landscape.foundation.settings import Settings, setting
from landscape.foundation.state import untouched
from landscape.instruments import block_spectra, fisher_trace, flatness, saddle_index, subspace_overlap
from landscape.instruments.blocks import PARTITIONS
from landscape.instruments.deflation import deflated_trace
from landscape.linalg import Eigenpairs, density, eigs
from landscape.operators import GGN, CurvatureOperator, Hessian
from landscape.operators.functional import LossFn
from landscape.training.hparams import Hparams
from landscape.training.sinks import Sink

INSTRUMENTS = ("top_eigen", "bottom_eigen", "trace", "density", "saddle_index", "fisher_trace", "flatness",
               "subspace_overlap", "block_spectra")
DEFAULT_INSTRUMENTS = ("top_eigen", "trace", "fisher_trace")
CURVATURES = {"hessian": Hessian, "ggn": GGN}
SADDLE_COST_SHARE = 0.5   # saddle_index warns once when it takes more than this share of the tracker's time


@dataclass(frozen=True)
class TrackerSettings(Settings):
    """Budgets and options of the tracked instruments (defaults chosen to keep tracking cheap; see
    ``analyses/benchmark_instruments.py`` for their cost on the MNIST-1D CNN run)."""
    top_k: int = setting(5, "largest eigenpairs of top_eigen")
    bottom_k: int = setting(5, "smallest eigenpairs of bottom_eigen")
    eig_tol: float = setting(1e-3, "eigenvalue tolerance relative to |lambda|max: converged certifies each of the "
                                   "k extreme eigenvalues within eig_tol*|lambda|max (bottom_eigen values near "
                                   "-5e-4|lambda|max need 1e-5)")
    eig_max_matvecs: int = setting(500, "matvec budget of each eigen solve")
    trace_matvecs: int = setting(12, "Hutchinson probes of the trace, after deflating the top eigenpairs")
    density_steps: int = setting(40, "Lanczos steps per SLQ run (density, flatness, saddle_index)")
    density_runs: int = setting(4, "SLQ runs (density, flatness, saddle_index)")
    saddle_tol: float = setting(1e-3, "saddle-index threshold relative to |lambda|max")
    saddle_k: int = setting(10, "eigenpairs per end computed and deflated by saddle_index")
    saddle_method: str = setting("deflated-slq", "estimator of saddle_index")
    fisher_kind: str = setting("empirical", "fisher_trace kind: empirical or true")
    fisher_samples: int = setting(1, "labels drawn per input for the true Fisher")
    flatness_k: int = setting(5, "top eigenpairs deflated by flatness")
    flatness_delta: float = setting(1e-3, "prior precision of the Occam term")
    flatness_z: float = setting(1.0, "scale of the effective dimensionality")
    overlap_k: int = setting(4, "top eigenvectors of subspace_overlap (k+1 are computed, for its error bound)")
    blocks: str = setting("layer", "block partition of block_spectra: layer, transformer or parameter")
    curvature: str = setting("hessian", "operator: hessian or ggn")
    method: str = setting("reverse", "product method of the operator (reverse, forward, auto)")
    warm_start: bool = setting(True, "start eigen solves from the previous eigenvectors")
    seed: int = setting(0, "seed of every probe and random start")

    def __post_init__(self) -> None:
        if self.curvature not in CURVATURES:
            raise ValueError(f"curvature must be one of {tuple(CURVATURES)}, got {self.curvature!r}")
        if self.blocks not in PARTITIONS:
            raise ValueError(f"blocks must be one of {PARTITIONS}, got {self.blocks!r}")


def log_steps(last: int, count: int) -> tuple[int, ...]:
    """Step 0 and about ``count`` steps log-spaced from 1 to ``last`` (rounded, duplicates dropped)."""
    if last < 1 or count < 1:
        raise ValueError(f"last and count must be positive, got {last}, {count}")
    spaced = torch.logspace(0, math.log10(last), count, dtype=torch.float64).round().long().tolist()
    return tuple(sorted({0, *spaced, last}))


class Tracker:
    """Runs curvature instruments on a schedule during training (see the module docstring).

    Args:
        loss_fn: mean-reduced ``loss_fn(outputs, targets)``.
        data: the fixed evaluation data: one ``(inputs, targets)`` batch or a re-iterable of batches
            (moved to the model's device and dtype at each measurement).
        instruments: names from ``INSTRUMENTS``.
        schedule: measure every ``schedule`` steps (an int; step 0 included) or at the listed steps (e.g.
            :func:`log_steps`).
        model: the model measured by :meth:`step` (a trainer callback gets it as an argument instead).
        run: where records go: a :class:`~landscape.foundation.runs.Run`, a run directory, or a ``.jsonl`` file; as
            a trainer callback, ``None`` means the trainer's run.
        sinks: more receivers of every record (:class:`~landscape.training.sinks.Sink`: a TensorBoard
            writer, a framework's logger), written after the run; with sinks and no run, nothing is written
            to disk and resumption is off.
        settings: budgets and options (:class:`TrackerSettings`).
        dtype: dtype of the products (default: the model's).
        name: tells this tracker's records from another's in the same run (see "Several trackers").
    """

    def __init__(self, loss_fn: LossFn, data: Any, *, instruments: Sequence[str] = DEFAULT_INSTRUMENTS,
                 schedule: int | Iterable[int] = 200, model: nn.Module | None = None,
                 run: Run | str | Path | None = None, settings: TrackerSettings = TrackerSettings(),
                 dtype: torch.dtype | None = None, name: str | None = None, sinks: Sequence[Sink] = ()):
        unknown = [name for name in instruments if name not in INSTRUMENTS]
        if unknown or not instruments:
            raise ValueError(f"unknown instruments {unknown}; choose from {', '.join(INSTRUMENTS)}")
        if isinstance(schedule, int):
            if schedule < 1:
                raise ValueError(f"schedule must be a positive period or a list of steps, got {schedule}")
            self._due: Callable[[int], bool] = lambda step, period=schedule: step % period == 0
        else:
            chosen = frozenset(int(s) for s in schedule)
            self._due = chosen.__contains__
        self.loss_fn = loss_fn
        self.data = data
        self.instruments = tuple(dict.fromkeys(instruments))
        self.model = model
        self.settings = settings
        self.dtype = dtype
        self.name = name or None
        self._sink = _sink(run) if run is not None else None
        self.sinks = tuple(sinks)
        lacking = [type(s).__name__ for s in self.sinks if not isinstance(s, Sink)]
        if lacking:
            raise TypeError(f"sinks need a log(record) method; {', '.join(lacking)} has none")
        self._seen: tuple[Path | None, int] = (None, -1)   # (metrics file read, last step asked)
        self._measured: set[tuple[int, str]] = set()
        self._warm: dict[str, Tensor] = {}
        self._restored = False   # _warm came from load_state_dict: keep it when the records are re-read
        self._cost: dict[str, _Cost] = {}   # per instrument, the measurements of this tracker object
        self._saddle_warned = False

    @classmethod
    def for_hparams(cls, hparams: Hparams, *, samples: int = 128, **kwargs: Any) -> Tracker:
        """A tracker for :func:`landscape.training.train` runs of ``hparams``: the evaluation batch is the
        first ``samples`` training examples of the run's data set, the loss its natural one; ``kwargs`` as
        for the constructor (``instruments``, ``schedule``, ``settings``)."""
        dataset = load_dataset(hparams.data, **hparams.data_kwargs)
        x, y = dataset.train
        return cls(dataset.loss_fn(), (x[:samples], y[:samples]), dtype=hparams.torch_dtype, **kwargs)

    def due(self, step: int) -> bool:
        """Whether ``step`` is on the schedule."""
        return self._due(step)

    def step(self, step: int, model: nn.Module | None = None) -> list[dict[str, Any]]:
        """Call after the optimizer update that produced ``step``: measures if the step is due and not yet
        recorded; returns the records written."""
        model = model if model is not None else self.model
        if model is None:
            raise ValueError("no model: pass Tracker(model=...) or tracker.step(step, model)")
        return self._measure(model, step, self._sink)

    def __call__(self, model: nn.Module, step: int, run: Run | None) -> list[dict[str, Any]]:
        """The trainer-callback form (``train(..., callbacks=[tracker])``; the integrations' callbacks call it
        with their framework's run directory): returns the records written."""
        return self._measure(model, step, self._sink if self._sink is not None else run)

    @property
    def state_key(self) -> str:
        """The key the trainer saves this tracker's state under in a checkpoint (unique per tracker name)."""
        return f"tracker:{self.name}" if self.name else "tracker"

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to measure exactly as an uninterrupted one: the warm-start eigenvectors
        of the last measurement (``{"warm": {"largest" | "smallest": (n, k) tensor}}``). The trainer saves it
        with every checkpoint (see "Resumable" in the module docstring)."""
        return {"warm": dict(self._warm)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state``: the next measurement starts its eigen solves from the
        saved eigenvectors, after re-reading which records the run already holds."""
        self._warm = dict(state["warm"])
        self._seen = (None, -1)
        self._restored = True

    def _measure(self, model: nn.Module, step: int, sink: Run | _JsonlFile | None) -> list[dict[str, Any]]:
        if sink is None and not self.sinks:
            raise ValueError("nowhere to write: pass Tracker(run=...) or Tracker(sinks=[...])")
        if not self.due(step):
            return []
        if sink is not None:
            self._refresh(sink.metrics_path, step)
        receivers = ([sink] if sink is not None else []) + list(self.sinks)
        wanted = [name for name in self.instruments if (step, name) not in self._measured]
        if not wanted:
            return []
        records = []
        with untouched(model, training=False):
            session = _Measurement(self, model)
            for name in wanted:
                began, before = time.perf_counter(), session.matvecs
                values = _MEASURES[name](session)
                record = {"step": step, "instrument": name, **({"tracker": self.name} if self.name else {}),
                          **values, "matvecs": session.matvecs - before, "seconds": time.perf_counter() - began}
                for receiver in receivers:
                    receiver.log(record)
                self._measured.add((step, name))
                records.append(record)
                self._cost.setdefault(name, _Cost()).add(record["seconds"], record["matvecs"])
        self._warm.update(session.warm)
        self._warn_if_saddle_dominates(step)
        return records

    def cost_summary(self) -> str | None:
        """One line: the wall seconds (share of the tracker's), matvecs and measurements of each instrument this
        tracker object measured, costliest first (shared eigenpairs count for the first instrument that needed
        them); ``None`` before any measurement."""
        if not self._cost:
            return None
        total = sum(c.seconds for c in self._cost.values())
        parts = [f"{name} {c.seconds:.1f} s ({c.seconds / total if total > 0 else 0:.0%}, {c.matvecs} matvecs, "
                 f"{c.measurements}x)" for name, c in sorted(self._cost.items(), key=lambda kv: -kv[1].seconds)]
        return f"tracker{f' {self.name}' if self.name else ''} cost {total:.1f} s: " + "; ".join(parts)

    def _warn_if_saddle_dominates(self, step: int) -> None:
        """Warn once when saddle_index, beside other instruments, takes over ``SADDLE_COST_SHARE`` of the time."""
        saddle = self._cost.get("saddle_index")
        total = sum(c.seconds for c in self._cost.values())
        if self._saddle_warned or saddle is None or len(self._cost) < 2 or total <= 0:
            return
        share = saddle.seconds / total
        if share > SADDLE_COST_SHARE:
            self._saddle_warned = True
            warnings.warn(f"saddle_index took {share:.0%} of the tracker's time by step {step} ({saddle.seconds:.3g} "
                          f"of {total:.3g} s) and will multiply the run's time: track it at fewer steps (a second "
                          f"Tracker with a sparser schedule), lower density_steps, density_runs or saddle_k, or "
                          f"measure it after training with `landscape analyze`", stacklevel=4)

    def _refresh(self, path: Path, step: int) -> None:
        """Re-read the measured ``(step, instrument)`` pairs on first use, for another file, or when the step
        goes backwards (a resumed run, whose records after its checkpoint were dropped)."""
        last_path, last_step = self._seen
        if path != last_path or step <= last_step:
            self._measured = {(r["step"], r["instrument"]) for r in _records(path)
                              if r.get("instrument") in INSTRUMENTS and isinstance(r.get("step"), int)
                              and r.get("tracker") == self.name}
            if not self._restored:
                self._warm.clear()
        self._seen = (path, step)
        self._restored = False


@dataclass
class _Cost:
    """What one instrument has cost a tracker: wall seconds, curvature products and measurements."""
    seconds: float = 0.0
    matvecs: int = 0
    measurements: int = 0

    def add(self, seconds: float, matvecs: int) -> None:
        self.seconds += seconds
        self.matvecs += matvecs
        self.measurements += 1


class _Measurement:
    """One measurement: the operator (built on first use), and the shared top and bottom eigenpairs."""

    def __init__(self, tracker: Tracker, model: nn.Module):
        self.tracker = tracker
        self.settings = tracker.settings
        self.model = model
        self.warm: dict[str, Tensor] = {}
        self._op: CurvatureOperator | None = None
        self.block_matvecs = 0
        self._pairs: dict[str, tuple[Eigenpairs, bool]] = {}
        s = self.settings
        wants = set(tracker.instruments)
        asked = {"largest": {"top_eigen": s.top_k, "trace": s.top_k, "saddle_index": s.saddle_k,
                             "flatness": s.flatness_k, "subspace_overlap": s.overlap_k + 1},
                 "smallest": {"bottom_eigen": s.bottom_k, "saddle_index": s.saddle_k}}
        self._k = {end: max((k for name, k in ks.items() if name in wants), default=1) for end, ks in asked.items()}
        # a Ritz value must fall on the right side of the saddle threshold: solve ten times tighter than it
        self._tol = min(s.eig_tol, s.saddle_tol / 10) if "saddle_index" in wants else s.eig_tol

    @property
    def op(self) -> CurvatureOperator:
        if self._op is None:
            kind = CURVATURES[self.settings.curvature]
            self._op = kind(self.model, self.tracker.loss_fn, self.tracker.data, dtype=self.tracker.dtype,
                            method=self.settings.method)
        return self._op

    @property
    def matvecs(self) -> int:
        """Products of the shared operator, and of the block operators of ``block_spectra``."""
        return (self._op.matvecs if self._op is not None else 0) + self.block_matvecs

    def pairs(self, which: str) -> tuple[Eigenpairs, bool]:
        """The shared eigenpairs at one end (``"largest"``/``"smallest"``) and whether the solve was warm."""
        if which not in self._pairs:
            op, s = self.op, self.settings
            k = min(self._k[which], (op.shape[0] - 1) // 2)
            v0 = self.tracker._warm.get(which) if s.warm_start else None
            if v0 is not None and v0.shape[0] != op.shape[0]:
                v0 = None
            result = eigs(op, k=k, which=which, tol=self._tol, max_matvecs=s.eig_max_matvecs, v0=v0,
                          seed=s.seed + (which == "smallest"))
            self.warm[which] = result.eigenvectors
            self._pairs[which] = (result, v0 is not None)
        return self._pairs[which]


def _eigen(session: _Measurement, which: str, k: int) -> dict[str, Any]:
    pairs, warm = session.pairs(which)
    return {"eigenvalues": pairs.eigenvalues[:k].tolist(), "residuals": pairs.residuals[:k].tolist(),
            "converged": pairs.converged, "warm": warm}


def _trace(session: _Measurement) -> dict[str, Any]:
    top, _ = session.pairs("largest")
    result = deflated_trace(session.op, top, matvecs=session.settings.trace_matvecs, seed=session.settings.seed)
    return {"value": result.value, "stderr": result.stderr, "method": result.method}


def _density(session: _Measurement) -> dict[str, Any]:
    s = session.settings
    dens = density(session.op, steps=s.density_steps, runs=s.density_runs, seed=s.seed)
    negative = dens.negative_fraction(0.0)
    return {"nodes": dens.nodes.tolist(), "weights": dens.weights.tolist(), "dim": dens.dim,
            "negative_fraction": negative.value, "negative_fraction_error": negative.error,
            "negative_fraction_stderr": negative.stderr,
            "negative_fraction_quadrature_error": negative.quadrature_error,
            "negative_fraction_reliable": negative.reliable, "negative_fraction_reason": negative.reason}


def _saddle(session: _Measurement) -> dict[str, Any]:
    s = session.settings
    top, _ = session.pairs("largest")
    bottom, _ = session.pairs("smallest")
    result = saddle_index(session.op, s.saddle_tol, method=s.saddle_method, steps=s.density_steps,
                          runs=s.density_runs, top=top, bottom=bottom, seed=s.seed)
    return {"fraction": result.fraction, "error": result.error, "stderr": result.stderr,
            "quadrature_error": result.quadrature_error, "reliable": result.reliable, "reason": result.reason,
            "count": result.count, "tol": result.tol, "threshold": result.threshold, "method": result.method,
            "exact": result.exact, "complete": result.complete}


def _fisher(session: _Measurement) -> dict[str, Any]:
    s = session.settings
    t = session.tracker
    result = fisher_trace(session.model, t.loss_fn, t.data, s.fisher_kind,
                          samples=s.fisher_samples if s.fisher_kind == "true" else 1, seed=s.seed, dtype=t.dtype)
    return {"value": result.value, "stderr": result.stderr, "kind": result.kind, "samples": result.samples}


def _flatness(session: _Measurement) -> dict[str, Any]:
    s = session.settings
    top, _ = session.pairs("largest")
    result = flatness(session.op, delta=s.flatness_delta, z=s.flatness_z, steps=s.density_steps,
                      runs=s.density_runs, top=_first(top, s.flatness_k), seed=s.seed)
    return {name: getattr(result, name) for name in (
        "lambda_max", "lambda_max_error", "trace", "trace_stderr", "frobenius", "frobenius_stderr", "occam",
        "occam_stderr", "effective_dim", "effective_dim_stderr", "delta", "z")}


def _overlap(session: _Measurement) -> dict[str, Any]:
    s = session.settings
    top, _ = session.pairs("largest")
    k = min(s.overlap_k, top.eigenvalues.numel())
    result = subspace_overlap(session.op, k, top=top)
    return {"fraction": result.fraction, "error": result.error, "k": result.k,
            "gradient_norm": result.gradient_norm}


def _blocks(session: _Measurement) -> dict[str, Any]:
    s, t = session.settings, session.tracker
    result = block_spectra(session.model, t.loss_fn, t.data, s.blocks, k=s.top_k, tol=s.eig_tol,
                           max_matvecs=s.eig_max_matvecs, trace_matvecs=s.trace_matvecs,
                           density_steps=s.density_steps, density_runs=s.density_runs, dtype=t.dtype, seed=s.seed,
                           method=s.method)
    session.block_matvecs += result.matvecs
    return {"partition": s.blocks, "names": [b.name for b in result.blocks],
            "top_eigenvalues": [float(b.eigenvalues[0]) for b in result.blocks],
            "traces": [b.trace for b in result.blocks], "trace_stderrs": [b.trace_stderr for b in result.blocks],
            "blocks": result.to_dict()}


def _first(pairs: Eigenpairs, k: int) -> Eigenpairs:
    """The first ``k`` pairs of a result."""
    return pairs.pick(slice(0, k))


_MEASURES: dict[str, Callable[[_Measurement], dict[str, Any]]] = {
    "top_eigen": lambda session: _eigen(session, "largest", session.settings.top_k),
    "bottom_eigen": lambda session: _eigen(session, "smallest", session.settings.bottom_k),
    "trace": _trace, "density": _density, "saddle_index": _saddle, "fisher_trace": _fisher,
    "flatness": _flatness, "subspace_overlap": _overlap, "block_spectra": _blocks,
}


class _JsonlFile:
    """A bare metrics file: records appended one JSON object per line."""

    def __init__(self, path: Path):
        self.metrics_path = path

    def log(self, record: dict[str, Any]) -> None:
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _sink(run: Run | str | Path) -> Run | _JsonlFile:
    if isinstance(run, Run):
        return run
    path = Path(run)
    return _JsonlFile(path) if path.suffix == ".jsonl" else Run(path)


def _records(path: Path) -> list[dict[str, Any]]:
    """The records (JSON objects) of a metrics file, skipping lines cut short by a crash and lines that hold no
    record; none if it does not exist.

    Raises:
        FileFormatError: the file is not UTF-8 text.
    """
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{path} is not UTF-8 text (byte {e.start}): it is no metrics file; move it away or "
                              f"write the tracker's records elsewhere") from None
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
