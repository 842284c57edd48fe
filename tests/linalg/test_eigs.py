import math
import time

import numpy as np
import pytest
import torch

from landscape import ParamSpace, build_model, load_dataset
from landscape.linalg import Eigenpairs, MatrixOperator, eigs
from landscape.operators import Hessian


@pytest.fixture(scope="module")
def digits_hessian():
    """A ReLU MLP (64-8-10, 610 weights) trained by full-batch Adam to loss ~1e-3 on 400 digits, float64: its
    dense Hessian and eigenvalues (ascending). Its most negative eigenvalues lie within 7e-4 lambda_max of 0."""
    data = load_dataset("digits")
    x, y = data.train[0][:400].double(), data.train[1][:400]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", data.input_shape, data.num_classes, widths=(8,)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(800):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    H = Hessian(model, loss_fn, (x, y), dtype=torch.float64)
    D = H.matmat(torch.eye(H.shape[0], dtype=torch.float64))
    D = (D + D.T) / 2
    return D, torch.linalg.eigvalsh(D).numpy()


def _true_residuals(op, res):
    V, lam = res.eigenvectors, res.eigenvalues
    return torch.linalg.vector_norm(op.A @ V - V * lam, dim=0)


def _reference(spectrum, which, k):
    descending = spectrum[::-1]
    return {"largest": descending[:k], "smallest": spectrum[:k],
            "both": np.concatenate([descending[:k], spectrum[:k][::-1]])}[which]


@pytest.mark.parametrize("method", ["lanczos", "block"])
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
@pytest.mark.parametrize("tol", [1e-4, 1e-8])
def test_eigenvalues_meet_tolerance_and_error_bounds_hold(hessian_op, hessian_spectrum, which, tol, method):
    res = eigs(hessian_op, k=5, which=which, tol=tol, method=method)
    assert res.converged and res.reason == "" and res.matvecs == hessian_op.matvecs and res.method == method
    lam_max = np.abs(hessian_spectrum).max()
    err = np.abs(res.eigenvalues.numpy() - _reference(hessian_spectrum, which, 5))
    assert np.all(err <= tol * lam_max)
    assert np.all(err <= res.error_bounds.numpy())
    assert np.all(res.residuals.numpy() <= tol * res.scale)
    assert res.scale <= lam_max * (1 + 1e-12)


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_reported_residuals_equal_true_residuals(hessian_op, which):
    res = eigs(hessian_op, k=4, which=which, tol=1e-6)
    assert torch.allclose(res.residuals, _true_residuals(hessian_op, res), rtol=1e-6, atol=1e-11 * res.scale)


def test_eigenvectors_are_orthonormal_and_ordered(hessian_op):
    for which, k in [("largest", 5), ("smallest", 5), ("both", 3)]:
        res = eigs(hessian_op, k=k, which=which, tol=1e-6)
        V = res.eigenvectors
        assert V.shape == (300, res.eigenvalues.numel())
        assert torch.allclose(V.T @ V, torch.eye(V.shape[1], dtype=V.dtype), atol=1e-10)
        diffs = torch.diff(res.eigenvalues)
        assert bool((diffs > 0).all()) if which == "smallest" else bool((diffs < 0).all())


def test_eigenvalue_criterion_stops_no_later_and_bounds_hold(hessian_op, hessian_spectrum):
    by_residual = eigs(hessian_op, k=5, which="largest", tol=1e-8)
    by_eigenvalue = eigs(hessian_op, k=5, which="largest", tol=1e-8, criterion="eigenvalue")
    assert by_eigenvalue.converged and by_eigenvalue.matvecs <= by_residual.matvecs
    err = np.abs(by_eigenvalue.eigenvalues.numpy() - hessian_spectrum[::-1][:5])
    assert np.all(err <= by_eigenvalue.error_bounds.numpy())
    assert np.all(by_eigenvalue.error_bounds.numpy() <= 1e-8 * by_eigenvalue.scale)


def test_top5_of_hessian_like_spectrum_within_20_matvecs_certification_included(hessian_op, hessian_spectrum):
    res = eigs(hessian_op, k=5, which="largest", tol=1e-4)
    rel = np.abs(res.eigenvalues.numpy() / hessian_spectrum[::-1][:5] - 1)
    assert res.converged and res.matvecs <= 20 and np.all(rel <= 1e-4)
    assert 0 < res.certify_matvecs <= 8


def test_warm_start_from_previous_eigenvectors_needs_barely_more_than_k_matvecs(spectrum_op, hessian_spectrum):
    """A cold start needs about 2k + 1 matvecs here; a warm start cannot need fewer than k + 1 (the k
    directions and one residual), so "about half" is the floor."""
    before = spectrum_op(hessian_spectrum)
    drift = torch.randn(300, 300, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    drift = (drift + drift.T) * (1e-3 * before.A.norm() / (drift + drift.T).norm())
    after = MatrixOperator(before.A + drift)
    previous = eigs(before, k=5, tol=1e-8)
    cold = eigs(after, k=5, tol=1e-4)
    warm = eigs(after, k=5, tol=1e-4, v0=previous.eigenvectors)
    solve = warm.matvecs - warm.certify_matvecs
    assert warm.converged and solve <= 5 + 1 and cold.matvecs - cold.certify_matvecs >= 1.8 * solve
    assert warm.certify_matvecs <= 10   # the verification pass: a few steps on a separated spectrum
    assert torch.allclose(warm.eigenvalues, cold.eigenvalues, rtol=1e-6)


def test_warm_start_inside_an_invariant_subspace_converges_at_once(hessian_op):
    exact = eigs(hessian_op, k=3, tol=1e-10)
    again = eigs(hessian_op, k=3, tol=1e-6, v0=exact.eigenvectors)
    assert again.converged and again.matvecs - again.certify_matvecs <= 4
    assert torch.allclose(again.eigenvalues, exact.eigenvalues, rtol=1e-9)


def test_runs_with_restarts_on_a_small_basis(hessian_op, hessian_spectrum):
    res = eigs(hessian_op, k=5, which="smallest", tol=1e-6, ncv=12)
    assert res.converged and res.matvecs > 12
    assert np.allclose(res.eigenvalues.numpy(), hessian_spectrum[:5], atol=1e-6 * 50)


def test_budget_exhausted_reports_not_converged(hessian_op):
    res = eigs(hessian_op, k=5, which="smallest", tol=1e-10, max_matvecs=12)
    assert not res.converged and res.matvecs == 12 and res.eigenvalues.shape == (5,)
    assert "max_matvecs=12" in res.reason


def test_float32_operator(spectrum_op, hessian_spectrum):
    op = spectrum_op(hessian_spectrum, dtype=torch.float32)
    res = eigs(op, k=5, tol=1e-4)
    assert res.converged and res.eigenvalues.dtype == torch.float32
    assert np.allclose(res.eigenvalues.numpy(), hessian_spectrum[::-1][:5], rtol=1e-4)


def test_diagonal_matrix_with_exact_invariant_subspaces():
    op = MatrixOperator(torch.diag(torch.arange(-3.0, 7.0, dtype=torch.float64)))
    res = eigs(op, k=2, which="both")
    assert res.converged and res.eigenvalues.tolist() == pytest.approx([6.0, 5.0, -2.0, -3.0])


def test_seeded_and_global_rng_untouched(hessian_op):
    state = torch.get_rng_state()
    a, b = eigs(hessian_op, k=3, seed=5), eigs(hessian_op, k=3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.eigenvectors, b.eigenvectors) and a.matvecs == b.matvecs


def test_eigenvector_dicts_follow_the_operator_space():
    model = torch.nn.Linear(3, 2).double()
    space = ParamSpace(model)
    M = torch.randn(space.dim, space.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    class SpacedOperator(MatrixOperator):
        pass

    op = SpacedOperator(M + M.T)
    op.space = space
    res = eigs(op, k=2)
    dicts = res.eigenvector_dicts()
    assert len(dicts) == 2 and dicts[0]["weight"].shape == (2, 3) and dicts[0]["bias"].shape == (2,)
    assert torch.equal(space.to_flat(dicts[1]), res.eigenvectors[:, 1])
    with pytest.raises(ValueError, match="no `space`"):
        eigs(MatrixOperator(M + M.T), k=2).eigenvector_dicts()


def test_result_is_frozen(hessian_op):
    res = eigs(hessian_op, k=2)
    assert isinstance(res, Eigenpairs)
    with pytest.raises(AttributeError):
        res.matvecs = 0


class _Rectangular:
    shape, dtype, device = (4, 5), torch.float64, torch.device("cpu")

    def matmat(self, V):
        return V


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 300}, "below 300"),
    ({"k": 150, "which": "both"}, "below 300"),
    ({"k": 0}, "at least 1"),
    ({"which": "largest_magnitude"}, "which must be one of"),
    ({"criterion": "change"}, "criterion must be one of"),
    ({"tol": 0.0}, "tol must be positive"),
    ({"k": 5, "ncv": 5}, "ncv=5"),
    ({"k": 5, "max_matvecs": 3}, "max_matvecs=3"),
    ({"v0": torch.ones(299, dtype=torch.float64)}, "v0 must have shape"),
    ({"v0": torch.zeros(300, 2, dtype=torch.float64)}, "zero or non-finite"),
    ({"method": "arnoldi"}, "method must be one of"),
    ({"method": "block", "block_size": 0}, "block_size=0"),
    ({"method": "block", "basis_dtype": torch.float32}, "apply to method='lanczos'"),
])
def test_clear_errors(hessian_op, kwargs, match):
    with pytest.raises(ValueError, match=match):
        eigs(hessian_op, **kwargs)


def test_errors_on_non_square_and_non_symmetric_operators():
    with pytest.raises(ValueError, match="not square"):
        eigs(_Rectangular(), k=1)
    with pytest.raises(ValueError, match="not symmetric"):
        MatrixOperator(torch.triu(torch.ones(4, 4)))
    with pytest.raises(TypeError, match="shape"):
        eigs(torch.eye(3), k=1)


def test_non_finite_products_are_reported(hessian_op):
    hessian_op.A[0, 0] = math.nan
    with pytest.raises(FloatingPointError, match="non-finite"):
        eigs(hessian_op, k=2)


# --- certification: the returned values are the k extreme ones (issue 15) ---------------------------------

def _planted_multiplicity(base: np.ndarray, m: int) -> np.ndarray:
    """``base`` (ascending, top 50) with its top ``m`` eigenvalues replaced by 50, of multiplicity ``m``."""
    spectrum = base.copy()
    spectrum[-m:] = 50.0
    return np.sort(spectrum)


def _planted_bottom_cluster() -> np.ndarray:
    """A ReLU MLP at interpolation: outliers up to 50, a bulk at 0 whose negative part reaches
    ``-4e-4 lambda_max``, and the five most negative eigenvalues within 5% of each other near
    ``-5e-4 lambda_max``."""
    rng = np.random.default_rng(3)
    outliers = 50.0 * np.geomspace(1.0, 0.06, 8)
    positive = np.minimum(np.abs(rng.laplace(0.0, 0.05, 230)), 1.5)
    negative = -np.minimum(np.abs(rng.laplace(0.0, 0.004, 57)), 0.02)
    cluster = -5e-4 * 50.0 * np.linspace(1.0, 0.95, 5)
    return np.sort(np.concatenate([outliers, positive, negative, cluster]))


def _planted_null_space(base: np.ndarray, zeros: int = 30) -> np.ndarray:
    """A positive semi-definite spectrum (a GGN, or cross-entropy's null space) with ``zeros`` zero eigenvalues:
    ``|base|`` with its ``zeros`` smallest set to 0."""
    spectrum = np.sort(np.abs(base))
    spectrum[:zeros] = 0.0
    return np.sort(spectrum)


def _extreme(spectrum: np.ndarray, which: str, k: int) -> np.ndarray:
    return spectrum[::-1][:k] if which == "largest" else spectrum[:k]


def _assert_certified_and_right(res, spectrum, which, k, tol):
    """``converged`` is never True for a set missing an extreme eigenvalue: here it must be True, and right."""
    lam_max = np.abs(spectrum).max()
    err = np.abs(res.eigenvalues.numpy() - _extreme(spectrum, which, k))
    assert res.converged, res.reason
    assert np.all(err <= tol * lam_max), f"certified {res.eigenvalues.tolist()} but the truth is " \
                                         f"{_extreme(spectrum, which, k).tolist()}"
    assert np.all(err <= res.error_bounds.numpy() + spectrum.size * np.finfo(float).eps * lam_max)   # + eigvalsh's


@pytest.mark.parametrize("method", ["lanczos", "block"])
@pytest.mark.parametrize("m", [2, 3, 5])
def test_repeated_top_eigenvalue_is_returned_with_its_multiplicity(spectrum_op, hessian_spectrum, m, method):
    """Single-vector Lanczos sees one copy of a multiple eigenvalue: the old solver returned 50 once and the
    next eigenvalues instead of the other copies, with ``converged=True``."""
    spectrum = _planted_multiplicity(hessian_spectrum, m)
    for seed in range(2):
        res = eigs(spectrum_op(spectrum), k=5, which="largest", tol=1e-6, seed=seed, method=method)
        _assert_certified_and_right(res, spectrum, "largest", 5, 1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tight_bottom_cluster_is_resolved_or_not_certified(spectrum_op, seed):
    """The five most negative eigenvalues within 5% of each other near -5e-4 lambda_max: the old solver
    skipped one of them (each seed) and said converged."""
    spectrum = _planted_bottom_cluster()
    res = eigs(spectrum_op(spectrum), k=5, which="smallest", tol=1e-5, seed=seed)
    _assert_certified_and_right(res, spectrum, "smallest", 5, 1e-5)


@pytest.mark.parametrize("method", ["lanczos", "block"])
def test_null_space_returns_zeros(spectrum_op, hessian_spectrum, method):
    """A 30-dimensional null space: the truth is [0, 0, 0]; the old solver returned one zero and two values of
    ~1e-4 lambda_max, converged."""
    spectrum = _planted_null_space(hessian_spectrum)
    for seed in range(2):
        res = eigs(spectrum_op(spectrum), k=3, which="smallest", tol=1e-4, seed=seed, method=method)
        _assert_certified_and_right(res, spectrum, "smallest", 3, 1e-4)


def test_trained_digits_mlp_smallest_eigenvalues(digits_hessian):
    """The issue's case, small: a ReLU MLP trained on digits to low loss, float64, dense truth. At tol=1e-3
    the old solver returned the three most negative eigenvalues off by 1.1-1.4e-3 lambda_max, converged."""
    D, spectrum = digits_hessian
    for seed in range(2):
        res = eigs(MatrixOperator(D), k=3, which="smallest", tol=1e-3, seed=seed)
        _assert_certified_and_right(res, spectrum, "smallest", 3, 1e-3)


def test_too_small_budget_for_certification_says_why(spectrum_op, hessian_spectrum):
    spectrum = _planted_multiplicity(hessian_spectrum, 3)
    res = eigs(spectrum_op(spectrum), k=5, which="largest", tol=1e-6, max_matvecs=30)
    assert not res.converged and res.matvecs <= 30
    assert "beyond the k-th" in res.reason or "max_matvecs" in res.reason


def test_certify_false_skips_the_pass_and_is_not_converged(hessian_op):
    res = eigs(hessian_op, k=3, tol=1e-6, certify=False)
    assert not res.converged and res.certify_matvecs == 0 and "certify=False" in res.reason
    assert res.absolute_tol == pytest.approx(1e-6 * res.scale)
    assert "tol * |lambda|_max" in res.tolerance and f"{res.absolute_tol:.3g}" in res.tolerance


def test_block_method_uses_blocks_of_the_operator(spectrum_op, hessian_spectrum):
    class Recording(MatrixOperator):
        widths: list = []

        def matmat(self, V):
            self.widths.append(V.shape[1])
            return super().matmat(V)

    op = Recording(spectrum_op(hessian_spectrum).A)
    res = eigs(op, k=4, which="largest", tol=1e-6, method="block", certify=False)
    assert max(op.widths) == 4 and sum(op.widths) == res.matvecs
    assert np.allclose(res.eigenvalues.numpy(), hessian_spectrum[::-1][:4], atol=1e-6 * 50)


def test_block_method_reads_the_host_a_fixed_number_of_times_per_step_whatever_the_block_size(
        spectrum_op, hessian_spectrum, host_syncs):
    reads = {}
    for b in (2, 8):
        host_syncs.count = 0
        res = eigs(spectrum_op(hessian_spectrum), k=2, tol=1e-8, method="block", block_size=b, certify=False)
        steps = res.matvecs / b
        reads[b] = host_syncs.count / steps
    # three transfers per step (kept columns, new rows of G, residual norms), each `.cpu()` then `.numpy()`;
    # before, each column of a block cost two reads more (28 per step for blocks of 8)
    assert reads[8] <= 6.5 and reads[2] <= 6.5, f"host reads per block step: {reads}"


class _TimedMatrix(MatrixOperator):
    """A dense operator whose product of ``b`` vectors takes ``per_call + b * per_vector`` seconds more, like
    an accelerator (large fixed cost per launch) or a CPU (cost proportional to the vectors)."""

    def __init__(self, A, per_call, per_vector):
        super().__init__(A)
        self.per_call, self.per_vector = per_call, per_vector

    def matmat(self, V):
        time.sleep(self.per_call + V.shape[1] * self.per_vector)
        return super().matmat(V)


@pytest.mark.parametrize("per_call, per_vector, picked", [(0.008, 0.0002, "block"), (0.0002, 0.004, "lanczos")])
def test_auto_picks_block_only_when_a_block_product_is_cheap_per_vector(spectrum_op, hessian_spectrum, per_call,
                                                                       per_vector, picked):
    op = _TimedMatrix(spectrum_op(hessian_spectrum).A, per_call, per_vector)
    res = eigs(op, k=3, which="largest", tol=1e-6, method="auto")
    expected_ratio = (per_call + 3 * per_vector) / (3 * (per_call + per_vector))
    assert res.method == picked and res.method_reason.startswith("auto:"), res.method_reason
    assert res.block_cost_ratio == pytest.approx(expected_ratio, rel=0.5)
    assert f"{res.block_cost_ratio:.2f}x" in res.method_reason and "measured now (8 products)" in res.method_reason
    _assert_certified_and_right(res, hessian_spectrum, "largest", 3, 1e-6)


def test_auto_measures_once_per_operator_and_leaves_the_solve_unchanged(spectrum_op, hessian_spectrum):
    op = spectrum_op(hessian_spectrum)   # a CPU product of 5 vectors is no cheaper per vector than 5 products
    op.matmat = lambda V, _matmat=op.matmat: (time.sleep(0.002 * V.shape[1]), _matmat(V))[1]
    first = eigs(op, k=5, which="smallest", tol=1e-4, method="auto")
    again = eigs(op, k=5, which="smallest", tol=1e-4, method="auto")
    plain = eigs(op, k=5, which="smallest", tol=1e-4, method="lanczos")
    assert first.method == again.method == "lanczos"
    assert first.matvecs == plain.matvecs + 2 * (5 + 1) and again.matvecs == plain.matvecs
    assert "earlier call" in again.method_reason and again.block_cost_ratio == first.block_cost_ratio
    assert torch.equal(again.eigenvalues, plain.eigenvalues) and plain.method_reason == "requested"
    _assert_certified_and_right(again, hessian_spectrum, "smallest", 5, 1e-4)


def test_auto_with_a_basis_dtype_is_lanczos_without_measuring(hessian_op):
    res = eigs(hessian_op, k=2, tol=1e-2, method="auto", basis_dtype=torch.float32)
    assert res.method == "lanczos" and "basis_dtype" in res.method_reason and math.isnan(res.block_cost_ratio)


def test_auto_falls_back_to_lanczos_when_block_does_not_fit_max_memory(spectrum_op, hessian_spectrum):
    op = _TimedMatrix(spectrum_op(hessian_spectrum).A, 0.008, 0.0002)     # block would win on time
    res = eigs(op, k=3, tol=1e-6, method="auto", max_memory=300 * 8 * 21)
    assert res.method == "lanczos" and "does not fit max_memory" in res.method_reason, res.method_reason
    assert "21 vectors in torch.float64" in res.basis, res.basis
    _assert_certified_and_right(res, hessian_spectrum, "largest", 3, 1e-6)
