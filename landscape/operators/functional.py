"""The user's model as a pure function of detached copies of its parameters.

Operators never change the model they measure. :class:`FunctionalModel` takes copies of the parameters
and buffers (on the operator's device, floating-point ones in its dtype) when the operator is built, and
evaluates the model with :func:`torch.func.functional_call` on those copies. The user's parameters,
``.grad``, buffers (BatchNorm running statistics), train/eval modes and random-number state stay as they
were; the operator is the curvature at the parameter values it was built with.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from landscape.foundation.params import ParamSpace

LossFn = Callable[[Tensor, Tensor], Tensor]


class FunctionalModel:
    """``outputs(params, x)`` and ``loss(params, x, y)`` for the model at fixed copies of its tensors.

    Args:
        model: the user's module; only its structure and train/eval modes (as they are now) are used.
        space: the selected parameters; the others are held fixed.
        loss_fn: ``loss_fn(outputs, targets)``, mean- or sum-reduced over the batch.
        dtype: floating-point dtype of the copies (parameters and floating-point buffers).
        device: device of the copies.

    ``primals`` are the selected parameters ``{name: tensor}`` (detached, ``requires_grad=False``); every
    evaluation takes a dictionary of such tensors (leaves, vmapped or dual tensors) in their place.
    """

    def __init__(self, model: nn.Module, space: ParamSpace, loss_fn: LossFn, dtype: torch.dtype,
                 device: torch.device):
        self.model = model
        self.loss_fn = loss_fn
        self._device = device
        self._modes = [(m, m.training) for m in model.modules()]
        selected = set(space.names)

        def copy(t: Tensor) -> Tensor:
            target = dtype if t.is_floating_point() else t.dtype
            return t.detach().to(device=device, dtype=target, copy=True)

        named = dict(model.named_parameters())
        self.primals: dict[str, Tensor] = {n: copy(named[n]) for n in space.names}
        self._fixed: dict[str, Tensor] = {n: copy(p) for n, p in named.items() if n not in selected}
        self._fixed.update({n: copy(b) for n, b in model.named_buffers()})

    def outputs(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """The model's outputs on inputs ``x`` with the selected parameters set to ``params``."""
        return functional_call(self.model, {**self._fixed, **params}, (x,))

    def loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """``loss_fn`` on one batch (reduced over it as ``loss_fn`` reduces)."""
        return self.loss_fn(self.outputs(params, x), y)

    def leaves(self) -> dict[str, Tensor]:
        """Fresh autograd leaves sharing the primals' storage, for building a graph."""
        return {n: p.detach().requires_grad_() for n, p in self.primals.items()}

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Evaluate inside this: gradients enabled (a caller's ``torch.no_grad()`` must not turn the
        products into zeros), the model's modules in the modes they had when the operator was built
        (restored after), attention on the math kernel (the fused CPU kernel of
        ``scaled_dot_product_attention`` has neither double backward nor forward-mode AD), and torch's
        random-number state (CPU and the operator's device) restored on exit. Python's and NumPy's
        generators are never drawn from here."""
        changed = [(m, m.training) for m, mode in self._modes if m.training != mode]
        for m, _ in changed:
            m.training = not m.training
        try:
            with torch.enable_grad(), self._forked_rng(), sdpa_kernel(SDPBackend.MATH):
                yield
        finally:
            for m, mode in changed:
                m.training = mode

    def _forked_rng(self) -> contextlib.AbstractContextManager:
        if self._device.type == "cpu":
            return torch.random.fork_rng(devices=[])
        return torch.random.fork_rng(devices=[self._device], device_type=self._device.type)
