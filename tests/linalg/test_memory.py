"""``max_memory=``: the basis dtype, device and size a budget picks, and certified results under each."""
import re
import weakref

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from landscape.linalg import MemoryBudgetError, eigs
from landscape.linalg.memory import block_bytes, lanczos_bytes, plan_lanczos

N, K = 300, 5      # hessian_op: 300 x 300 float64; top five: default ncv 25, basis 26 x 300


def _right(res, spectrum, which, tol):
    truth = spectrum[::-1][:K] if which == "largest" else spectrum[:K]
    err = np.abs(res.eigenvalues.numpy() - truth)
    lam_max = np.abs(spectrum).max()
    assert res.converged, res.reason
    assert np.all(err <= tol * lam_max) and np.all(err <= res.error_bounds.numpy() + N * 1e-16 * lam_max)


def test_a_budget_under_float64_and_float32_bases_forces_bfloat16(hessian_op, hessian_spectrum):
    budget = lanczos_bytes(25, N, torch.bfloat16) + 100
    res = eigs(hessian_op, k=K, tol=1e-2, max_memory=budget)   # bfloat16 rounding, 0.0078, floors the bounds
    assert "torch.bfloat16 on cpu" in res.basis and "torch.float64 on cpu (62400 B), torch.float32 on cpu (31200 B) " \
           "would not fit" in res.basis, res.basis
    _right(res, hessian_spectrum, "largest", 1e-2)


def test_a_tolerance_below_bfloat16_rounding_takes_float32(hessian_op,
                                                                                         hessian_spectrum):
    res = eigs(hessian_op, k=K, tol=1e-4, max_memory=lanczos_bytes(25, N, torch.float32))
    assert "26 vectors in torch.float32" in res.basis, res.basis
    _right(res, hessian_spectrum, "largest", 1e-4)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_a_budget_under_the_smallest_allowed_dtype_reduces_ncv(hessian_op, hessian_spectrum, which):
    # tol 1e-8 under criterion="residual": only a float64 basis is precise enough
    budget = lanczos_bytes(14, N, torch.float64)
    res = eigs(hessian_op, k=K, which=which, tol=1e-8, max_memory=budget)
    assert "15 vectors in torch.float64" in res.basis and "ncv reduced" in res.basis, res.basis
    _right(res, hessian_spectrum, which, 1e-8)


def test_a_budget_below_the_minimum_basis_is_a_named_error(hessian_op):
    with pytest.raises(MemoryBudgetError, match=r"max_memory=7000 B cannot hold a Lanczos basis of the minimum 13 "
                                                r"vectors .*bfloat16"):
        eigs(hessian_op, k=K, tol=1e-2, max_memory=7000)
    with pytest.raises(MemoryBudgetError, match="less precise basis"):
        eigs(hessian_op, k=K, tol=1e-8, max_memory=7000)
    with pytest.raises(ValueError, match="positive number of bytes"):
        eigs(hessian_op, k=K, max_memory=-1)


def test_block_budget_reduces_ncv_or_is_a_named_error(hessian_op, hessian_spectrum):
    floor = block_bytes(3 * K + K, K, K, N, torch.float64)
    res = eigs(hessian_op, k=K, tol=1e-6, method="block", max_memory=floor)
    assert "ncv=20" in res.basis and "ncv reduced" in res.basis, res.basis
    _right(res, hessian_spectrum, "largest", 1e-6)
    with pytest.raises(MemoryBudgetError, match="block Lanczos"):
        eigs(hessian_op, k=K, tol=1e-6, method="block", max_memory=floor - 1)


def test_an_accelerator_basis_that_fits_in_no_dtype_moves_to_the_host():
    plan = plan_lanczos(N, K, 25, torch.float32, torch.device("meta"), 1000, None, None, 1e-2)
    assert plan.device == torch.device("cpu") and plan.dtype == torch.float32 and plan.ncv == 25
    assert "torch.bfloat16 on meta (15600 B) would not fit" in plan.reason, plan.reason


def test_a_refinement_that_does_not_fit_is_skipped_and_not_certified(spectrum_op, hessian_spectrum):
    spectrum = hessian_spectrum.copy()
    spectrum[-2] = spectrum[-1]      # a double top eigenvalue: single-vector Lanczos sees one copy
    op = spectrum_op(spectrum)
    res = eigs(op, k=K, tol=1e-6, max_memory=lanczos_bytes(25, N, torch.float64))
    assert not res.converged and "the block refinement was skipped: max_memory" in res.reason, res.reason
    _right(eigs(op, k=K, tol=1e-6), spectrum, "largest", 1e-6)     # without the budget it is found


class _PeakStorage(TorchDispatchMode):
    """Peak bytes of the live storages of at least ``min_bytes`` that torch operations create inside the mode
    (a storage is live while a tensor made inside the mode still views it)."""

    def __init__(self, min_bytes):
        super().__init__()
        self.min_bytes, self.views, self.sizes, self.now, self.peak = min_bytes, {}, {}, 0, 0

    def _release(self, key):
        self.views[key] -= 1
        if self.views[key] == 0:
            self.now -= self.sizes.pop(key)
            del self.views[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() >= self.min_bytes:
                key = t.untyped_storage().data_ptr()
                if key not in self.views:
                    self.views[key], self.sizes[key] = 0, t.untyped_storage().nbytes()
                    self.now += self.sizes[key]
                    self.peak = max(self.peak, self.now)
                self.views[key] += 1
                weakref.finalize(t, self._release, key)
        return out


@pytest.mark.parametrize("which, k, b", [("largest", 5, 5), ("smallest", 5, 5), ("largest", 3, 6), ("both", 2, 4)])
def test_stated_memory_bounds_the_peak_of_live_vectors(hessian_op, which, k, b):
    wanted = 2 * k if which == "both" else k
    with _PeakStorage(N * 8) as block:
        res = eigs(hessian_op, k=k, which=which, tol=1e-6, method="block", block_size=b)
    ncv = int(re.search(r"ncv=(\d+)", res.basis).group(1))
    assert block.peak <= block_bytes(ncv, b, wanted, N, torch.float64), res.basis
    with _PeakStorage(N * 8) as single:
        res = eigs(hessian_op, k=k, which=which, tol=1e-6)
    ncv = int(re.search(r"of (\d+) vectors", res.basis).group(1)) - 1
    # the basis, plus the returned eigenvectors and a step's work vectors, which max_memory does not count
    assert single.peak <= lanczos_bytes(ncv, N, torch.float64) + (wanted + 6) * N * 8, res.basis
