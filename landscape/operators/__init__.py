"""Matrix-free curvature operators over a model's parameters: Hessian, generalised Gauss-Newton, Fisher.

    H = Hessian(model, loss_fn, data)                 # or GGN(...), Fisher(..., kind="empirical" | "true")
    H @ v; H.matmat(V); H.to_scipy(); H.matvecs       # v: (dim,), V: (dim, b)
    Hessian(model, loss_fn, my_shard, process_group=dist.group.WORLD)   # data-parallel over ranks
    Hessian(model, loss_fn, data, method="forward", compile=True)      # torch.compile where it works
    Hessian(model, nn.CrossEntropyLoss(reduction="sum"), batches)      # the Hessian of the summed loss
    Hessian(model, my_summed_loss, batches, reduction="sum")           # a callable that cannot be inspected

Modules: ``base`` (data loop with sample weighting, caching, checks, counting, adapters), ``hessian``,
``ggn``, ``fisher`` (one per-batch product each), ``autodiff`` and ``methods`` (reverse vs forward mode,
chosen by timing), ``functional`` (the model evaluated on copies of its tensors), ``likelihoods`` (the
loss as a negative log-likelihood), ``reduction`` (mean- or sum-reduced losses: the weight of each batch),
``vectors`` (checks on the vectors of a product), ``checks`` and ``memory``, ``parallel`` (the collectives of a
distributed operator; see :mod:`landscape.data.distributed`), ``compiled`` (``torch.compile`` with a fallback).
"""
from landscape.operators.base import CurvatureOperator
from landscape.operators.checks import DeterminismError
from landscape.operators.fisher import Fisher
from landscape.operators.ggn import GGN
from landscape.operators.hessian import Hessian
from landscape.operators.reduction import ReductionError

__all__ = ["CurvatureOperator", "DeterminismError", "Fisher", "GGN", "Hessian", "ReductionError"]
