"""Matrix-free curvature operators over a model's parameters: Hessian, generalised Gauss-Newton, Fisher.

    H = Hessian(model, loss_fn, data)                 # or GGN(...), Fisher(..., kind="empirical" | "true")
    H @ v; H.matmat(V); H.to_scipy(); H.matvecs       # v: (dim,), V: (dim, b)
    Hessian(model, loss_fn, my_shard, process_group=dist.group.WORLD)   # data-parallel over ranks
    Hessian(model, loss_fn, data, method="forward", compile=True)      # torch.compile where it works

Modules: ``base`` (data loop with sample weighting, caching, checks, counting, adapters), ``hessian``,
``ggn``, ``fisher`` (one per-batch product each), ``autodiff`` and ``methods`` (reverse vs forward mode,
chosen by timing), ``functional`` (the model evaluated on copies of its tensors), ``likelihoods`` (the
loss as a negative log-likelihood), ``checks`` and ``memory``, ``parallel`` (the collectives of a
distributed operator; see :mod:`landscape.distributed`), ``compiled`` (``torch.compile`` with a fallback).
"""
from landscape.operators.base import CurvatureOperator
from landscape.operators.checks import DeterminismError
from landscape.operators.fisher import Fisher
from landscape.operators.ggn import GGN
from landscape.operators.hessian import Hessian

__all__ = ["CurvatureOperator", "DeterminismError", "Fisher", "GGN", "Hessian"]
