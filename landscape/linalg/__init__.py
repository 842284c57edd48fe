"""Solvers over any symmetric linear operator: extreme eigenpairs, trace, spectral density, eigenvalue counts.

They need only ``shape``, ``dtype``, ``device`` and ``matmat`` (see :class:`SymmetricOperator`), count the
matvecs they use, and return frozen dataclasses that carry their errors. Random vectors come from
generators seeded on the operator's device; the Krylov loops move a few numbers per step to the host
and nothing else. Each solver states its memory as a formula; the Lanczos-based ones can keep their basis
in a lower precision or on another device (``basis_dtype=``, ``basis_device=``). With a distributed
operator (``process_group=``), the same call on every rank gives the same result on every rank.
"""
from landscape.linalg.counts import EigenCount, eigencount
from landscape.linalg.density import Estimate, SpectralDensity, density
from landscape.linalg.eigs import Eigenpairs, eigs
from landscape.linalg.memory import MemoryBudgetError
from landscape.linalg.operator import MatrixOperator, SymmetricOperator
from landscape.linalg.trace import TraceEstimate, hutchinson, hutchpp, trace, xtrace

__all__ = [
    "EigenCount", "Eigenpairs", "Estimate", "MatrixOperator", "MemoryBudgetError", "SpectralDensity",
    "SymmetricOperator",
    "TraceEstimate", "density", "eigencount", "eigs", "hutchinson", "hutchpp", "trace", "xtrace",
]
