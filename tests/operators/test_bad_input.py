"""Bad vectors, data, losses and parameter selections get a named error with the fix, never a traceback or
a silent cast."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import aslinearoperator
from torch import nn

from landscape.linalg import MatrixOperator, eigs
from landscape.operators import GGN, Fisher, Hessian

CE = nn.CrossEntropyLoss()
F64 = torch.float64


@pytest.fixture
def hessian(mlp, classification):
    return Hessian(mlp, CE, classification, dtype=F64, method="reverse")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("operator", [Hessian, GGN, Fisher])
def test_a_non_finite_vector_is_named_not_blamed_on_overflow(mlp, classification, operator, value):
    op = operator(mlp, CE, classification, dtype=F64)
    v = torch.ones(57, dtype=F64)
    v[40] = value
    with pytest.raises(ValueError, match=rf"input vector 0 is {value} at coordinate 40 \(parameter '2.weight'\)"):
        op @ v


def test_a_meta_vector_is_named(hessian):
    with pytest.raises(ValueError, match="meta device.*real device"):
        hessian @ torch.ones(57, device="meta")


def test_a_complex_vector_is_refused_not_cast_to_its_real_part(hessian):
    with pytest.raises(TypeError, match="real vector.*complex128"):
        hessian @ torch.ones(57, dtype=torch.complex128)


def test_a_numpy_vector_is_named_with_the_conversion(hessian):
    with pytest.raises(TypeError, match="torch.Tensor.*ndarray.*torch.as_tensor"):
        hessian @ np.ones(57)


def test_a_sparse_vector_is_named(hessian):
    with pytest.raises(TypeError, match="dense tensor.*to_dense"):
        hessian.matmat(torch.eye(57, dtype=F64)[:, :2].to_sparse())


@pytest.mark.parametrize("shape", [(56,), (57, 2, 1), ()])
def test_a_vector_of_the_wrong_shape_is_named(hessian, shape):
    with pytest.raises(ValueError, match=r"expects shape \(57, b\)"):
        hessian @ torch.ones(shape, dtype=F64)


def test_integer_vectors_are_cast_exactly(hessian):
    e = torch.zeros(57, dtype=torch.int64)
    e[3] = 1
    assert torch.equal(hessian @ e, hessian @ e.to(F64))


def test_to_dense_refuses_a_block_that_is_not_positive(hessian):
    with pytest.raises(ValueError, match="block must be a positive"):
        hessian.to_dense(block=0)


def test_a_real_dtype_is_required(mlp, classification):
    with pytest.raises(TypeError, match="real floating-point"):
        Hessian(mlp, CE, classification, dtype=torch.complex128)
    with pytest.raises(TypeError, match="real floating-point"):
        Hessian(mlp, CE, classification, dtype=torch.int64)


def test_inputs_and_targets_of_different_lengths_are_named(mlp, classification):
    x, y = classification
    with pytest.raises(ValueError, match="batch 1: inputs have 10 samples but targets have 9"):
        Hessian(mlp, CE, [(x[:10], y[:10]), (x[10:], y[10:-1])])


def test_empty_data_is_named(mlp):
    with pytest.raises(ValueError, match="data is empty"):
        Hessian(mlp, CE, [])


def test_a_loss_that_cannot_be_evaluated_names_the_batch_and_the_shapes(mlp, classification):
    x, y = classification
    with pytest.raises(ValueError, match=r"failed on batch 0 \(inputs \(20, 5\).*targets \(20,\) torch.float32"):
        Hessian(mlp, CE, (x, y.float() + 0.5))   # fractional class indices
    with pytest.raises(ValueError, match=r"failed on batch 0 \(inputs \(20, 4\)"):
        Hessian(mlp, CE, (x[:, :4], y))           # inputs the model cannot take


def test_a_non_scalar_loss_is_named(mlp, classification):
    with pytest.raises(ValueError, match=r"must return a scalar.*\(20,\) on batch 0"):
        Hessian(mlp, lambda z, t: nn.functional.cross_entropy(z, t, reduction="none"), classification)


def test_parameter_selections_that_select_nothing_or_a_string_are_named(mlp, classification):
    with pytest.raises(ValueError, match="selection matched none"):
        Hessian(mlp, CE, classification, params=lambda name, p: name.startswith("nothing"))
    with pytest.raises(KeyError, match="unknown parameter names"):
        Hessian(mlp, CE, classification, params=["2.wieght"])
    with pytest.raises(TypeError, match=r"params=\['2.weight'\]"):
        Hessian(mlp, CE, classification, params="2.weight")


def test_masks_with_wrong_names_shapes_or_types_are_named(mlp, classification):
    with pytest.raises(KeyError, match="not selected"):
        Hessian(mlp, CE, classification, masks={"3.weight": torch.ones(3, 6)})
    with pytest.raises(ValueError, match=r"mask for '2.weight' has shape \(6, 3\)"):
        Hessian(mlp, CE, classification, masks={"2.weight": torch.ones(6, 3)})
    with pytest.raises(TypeError, match="torch.as_tensor"):
        Hessian(mlp, CE, classification, masks={"2.weight": np.ones((3, 6))})
    with pytest.raises(ValueError, match="every selected coordinate is masked out"):
        Hessian(mlp, CE, classification, params=["2.bias"], masks={"2.bias": torch.zeros(3)})


def test_the_dense_adapter_casts_and_checks_its_vectors():
    A = MatrixOperator(torch.eye(3, dtype=F64))
    assert (A @ torch.ones(3)).dtype == F64
    with pytest.raises(ValueError, match="meta device"):
        A @ torch.ones(3, device="meta")
    with pytest.raises(ValueError, match=r"expects shape \(3, b\)"):
        A @ torch.ones(4)


def test_a_soft_mask_is_refused_with_the_fix(mlp, classification):
    with pytest.raises(ValueError, match=r"other than 0 and 1.*\(mask != 0\).float\(\)"):
        Hessian(mlp, CE, classification, masks={"2.weight": torch.full((3, 6), 0.5)})


def test_a_loss_class_or_a_non_callable_loss_is_named(mlp, classification):
    with pytest.raises(TypeError, match=r"the class CrossEntropyLoss.*CrossEntropyLoss\(\)"):
        Hessian(mlp, nn.CrossEntropyLoss, classification)
    with pytest.raises(TypeError, match="must be a callable.*got str"):
        GGN(mlp, "cross_entropy", classification)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a process without CUDA")
@pytest.mark.parametrize("device", ["cuda", "meta"])
def test_a_device_the_process_cannot_use_is_named(mlp, classification, device):
    with pytest.raises(ValueError, match=f"device.*{device}"):
        Hessian(mlp, CE, classification, device=device)


def test_solvers_name_what_is_not_an_operator():
    with pytest.raises(TypeError, match="Tensor: wrap a dense matrix in landscape.linalg.MatrixOperator"):
        eigs(torch.eye(4, dtype=F64), k=1)
    with pytest.raises(TypeError, match="needs a torch dtype and a device"):
        eigs(aslinearoperator(np.eye(4)), k=1)
