"""Edge cases of the errors of SLQ-derived counts (``SpectralDensity.negative_fraction``, ``saddle_index``, and
where they are printed: ``analyze``'s analysis.json and report.md, tracker records): against the exact count
of the dense float64 spectrum, each result must hold the truth within its total ``error`` or say itself that it
is unreliable. The failure of issue 15: most of the SLQ weight on one node next to the threshold, the
quadrature error in a side field and a ``±`` of the sampling error alone.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from audit.common import Case
from landscape.analysis.analyze import AnalyzeSettings, analyze
from landscape.instruments import saddle_index
from landscape.linalg import MatrixOperator, density
from landscape.linalg.uncertainty import format_estimate
from landscape.operators import Hessian
from landscape.training.tracker import Tracker, TrackerSettings

F64 = torch.float64
CE = nn.CrossEntropyLoss()


def piled_at_threshold(n: int = 300) -> tuple[MatrixOperator, np.ndarray, float]:
    """``Q diag(λ) Q^T`` with 86% of the eigenvalues in a narrow cluster straddling ``-1e-3 |λ|_max`` (12
    outliers up to 50, the rest in ``[0.01, 1]``); the operator, the eigenvalues and ``|λ|_max``."""
    rng = np.random.default_rng(0)
    cluster = int(0.86 * n)
    eigenvalues = np.concatenate([50.0 * np.geomspace(1.0, 0.02, 12), rng.normal(-0.05, 0.015, cluster),
                                  rng.uniform(0.01, 1.0, n - 12 - cluster)])
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(1)))
    return MatrixOperator(Q @ torch.diag(torch.tensor(eigenvalues)) @ Q.T), eigenvalues, 50.0


def tanh_problem(seed: int = 0) -> tuple[nn.Module, tuple[Tensor, Tensor]]:
    """A 5-6-3 tanh MLP at its float64 initialisation (57 parameters) and 40 samples."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 5, generator=gen, dtype=F64)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double(), (x, torch.randint(0, 3, (40,),
                                                                                                  generator=gen))


def exact_fraction(model: nn.Module, data: tuple[Tensor, Tensor], threshold: float) -> float:
    eigenvalues = torch.linalg.eigvalsh(Hessian(model, CE, data, dtype=F64).to_dense())
    return float((eigenvalues < -threshold).double().mean())


def judged(what: str, value: float, error: float, reliable: bool, exact: float) -> str | None:
    """``None`` when ``value ± error`` holds ``exact`` or the result says it is unreliable; else what is wrong."""
    if abs(value - exact) <= error or not reliable:
        return None
    return f"{what} {value:.4g} ± {error:.2g} called reliable, but the exact value is {exact:.4g}"


def negative_fraction_piled() -> str | None:
    op, eigenvalues, scale = piled_at_threshold()
    e = density(op, steps=30, runs=10, seed=0).negative_fraction(1e-3 * scale)
    exact = float(np.mean(eigenvalues < -1e-3 * scale))
    return judged("negative fraction", e.value, e.error, e.reliable, exact)


def saddle_index_piled() -> str | None:
    op, eigenvalues, scale = piled_at_threshold()
    r = saddle_index(op, 1e-3, k=10, steps=30, runs=5, seed=0)
    exact = float(np.mean(eigenvalues < -1e-3 * scale))
    return judged("saddle index", r.fraction, r.error, r.reliable, exact)


def analyze_saddle_index() -> str | None:
    """The saddle index in analysis.json against the dense truth, and printed in report.md as value ± total
    error (marked when unreliable)."""
    model, data = tanh_problem()
    settings = AnalyzeSettings(samples=40, eigenvalues=3, max_matvecs=300, trace_matvecs=12, density_steps=20,
                               density_runs=4, points=3)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "net.pt"
        torch.save(model.state_dict(), checkpoint)
        analyze(checkpoint, model=model, data=data, loss_fn=CE, out_dir=Path(tmp) / "out", settings=settings,
                device="cpu", progress=False)
        record = json.loads((Path(tmp) / "out" / "analysis.json").read_text())["checkpoints"][0]
        report = (Path(tmp) / "out" / "report.md").read_text()
    cell = format_estimate(record["saddle_index"], record["saddle_index_error"], record["saddle_index_reliable"],
                           reason=None)
    if f"| {cell} |" not in report:
        return f"report.md does not print the saddle index as {cell!r}"
    return judged("analysis.json saddle_index", record["saddle_index"], record["saddle_index_error"],
                  record["saddle_index_reliable"], exact_fraction(model, data, record["saddle_threshold"]))


def tracker_records(instrument: str) -> str | None:
    """A tracker's ``saddle_index`` or ``density`` record in metrics.jsonl against the dense truth."""
    model, data = tanh_problem(1)
    settings = TrackerSettings(saddle_k=3, density_steps=20, density_runs=4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        Tracker(CE, data, instruments=(instrument,), schedule=1, model=model, run=path, settings=settings).step(0)
        record = json.loads(path.read_text().splitlines()[0])
    if instrument == "saddle_index":
        return judged("saddle_index record", record["fraction"], record["error"], record["reliable"],
                      exact_fraction(model, data, record["threshold"]))
    return judged("density record negative_fraction", record["negative_fraction"],
                  record["negative_fraction_error"], record["negative_fraction_reliable"],
                  exact_fraction(model, data, 0.0))


CASES = [
    Case("slq: negative fraction with 86% of the weight straddling the threshold (planted spectrum)",
         negative_fraction_piled),
    Case("slq: saddle index with the bulk straddling -1e-3 |λ|max (planted spectrum)", saddle_index_piled),
    Case("slq: saddle index in analyze's analysis.json and report.md (tanh MLP, float64)", analyze_saddle_index),
    Case("slq: tracker saddle_index record in metrics.jsonl (tanh MLP, float64)",
         lambda: tracker_records("saddle_index")),
    Case("slq: tracker density record's negative_fraction in metrics.jsonl (tanh MLP, float64)",
         lambda: tracker_records("density")),
]
