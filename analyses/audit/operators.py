"""Edge cases of the curvature operators (``landscape.operators``, ``landscape.foundation.params``, the dense adapter of
``landscape.linalg``): loss reductions over uneven batches against float64 truths of the loss over ALL
samples (``torch.func`` on a 5-6-3 tanh MLP, 20 samples in batches of 7, 8 and 5), and bad input that must
be refused by name.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import aslinearoperator
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from audit.common import Case
from landscape.linalg import MatrixOperator, eigs
from landscape.operators import GGN, Fisher, Hessian

F64 = torch.float64
RTOL = 1e-10   # products against the dense truth, relative in the 2-norm
CE, CE_SUM = nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="sum")
MSE, MSE_SUM = nn.MSELoss(), nn.MSELoss(reduction="sum")
UNEVEN = "over 3 uneven batches"


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def data(regression: bool = False) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20, 5, generator=gen, dtype=F64)
    y = torch.randn(20, 3, generator=gen, dtype=F64) if regression else torch.randint(0, 3, (20,), generator=gen)
    return x, y


def batches(x: Tensor, y: Tensor) -> list[tuple[Tensor, Tensor]]:
    return [(x[a:b], y[a:b]) for a, b in ((0, 7), (7, 15), (15, 20))]


def flat_outputs(net: nn.Module, x: Tensor) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """The outputs of ``net`` on ``x`` as a function of one flat parameter vector, and that vector."""
    named = dict(net.named_parameters())
    theta = torch.cat([p.detach().reshape(-1) for p in named.values()])

    def outputs(t: Tensor) -> Tensor:
        params, start = {}, 0
        for n, p in named.items():
            params[n] = t[start:start + p.numel()].view_as(p)
            start += p.numel()
        return functional_call(net, params, (x,))

    return outputs, theta


def flat_loss(net: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """The loss of ``net`` on ``(x, y)`` as a function of one flat parameter vector, and that vector."""
    outputs, theta = flat_outputs(net, x)
    return (lambda t: loss_fn(outputs(t), y)), theta


def dense_hessian(net: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor) -> Tensor:
    of, theta = flat_loss(net, loss_fn, x, y)
    return torch.func.hessian(of)(theta)


def dense_ggn(net: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor) -> Tensor:
    """``J^T H_L J`` over all samples, ``H_L`` the Hessian of the full-data loss in the outputs."""
    outputs, theta = flat_outputs(net, x)
    z = outputs(theta).detach()
    J = torch.func.jacrev(outputs)(theta).reshape(z.numel(), -1)
    H_L = torch.func.hessian(lambda u: loss_fn(u, y))(z).reshape(z.numel(), z.numel())
    return J.T @ H_L @ J


def outer_products(net: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor) -> Tensor:
    """``sum_i g_i g_i^T`` over per-sample gradients (``loss_fn`` on batches of one)."""
    theta = flat_outputs(net, x)[1]
    g = torch.stack([torch.func.grad(flat_loss(net, loss_fn, x[i:i + 1], y[i:i + 1])[0])(theta)
                     for i in range(x.shape[0])])
    return g.T @ g


def mismatch(op, dense: Tensor, what: str, rtol: float = RTOL) -> str | None:
    """``None`` if ``op`` agrees with ``dense`` on three random vectors to ``rtol``, else what differs."""
    V = torch.randn(dense.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    error = float(torch.linalg.norm(op.matmat(V) - dense @ V) / torch.linalg.norm(dense @ V))
    return None if error < rtol else f"{what}: relative error {error:.2e} against the dense float64 truth"


def summed_cross_entropy(z: Tensor, y: Tensor) -> Tensor:
    """A plain callable the operators cannot inspect."""
    return F.cross_entropy(z, y, reduction="sum")


def reduction_case(operator: str, loss_name: str, loss_fn: Callable, regression: bool,
                   options: dict | None = None) -> Case:
    """The operator over 3 uneven batches against its dense truth over all 20 samples."""
    options = options or {}

    def run() -> str | None:
        net, (x, y) = model(), data(regression)
        reduction = options.get("reduction", getattr(loss_fn, "reduction", "mean"))
        if operator == "Hessian":
            op, dense = Hessian(net, loss_fn, batches(x, y), **options), dense_hessian(net, loss_fn, x, y)
        elif operator == "GGN":
            op, dense = GGN(net, loss_fn, batches(x, y), **options), dense_ggn(net, loss_fn, x, y)
        else:
            total = outer_products(net, loss_fn, x, y)
            op, dense = Fisher(net, loss_fn, batches(x, y), **options), total if reduction == "sum" else total / 20
        return mismatch(op, dense, f"{operator} of {loss_name}")

    return Case(f"operators: {operator} of {loss_name} {UNEVEN}", run)


def loss_and_gradient_of_a_sum() -> str | None:
    net, (x, y) = model(), data()
    of, theta = flat_loss(net, CE_SUM, x, y)
    H = Hessian(net, CE_SUM, batches(x, y))
    loss_error = abs(H.loss - float(of(theta))) / abs(float(of(theta)))
    grad_error = float(torch.linalg.norm(H.gradient - torch.func.grad(of)(theta)) / torch.linalg.norm(H.gradient))
    if loss_error > 1e-12 or grad_error > 1e-12:
        return f"loss off by {loss_error:.2e}, gradient by {grad_error:.2e} (relative) from the full-data sum"
    return None


def true_fisher_of_a_sum_is_n_times_the_mean() -> str | None:
    net, (x, y) = model(), data()
    total = Fisher(net, CE_SUM, batches(x, y), kind="true", samples=3).to_dense()
    mean = Fisher(net, CE, batches(x, y), kind="true", samples=3).to_dense()
    error = float(torch.linalg.norm(total - 20 * mean) / torch.linalg.norm(total))
    return None if error < 1e-12 else f"true Fisher of the sum is {error:.2e} (relative) from 20 x that of the mean"


def true_fisher_of_summed_squares_is_its_ggn() -> str | None:
    net, (x, y) = model(), data(regression=True)
    ggn = dense_ggn(net, MSE_SUM, x, y)
    estimate = Fisher(net, MSE_SUM, batches(x, y), kind="true", samples=2000).to_dense()
    error = float(torch.linalg.norm(estimate - ggn) / torch.linalg.norm(ggn))
    # Monte Carlo error ~ 1/sqrt(2000 draws): about 2% in the Frobenius norm; the mean's variance would be 3x off
    return None if error < 0.05 else f"true Fisher of MSELoss(sum) is {error:.1%} from its GGN with 2000 draws"


def ignored_targets_mean() -> str | None:
    net, (x, y) = model(), data()
    y = y.clone()
    y[[0, 1, 2, 3, 9]] = -100
    return mismatch(Hessian(net, CE, batches(x, y)), dense_hessian(net, CE, x, y), "Hessian with ignored targets")


def class_weighted_mean() -> str | None:
    net, (x, y) = model(), data()
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0], dtype=F64))
    return mismatch(Hessian(net, weighted, batches(x, y)), dense_hessian(net, weighted, x, y),
                    "Hessian of class-weighted CrossEntropyLoss")


def refused(build: Callable[[], object]) -> Callable[[], str | None]:
    """A case whose bad input must raise: returns what came back if it did not."""
    def run() -> str | None:
        result = build()
        return f"accepted, returned {type(result).__name__}"
    return run


def hessian() -> Hessian:
    net, (x, y) = model(), data()
    return Hessian(net, CE, batches(x, y), method="reverse")


def with_entry(value: float) -> Tensor:
    v = torch.ones(57, dtype=F64)
    v[40] = value
    return v


REDUCTIONS = [
    reduction_case("Hessian", "CrossEntropyLoss(reduction='sum')", CE_SUM, False),
    reduction_case("Hessian", "CrossEntropyLoss(reduction='mean')", CE, False),
    reduction_case("Hessian", "MSELoss(reduction='sum')", MSE_SUM, True),
    reduction_case("Hessian", "MSELoss(reduction='mean')", MSE, True),
    reduction_case("Hessian", "a summed callable with reduction='sum'", summed_cross_entropy, False,
                   {"reduction": "sum"}),
    reduction_case("Hessian", "a mean callable (assumed mean)", lambda z, y: F.cross_entropy(z, y), False),
    reduction_case("Hessian", "CrossEntropyLoss(reduction='sum'), forward mode", CE_SUM, False,
                   {"method": "forward"}),
    reduction_case("GGN", "CrossEntropyLoss(reduction='sum')", CE_SUM, False),
    reduction_case("GGN", "MSELoss(reduction='sum')", MSE_SUM, True),
    reduction_case("GGN", "MSELoss(reduction='mean')", MSE, True),
    reduction_case("GGN", "a summed callable with reduction='sum'", summed_cross_entropy, False, {"reduction": "sum"}),
    reduction_case("empirical Fisher", "CrossEntropyLoss(reduction='sum')", CE_SUM, False),
    reduction_case("empirical Fisher", "CrossEntropyLoss(reduction='mean')", CE, False),
    reduction_case("empirical Fisher", "MSELoss(reduction='sum')", MSE_SUM, True),
    reduction_case("empirical Fisher", "MSELoss(reduction='mean')", MSE, True),
    reduction_case("empirical Fisher", "a summed callable with reduction='sum'", summed_cross_entropy, False,
                   {"reduction": "sum"}),
    Case(f"operators: loss and gradient of CrossEntropyLoss(reduction='sum') {UNEVEN}", loss_and_gradient_of_a_sum),
    Case(f"operators: true Fisher of CrossEntropyLoss(reduction='sum') {UNEVEN} is N x the mean one",
         true_fisher_of_a_sum_is_n_times_the_mean),
    Case(f"operators: true Fisher of MSELoss(reduction='sum') {UNEVEN} approaches its GGN",
         true_fisher_of_summed_squares_is_its_ggn),
    Case(f"operators: Hessian of CrossEntropyLoss(mean) with ignore_index targets {UNEVEN}", ignored_targets_mean),
    Case(f"operators: Hessian of class-weighted CrossEntropyLoss(mean) {UNEVEN}", class_weighted_mean),
]

REFUSALS = [
    Case("operators: Hessian of CrossEntropyLoss(reduction='none')",
         refused(lambda: Hessian(model(), nn.CrossEntropyLoss(reduction="none"), data())), ("reduction='none'",)),
    Case("operators: GGN of MSELoss(reduction='none')",
         refused(lambda: GGN(model(), nn.MSELoss(reduction="none"), data(True))), ("reduction='none'",)),
    Case("operators: a summed callable left to the mean assumption",
         refused(lambda: Hessian(model(), summed_cross_entropy, batches(*data()))), ("sum-reduced", "reduction='sum'")),
    Case("operators: reduction='sum' given with a mean-reduced CrossEntropyLoss",
         refused(lambda: Hessian(model(), CE, data(), reduction="sum")), ("contradicts", "reduction")),
    Case("operators: reduction='total'",
         refused(lambda: Hessian(model(), summed_cross_entropy, data(), reduction="total")), ("'mean' or 'sum'",)),
    Case("operators: empirical Fisher of class-weighted CrossEntropyLoss(mean)",
         refused(lambda: Fisher(model(), nn.CrossEntropyLoss(weight=torch.ones(3, dtype=F64)), data())),
         ("class weights", "reduction='sum'")),
    Case("operators: empirical Fisher of CrossEntropyLoss(mean) with ignore_index targets",
         refused(lambda: Fisher(model(), CE, (data()[0], data()[1].index_fill(0, torch.tensor([3]), -100)))),
         ("ignore_index", "reduction='sum'")),
    Case("operators: Hessian of CrossEntropyLoss(mean) with a batch of ignored targets only",
         refused(lambda: Hessian(model(), CE, [data(), (data()[0][:4], torch.full((4,), -100))])),
         ("batch 1", "every target ignored")),
    Case("operators: true Fisher of L1Loss",
         refused(lambda: Fisher(model(), nn.L1Loss(), data(True), kind="true")), ("negative log-likelihood",)),
    Case("operators: H @ v with a NaN vector", refused(lambda: hessian() @ with_entry(float("nan"))),
         ("input vector", "nan", "'2.weight'")),
    Case("operators: H @ v with an infinite vector", refused(lambda: hessian() @ with_entry(float("inf"))),
         ("input vector", "inf", "'2.weight'")),
    Case("operators: H @ v with a meta-device vector", refused(lambda: hessian() @ torch.ones(57, device="meta")),
         ("meta device",)),
    Case("operators: H @ v with a complex vector",
         refused(lambda: hessian() @ torch.ones(57, dtype=torch.complex128)), ("real vector", "complex")),
    Case("operators: H @ v with a NumPy array", refused(lambda: hessian() @ np.ones(57)),
         ("torch.Tensor", "as_tensor")),
    Case("operators: H @ V with a sparse block",
         refused(lambda: hessian().matmat(torch.eye(57, dtype=F64)[:, :2].to_sparse())), ("dense tensor",)),
    Case("operators: H @ v of the wrong length", refused(lambda: hessian() @ torch.ones(56, dtype=F64)),
         ("expects shape (57, b)",)),
    Case("operators: H @ v with a 0-d tensor", refused(lambda: hessian() @ torch.tensor(1.0)), ("expects shape",)),
    Case("operators: H.to_dense(block=0)", refused(lambda: hessian().to_dense(block=0)), ("block must be",)),
    Case("operators: a complex operator dtype",
         refused(lambda: Hessian(model(), CE, data(), dtype=torch.complex128)), ("real floating-point",)),
    Case("operators: a batch whose inputs and targets differ in length",
         refused(lambda: Hessian(model(), CE, [(data()[0][:10], data()[1][:9])])),
         ("inputs have 10", "targets have 9")),
    Case("operators: empty data", refused(lambda: Hessian(model(), CE, [])), ("empty",)),
    Case("operators: an empty batch", refused(lambda: Hessian(model(), CE, [(data()[0][:0], data()[1][:0])])),
         ("empty",)),
    Case("operators: a generator as data", refused(lambda: Hessian(model(), CE, (b for b in [data()]))),
         ("one-shot iterator",)),
    Case("operators: a shuffling DataLoader",
         refused(lambda: Hessian(model(), CE, DataLoader(TensorDataset(*data()), batch_size=6, shuffle=True))),
         ("shuffle=False",)),
    Case("operators: NaN in the inputs", refused(lambda: Hessian(model(), CE, (data()[0] * float("nan"), data()[1]))),
         ("loss is nan", "batch 0")),
    Case("operators: a loss returning a non-scalar",
         refused(lambda: Hessian(model(), lambda z, y: F.cross_entropy(z, y, reduction="none"), data())),
         ("scalar",)),
    Case("operators: targets the loss cannot take",
         refused(lambda: Hessian(model(), CE, (data()[0], data()[1].double()))), ("failed on batch 0", "targets")),
    Case("operators: inputs the model cannot take",
         refused(lambda: Hessian(model(), CE, (data()[0][:, :4], data()[1]))), ("failed on batch 0", "inputs")),
    Case("operators: method='forward' where forward mode fails (MSELoss mean, torch 2.13)",
         refused(lambda: Hessian(model(), MSE, data(True), method="forward") @ torch.ones(57, dtype=F64)),
         ("method='reverse'",)),
    Case("operators: params selecting nothing",
         refused(lambda: Hessian(model(), CE, data(), params=lambda name, p: False)), ("matched none",)),
    Case("operators: params naming an unknown parameter",
         refused(lambda: Hessian(model(), CE, data(), params=["2.wieght"])), ("unknown parameter names",)),
    Case("operators: params given as one string",
         refused(lambda: Hessian(model(), CE, data(), params="2.weight")), ("params=['2.weight']",)),
    Case("operators: a mask of the wrong shape",
         refused(lambda: Hessian(model(), CE, data(), masks={"2.weight": torch.ones(6, 3)})), ("mask for '2.weight'",)),
    Case("operators: a mask for a parameter that is not selected",
         refused(lambda: Hessian(model(), CE, data(), params=["0.weight"], masks={"2.weight": torch.ones(3, 6)})),
         ("not selected",)),
    Case("operators: a NumPy mask",
         refused(lambda: Hessian(model(), CE, data(), masks={"2.weight": np.ones((3, 6))})), ("torch.as_tensor",)),
    Case("operators: masks removing every coordinate",
         refused(lambda: Hessian(model(), CE, data(), params=["2.bias"], masks={"2.bias": torch.zeros(3)})),
         ("masked out",)),
    Case("operators: a soft (non 0/1) mask",
         refused(lambda: Hessian(model(), CE, data(), masks={"2.weight": torch.full((3, 6), 0.5)})),
         ("other than 0 and 1",)),
    Case("operators: the loss class instead of an instance",
         refused(lambda: Hessian(model(), nn.CrossEntropyLoss, data())), ("CrossEntropyLoss()",)),
    Case("operators: a device=meta operator", refused(lambda: Hessian(model(), CE, data(), device="meta")),
         ("meta",)),
    Case("operators: eigs on a dense tensor instead of an operator",
         refused(lambda: eigs(torch.eye(4, dtype=F64), k=1)), ("MatrixOperator",)),
    Case("operators: eigs on a scipy LinearOperator",
         refused(lambda: eigs(aslinearoperator(np.eye(4)), k=1)), ("torch dtype and a device",)),
    Case("operators: MatrixOperator @ v with a meta-device vector",
         refused(lambda: MatrixOperator(torch.eye(3, dtype=F64)) @ torch.ones(3, device="meta")), ("meta device",)),
]

CASES = REDUCTIONS + REFUSALS
