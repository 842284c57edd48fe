"""The standard curvature profile of one trained network, shared by :mod:`landscape.analysis.analyze` (checkpoints) and
:mod:`landscape.analysis.compare` (tickets against the dense network), so that both measure on the same footing.

With ``H`` the Hessian of the mean training loss on the first ``samples`` training samples, restricted to the
coordinates a pruning mask keeps (the principal submatrix ``P^T H P``; :class:`landscape.operators.Hessian`
with ``masks``), in loss (nats) per parameter²:

* the ``k`` largest and smallest eigenvalues with their residuals ``||H v − θ v||`` (thick-restart Lanczos,
  :func:`landscape.linalg.eigs`);
* ``tr H`` with its standard error (:func:`landscape.linalg.trace`);
* the spectral density (stochastic Lanczos quadrature, :func:`landscape.linalg.density`);
* the saddle index, the fraction of eigenvalues below ``−tol |λ|_max`` (Dauphin et al. 2014;
  :func:`landscape.instruments.saddle_index`, deflated by the eigenpairs above), with its total error
  (``saddle_index_error``: 95% Student-t sampling error plus the quadrature bound on its resolution error,
  ``saddle_index_quadrature_error``), standard error, ``saddle_index_reliable`` and ``saddle_index_reason``,
  count and threshold;
* the escape dimensions, the eigenpairs below ``−tol |λ|_max`` among the ``k`` smallest
  (:func:`landscape.instruments.escape_dimensions`; ``escape_complete`` says whether they are all of them);
* flatness (:func:`landscape.instruments.flatness`): ``||H||_F``, the Occam term ``−½ Σ log(λ_i⁺ + δ)`` and the
  effective dimensionality ``Σ λ_i⁺ / (λ_i⁺ + z)``, with standard errors;
* the trace of the empirical Fisher on the same samples and coordinates, ``tr F = (1/N) Σ_i ||∇ℓ_i||²``, exact
  from per-sample gradients (:func:`landscape.instruments.fisher_trace`; Achille et al. 2019), nats per
  parameter².

The eigen solves are shared: the saddle index, the escape dimensions and flatness reuse them.

Distributed (``process_group=``, e.g. under ``torchrun``): every rank passes its shard of the curvature samples
(:func:`curvature_batches` with ``rank`` and ``world_size``) and runs the same call; the operator and the Fisher
trace sum over the ranks (:mod:`landscape.data.distributed`), so every rank returns the profile of all the samples.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from landscape.analysis.instrument_store import InstrumentStore
from landscape.connectivity.interpolation import EVAL_BATCH
from landscape.data.batches import chunked
from landscape.data.distributed import shard
from landscape.foundation.progress import Progress
from landscape.foundation.settings import Settings, setting
from landscape.instruments import escape_dimensions, fisher_trace, flatness, saddle_index
from landscape.linalg import SpectralDensity, density, eigs, trace
from landscape.operators import Hessian

CURVATURE_KEYS = ("weights", "top_eigenvalues", "top_residuals", "bottom_eigenvalues", "bottom_residuals",
                  "eigs_converged", "trace", "trace_stderr", "saddle_index", "saddle_index_error",
                  "saddle_index_stderr", "saddle_index_quadrature_error", "saddle_index_reliable",
                  "saddle_index_reason", "saddle_count", "saddle_threshold", "escape_dimensions", "escape_eigenvalues",
                  "escape_complete", "frobenius", "frobenius_stderr", "occam", "occam_stderr", "effective_dim",
                  "effective_dim_stderr", "fisher_trace", "fisher_trace_stderr", "matvecs")


@dataclass(frozen=True)
class CurvatureSettings(Settings):
    """How much work each curvature measurement gets (the CLI builds its options from these fields)."""
    samples: int = setting(1000, "training samples (the first of the split) the Hessian and Fisher are measured on")
    eigenvalues: int = setting(5, "number of largest and of smallest Hessian eigenvalues")
    eig_tol: float = setting(1e-4, "eigenvalue tolerance relative to |lambda|_max: converged certifies each of the "
                                   "extreme eigenvalues within eig_tol*|lambda|_max (saddle_tol/10, so that the "
                                   "smallest fall on the right side of the escape threshold)")
    max_matvecs: int = setting(600, "Hessian-vector products allowed per end of the spectrum")
    trace_matvecs: int = setting(99, "Hessian-vector products of each trace estimate")
    density_steps: int = setting(60, "Lanczos steps per run of the spectral density (SLQ)")
    density_runs: int = setting(5, "independent SLQ runs (the error bars are across runs)")
    saddle_tol: float = setting(1e-3, "eigenvalues below -saddle_tol * |lambda|_max count as negative (saddle "
                                      "index, escape dimensions)")
    flatness_delta: float = setting(1e-3, "prior precision delta of the Occam term")
    flatness_z: float = setting(1.0, "scale z of the effective dimensionality")
    seed: int = setting(0, "seed of every random probe")


_EIGEN = ("eigenvalues", "eig_tol", "max_matvecs", "seed")
INSTRUMENT_SETTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "top eigenvalues": (_EIGEN, ()),
    "bottom eigenvalues": (_EIGEN, ()),
    "trace": (("trace_matvecs", "seed"), ()),
    "density": (("density_steps", "density_runs", "seed"), ()),
    "saddle index": (("saddle_tol", "density_steps", "density_runs", "seed"),
                     ("top eigenvalues", "bottom eigenvalues")),
    "escape dimensions": (("saddle_tol", "eigenvalues", "seed"), ("top eigenvalues", "bottom eigenvalues")),
    "flatness": (("flatness_delta", "flatness_z", "eigenvalues", "density_steps", "density_runs", "seed"),
                 ("top eigenvalues",)),
    "fisher trace": ((), ()),
}   # instrument: (the CurvatureSettings fields it reads besides samples, the instruments whose results it uses)

def curvature_batches(batches: Sequence[tuple[Tensor, Tensor]], samples: int, rank: int = 0,
                      world_size: int = 1) -> list[tuple[Tensor, Tensor]]:
    """The first ``samples`` samples of ``batches`` (rank ``rank``'s contiguous part of them, see
    :func:`landscape.data.distributed.shard`), in batches of at most
    :data:`landscape.connectivity.interpolation.EVAL_BATCH`."""
    x, y = shard(tuple(torch.cat(parts)[:samples] for parts in zip(*batches)), rank, world_size)
    return chunked(x, y, EVAL_BATCH)


def measure_curvature(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data: Any,
                      masks: Mapping[str, Tensor] | None = None, settings: CurvatureSettings = CurvatureSettings(),
                      device: str | torch.device | None = None,
                      process_group: dist.ProcessGroup | None = None, *,
                      progress: bool = False,
                      store: InstrumentStore | None = None) -> tuple[dict[str, Any], SpectralDensity]:
    """The curvature profile of the module docstring on ``data`` (already the curvature samples, e.g. from
    :func:`curvature_batches`), over the coordinates ``masks`` keeps; with ``process_group``, this rank's shard.

    With ``progress``, a bar over the instruments naming the one running and the Hessian products so far (on a
    terminal the count follows each product; in a log, at most :data:`landscape.foundation.progress.LOG_LINES`
    lines). With ``store`` (an :class:`~landscape.analysis.instrument_store.InstrumentStore` for these weights
    and data), each finished instrument is saved, and one saved under the same settings is loaded, not measured.

    Returns:
        ``({key: value for key in CURVATURE_KEYS}, spectral density)``, plain numbers and lists; ``matvecs`` counts
        the products of every instrument, loaded ones included.

    Raises:
        ValueError: BatchNorm in train mode (call ``model.eval()``), as for every operator.
    """
    s = settings
    H = Hessian(model, loss_fn, data, masks=masks, device=device, process_group=process_group)
    runner = _Instruments(H, s, store, Progress("curvature", len(INSTRUMENT_SETTINGS), unit="instruments",
                                               enabled=progress))
    top = runner.run("top eigenvalues", lambda: eigs(H, k=s.eigenvalues, which="largest", tol=s.eig_tol,
                                                     max_matvecs=s.max_matvecs, seed=s.seed))
    bottom = runner.run("bottom eigenvalues", lambda: eigs(H, k=s.eigenvalues, which="smallest", tol=s.eig_tol,
                                                           max_matvecs=s.max_matvecs, seed=s.seed + 1))
    tr = runner.run("trace", lambda: trace(H, matvecs=s.trace_matvecs, seed=s.seed))
    spectrum = runner.run("density", lambda: density(H, steps=s.density_steps, runs=s.density_runs, seed=s.seed))
    index = runner.run("saddle index", lambda: saddle_index(H, s.saddle_tol, top=top, bottom=bottom,
                                                            steps=s.density_steps, runs=s.density_runs, seed=s.seed))
    escape = runner.run("escape dimensions", lambda: escape_dimensions(H, s.saddle_tol, s.eigenvalues, top=top,
                                                                       bottom=bottom, seed=s.seed))
    flat = runner.run("flatness", lambda: flatness(H, delta=s.flatness_delta, z=s.flatness_z, k=s.eigenvalues,
                                                   steps=s.density_steps, runs=s.density_runs, top=top, seed=s.seed))
    fisher = runner.run("fisher trace", lambda: fisher_trace(model, loss_fn, data, masks=masks, device=device,
                                                             process_group=process_group))
    runner.close()
    return ({"weights": H.shape[0], "top_eigenvalues": top.eigenvalues.tolist(),
             "top_residuals": top.residuals.tolist(), "bottom_eigenvalues": bottom.eigenvalues.tolist(),
             "bottom_residuals": bottom.residuals.tolist(), "eigs_converged": bool(top.converged and bottom.converged),
             "trace": tr.value, "trace_stderr": tr.stderr, "saddle_index": index.fraction,
             "saddle_index_error": index.error, "saddle_index_stderr": index.stderr,
             "saddle_index_quadrature_error": index.quadrature_error, "saddle_index_reliable": index.reliable,
             "saddle_index_reason": index.reason, "saddle_count": index.count, "saddle_threshold": index.threshold,
             "escape_dimensions": escape.count,
             "escape_eigenvalues": escape.eigenvalues.tolist(), "escape_complete": escape.complete,
             "frobenius": flat.frobenius, "frobenius_stderr": flat.frobenius_stderr, "occam": flat.occam,
             "occam_stderr": flat.occam_stderr, "effective_dim": flat.effective_dim,
             "effective_dim_stderr": flat.effective_dim_stderr, "fisher_trace": fisher.value,
             "fisher_trace_stderr": fisher.stderr, "matvecs": runner.matvecs}, spectrum)


class _Instruments:
    """Runs the instruments of :func:`measure_curvature` in order, each through the store (keyed by
    :data:`INSTRUMENT_SETTINGS`), counting the products and showing progress."""

    def __init__(self, H: Hessian, settings: CurvatureSettings, store: InstrumentStore | None, bar: Progress):
        self.H, self.settings, self.store, self.bar = H, settings, store or InstrumentStore(None), bar
        self.keys: dict[str, str] = {}
        self.matvecs, self.reused = 0, 0

    def run(self, name: str, compute: Callable[[], Any]) -> Any:
        """The result of instrument ``name``: loaded from the store, or ``compute()``'s."""
        self._show(name)
        fields, builds_on = INSTRUMENT_SETTINGS[name]
        self.keys[name] = key = self.store.key(self.settings, fields, [self.keys[b] for b in builds_on])
        with self._watching():
            done, reused = self.store.measure(name, key, compute, matvecs=lambda: self.H.matvecs,
                                              device=self.H.device)
        self.matvecs, self.reused = self.matvecs + done.matvecs, self.reused + reused
        self.bar.update(1)
        return done.value

    def close(self) -> None:
        self._show(None)
        self.bar.close()

    def _show(self, running: str | None) -> None:
        shown = {} if running is None else {"running": running}
        shown["matvecs"] = self.matvecs
        if self.reused:
            shown["loaded"] = self.reused
        self.bar.set_postfix(shown)

    def _watching(self) -> contextlib.AbstractContextManager:
        """The bar's product count follows each product of ``H`` while an instrument runs (throttled by
        :meth:`Progress.set_postfix`; nothing is printed in a log)."""
        base = self.matvecs - self.H.matvecs
        return self.H.watch(lambda total: self.bar.set_postfix(self.bar.postfix | {"matvecs": base + total}))
