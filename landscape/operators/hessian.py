"""The Hessian of the loss over the data, ``H = d^2 L / d theta^2`` (units: loss per parameter^2).

For a mean-reduced loss over ``N`` samples in batches of ``n_b``: ``H = sum_b (n_b / N) H_b`` with ``H_b``
the Hessian of batch ``b``'s mean loss (``n_b / N`` generalised to ``d_b / D`` for means over elements or
weighted targets); for a sum-reduced one ``H = sum_b H_b`` (:mod:`landscape.operators.reduction`).
Restricted to the selected, unpruned coordinates (the principal submatrix on them). Indefinite away from minima: its negative eigenvalues are the escape directions of a
saddle.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from landscape.operators.autodiff import AutodiffOperator, backward_rows
from landscape.operators.base import PreparedBatch


class Hessian(AutodiffOperator):
    """Matrix-free Hessian ``v -> H v`` of the (mean- or sum-reduced) loss over all data.

    Hessian-vector products: ``"reverse"`` is Pearlmutter's double backward, ``H v = d/dtheta <g, v>``
    through the retained graph of ``g = dL/dtheta``; ``"forward"`` is forward over reverse,
    ``H v = jvp(grad L, theta, v)``, vmapped over the vectors. Arguments as for
    :class:`~landscape.operators.autodiff.AutodiffOperator` and
    :class:`~landscape.operators.base.CurvatureOperator`.
    """

    def _graph(self, inputs: Tensor, targets: Tensor) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        leaves = self._fn.leaves()
        loss = self._fn.loss(leaves, inputs, targets)
        if not loss.requires_grad:
            return leaves, ()
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, allow_unused=True,
                                    materialize_grads=True)
        return leaves, grads

    def _reverse(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        leaves, grads = self._graph_of(batch)
        live = [(name, g) for name, g in zip(self.space.names, grads) if g.requires_grad]
        if not live:   # the loss is at most linear in the selected parameters
            return torch.zeros_like(V)
        directions = self.space.to_dict(V)
        return self.space.to_flat(backward_rows([g for _, g in live], list(leaves.values()),
                                                [directions[n] for n, _ in live]))

    def _forward(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        return self._compiled(self._forward_product)(batch.inputs, batch.targets, V)

    def _forward_product(self, x: Tensor, y: Tensor, V: Tensor) -> Tensor:
        """Forward over reverse for the rows of ``V`` on the batch ``(x, y)``: a pure function of tensors."""
        gradient = grad(lambda p: self._fn.loss(p, x, y))
        primals = self._fn.primals
        products = vmap(lambda v: jvp(gradient, (primals,), (v,))[1])(self.space.to_dict(V))
        return self.space.to_flat(products)
