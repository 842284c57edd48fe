import numpy as np
import pytest
import torch

from landscape.linalg import TraceEstimate, hutchinson, hutchpp, trace

SEEDS = 200


def _errors(op, exact, method, matvecs):
    estimates = [trace(op, matvecs, method, seed=s) for s in range(SEEDS)]
    return np.array([e.value - exact for e in estimates]), np.array([e.stderr for e in estimates])


@pytest.mark.parametrize("method", ["hutch++", "hutchinson"])
@pytest.mark.parametrize("matvecs", [30, 99])
def test_stderr_covers_exact_trace_at_the_stated_rate(hessian_op, hessian_spectrum, method, matvecs):
    """|error| < 2 stderr for ~95% of seeds; with 200 seeds the binomial spread is 1.5%, and a t-statistic
    from 10 samples (Hutch++ at 30 matvecs) covers 92%: accept 88% to 99.5%."""
    err, se = _errors(hessian_op, hessian_spectrum.sum(), method, matvecs)
    coverage = np.mean(np.abs(err) < 2 * se)
    assert 0.88 <= coverage <= 0.995
    assert abs(err.mean()) < 3 * err.std() / np.sqrt(SEEDS)     # unbiased


def test_hutchpp_spreads_far_less_than_hutchinson_on_outlier_spectra(hessian_op, hessian_spectrum):
    spread = {m: _errors(hessian_op, hessian_spectrum.sum(), m, 99)[0].std() for m in ("hutch++", "hutchinson")}
    assert spread["hutchinson"] > 10 * spread["hutch++"]


def test_hutchpp_is_exact_when_the_sketch_spans_a_low_rank_operator(spectrum_op):
    eigenvalues = np.zeros(100)
    eigenvalues[:4] = [9.0, -3.0, 2.0, 0.5]
    est = hutchpp(spectrum_op(eigenvalues), matvecs=18)
    assert est.value == pytest.approx(8.5, abs=1e-10) and est.stderr < 1e-10


def test_matvecs_counted_and_method_recorded(hessian_op):
    est = trace(hessian_op, matvecs=50)
    assert isinstance(est, TraceEstimate) and est.method == "hutch++"
    assert est.matvecs == 50 == hessian_op.matvecs
    assert hutchinson(hessian_op, matvecs=7).matvecs == 7


def test_probes_come_from_a_seeded_generator_and_leave_the_global_rng_alone(hessian_op):
    state = torch.get_rng_state()
    a, b = trace(hessian_op, seed=3), trace(hessian_op, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert a == b and trace(hessian_op, seed=4).value != a.value


@pytest.mark.parametrize("call, match", [
    (lambda op: trace(op, method="exact"), "method must be one of"),
    (lambda op: hutchpp(op, matvecs=3), "matvecs >= 4"),
    (lambda op: hutchinson(op, matvecs=1), "matvecs >= 2"),
])
def test_clear_errors(hessian_op, call, match):
    with pytest.raises(ValueError, match=match):
        call(hessian_op)
