"""``compile=``: products through ``torch.compile`` where it works, eager with one warning where it does not."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import landscape.operators.compiled as compiled
from landscape.operators import GGN, Fisher, Hessian

from .references import RTOL, dense_hessian, relative_error

CE = nn.CrossEntropyLoss()
F64 = torch.float64


def test_compiled_forward_product_runs_through_dynamo_and_matches_the_dense_hessian(mlp, classification):
    graphs = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    H = Hessian(mlp, CE, classification, dtype=F64, method="forward", compile={"backend": backend})
    V = torch.randn(H.shape[0], 3, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # no fallback
        HV = H.matmat(V)
    assert graphs, "torch.compile never called the backend"
    assert relative_error(HV, dense_hessian(mlp, CE, *classification) @ V) < RTOL


@pytest.fixture
def fake_compile(monkeypatch):
    """Replace torch.compile by ``make(fn) -> compiled fn``; records the names of the functions compiled."""
    names: list[str] = []

    def install(make):
        def fake(fn, **options):
            names.append(fn.__name__)
            return make(fn)
        monkeypatch.setattr(compiled.torch, "compile", fake)
        return names
    return install


def _raising(fn):
    def run(*args):
        raise RuntimeError("backend exploded")
    return run


def _wrong(fn):
    return lambda *args: 2 * fn(*args)


@pytest.mark.parametrize("make, reason", [(_raising, "backend exploded"), (_wrong, "differs")])
def test_a_failing_compilation_warns_once_and_runs_eagerly(mlp, classification, fake_compile, make, reason):
    fake_compile(make)
    H = Hessian(mlp, CE, classification, dtype=F64, method="forward", compile=True)
    dense = dense_hessian(mlp, CE, *classification)
    V = torch.randn(H.shape[0], 2, dtype=F64)
    with pytest.warns(RuntimeWarning, match=reason):
        assert relative_error(H.matmat(V), dense @ V) < RTOL
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # once only
        assert relative_error(H.matmat(V), dense @ V) < RTOL


@pytest.mark.parametrize("operator, options, name", [
    (GGN, {"method": "forward"}, "_forward_product"),
    (Fisher, {"cache_bytes": 0}, "_gradient_block"),
])
def test_ggn_and_fisher_route_their_products_through_compile(mlp, classification, fake_compile, operator,
                                                             options, name):
    names = fake_compile(lambda fn: fn)
    plain = operator(mlp, CE, classification, dtype=F64, **options)
    compiled_op = operator(mlp, CE, classification, dtype=F64, compile=True, **options)
    V = torch.randn(plain.shape[0], 2, dtype=F64)
    assert relative_error(compiled_op.matmat(V), plain.matmat(V)) < RTOL
    assert names == [name]


def test_compile_with_reverse_mode_or_a_bad_value_is_refused(mlp, classification):
    with pytest.raises(ValueError, match="forward-mode"):
        Hessian(mlp, CE, classification, method="reverse", compile=True)
    with pytest.raises(TypeError, match="compile"):
        Hessian(mlp, CE, classification, method="forward", compile="yes")
