"""The generalised Gauss-Newton matrix ``G = J^T H_L J`` (Schraudolph 2002; Martens 2020, section 8).

For batch ``b`` with outputs ``z = f(x_b; theta)``, ``J_b = dz/dtheta`` and ``H_L,b = d^2 loss_b / dz^2``
the Hessian of the batch's loss w.r.t. the outputs: ``G = sum_b (n_b / N) J_b^T H_L,b J_b`` for a mean-reduced
loss, ``sum_b J_b^T H_L,b J_b`` for a sum (:mod:`landscape.operators.reduction`). It drops
the term of the Hessian that involves the second derivatives of the network, and is positive
semi-definite whenever the loss is convex in the outputs (cross-entropy, squared error). For those losses
read as negative log-likelihoods it equals the true Fisher (:mod:`landscape.operators.fisher`).

``H_L`` is applied by autodiff in output space (reverse over reverse of ``loss_fn`` at the outputs), so
any twice-differentiable loss works; the output space is small, so this is a small part of a product.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

from landscape.operators.autodiff import AutodiffOperator, backward_rows
from landscape.operators.base import PreparedBatch


class GGN(AutodiffOperator):
    """Matrix-free generalised Gauss-Newton ``v -> J^T H_L J v`` of the (mean- or sum-reduced) loss over all data.

    ``"reverse"``: ``J v`` by the double-vjp trick through the retained graph of ``J^T u`` (linear in a
    dummy ``u``), then ``J^T w`` by a backward through the retained forward graph; ``"forward"``: ``J V``
    by ``jvp`` vmapped over the vectors, ``J^T W`` by a vmapped ``vjp``. Arguments as for
    :class:`~landscape.operators.autodiff.AutodiffOperator` and
    :class:`~landscape.operators.base.CurvatureOperator`.
    """

    def _graph(self, inputs: Tensor, targets: Tensor) -> tuple:
        leaves = self._fn.leaves()
        outputs = self._fn.outputs(leaves, inputs)
        if not outputs.requires_grad:
            return leaves, outputs, None, ()
        dummy = torch.zeros_like(outputs, requires_grad=True)
        transposed = torch.autograd.grad((outputs * dummy).sum(), list(leaves.values()), create_graph=True,
                                         allow_unused=True, materialize_grads=True)   # J^T u, no sympy import
        return leaves, outputs, dummy, transposed

    def _reverse(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        leaves, outputs, dummy, transposed = self._graph_of(batch)
        live = [(name, t) for name, t in zip(self.space.names, transposed) if t.requires_grad]
        if not live:   # the outputs do not depend on the selected parameters
            return torch.zeros_like(V)
        directions = self.space.to_dict(V)
        JV, = backward_rows([t for _, t in live], [dummy], [directions[n] for n, _ in live])
        W = self._output_hessian_rows(outputs.detach(), batch.targets, JV)
        return self.space.to_flat(backward_rows([outputs], list(leaves.values()), [W]))

    def _forward(self, batch: PreparedBatch, V: Tensor) -> Tensor:
        return self._compiled(self._forward_product)(batch.inputs, batch.targets, V)

    def _forward_product(self, x: Tensor, y: Tensor, V: Tensor) -> Tensor:
        """``J^T H_L J`` for the rows of ``V`` on the batch ``(x, y)`` by forward mode: a pure function of tensors."""
        primals = self._fn.primals

        def f(p: dict[str, Tensor]) -> Tensor:
            return self._fn.outputs(p, x)

        outputs, pullback = vjp(f, primals)
        JV = vmap(lambda v: jvp(f, (primals,), (v,))[1])(self.space.to_dict(V))
        W = self._output_hessian(outputs, y, JV)
        return self.space.to_flat(vmap(pullback)(W)[0])

    def _output_hessian_rows(self, outputs: Tensor, targets: Tensor, U: Tensor) -> Tensor:
        """As :meth:`_output_hessian`, by a backward per row through the graph of the loss's gradient w.r.t. the
        outputs: no ``torch.func``, whose first use in a process imports ``torch._dynamo`` (3 to 6 s here, five
        times a small model's whole top-5 solve; issue 17)."""
        z = outputs.detach().requires_grad_()
        g, = torch.autograd.grad(self._fn.loss_fn(z, targets), z, create_graph=True)
        if not g.requires_grad:   # the loss is linear in the outputs
            return torch.zeros_like(U)
        return backward_rows([g], [z], [U])[0]

    def _output_hessian(self, outputs: Tensor, targets: Tensor, U: Tensor) -> Tensor:
        """``H_L u`` for each of the ``(b, *outputs.shape)`` rows of ``U``, ``H_L`` the Hessian of the
        batch's mean loss w.r.t. the outputs: the vjp of its gradient (``H_L`` is symmetric), vmapped.
        Reverse over reverse, because forward mode over ``mse_loss``'s backward fails in torch 2.13."""
        _, hvp = vjp(grad(lambda z: self._fn.loss_fn(z, targets)), outputs)
        return vmap(hvp)(U)[0]
