import pytest
import torch

from landscape.instruments import SubspaceOverlap, subspace_overlap
from landscape.linalg import eigs

from .conftest import dense_spectrum, hessian


@pytest.mark.parametrize("k", [1, 3, 8])
def test_overlap_matches_the_dense_top_eigenspace_within_its_error_bound(tanh_problem, k):
    H = hessian(*tanh_problem)
    _, vectors = dense_spectrum(H)
    g = H.gradient
    top = vectors[:, -k:]
    expected = float((top.T @ g).pow(2).sum() / (g @ g))
    result = subspace_overlap(H, k, tol=1e-6)
    assert isinstance(result, SubspaceOverlap) and result.k == k and result.matvecs > 0
    assert result.error < 1e-3
    assert abs(result.fraction - expected) <= result.error + 1e-12
    assert result.gradient_norm == pytest.approx(float(g.norm()), rel=1e-12)


def test_a_gradient_inside_the_top_eigenspace_has_overlap_one_and_given_pairs_cost_nothing(tanh_problem):
    H = hessian(*tanh_problem)
    top = eigs(H, k=4, tol=1e-8)
    g = top.eigenvectors[:, :3] @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    before = H.matvecs
    inside = subspace_overlap(H, 3, gradient=g, top=top)
    assert inside.fraction == pytest.approx(1.0, abs=1e-10) and inside.matvecs == 0 == H.matvecs - before
    outside = subspace_overlap(H, 3, gradient=top.eigenvectors[:, 3], top=top)
    assert outside.fraction == pytest.approx(0.0, abs=1e-10)


def test_clear_errors(tanh_problem):
    H = hessian(*tanh_problem)
    with pytest.raises(ValueError, match="fewer than k"):
        subspace_overlap(H, 5, top=eigs(H, k=2))
