"""Solvers over any symmetric linear operator: extreme eigenpairs, trace, spectral density, eigenvalue counts.

They need only ``shape``, ``dtype``, ``device`` and ``matmat`` (see :class:`SymmetricOperator`), count the
matvecs they use, and return frozen dataclasses that carry their errors.
"""
from landscape.linalg.counts import EigenCount, eigencount
from landscape.linalg.density import Estimate, SpectralDensity, density
from landscape.linalg.eigs import Eigenpairs, eigs
from landscape.linalg.operator import MatrixOperator, SymmetricOperator
from landscape.linalg.trace import TraceEstimate, hutchinson, hutchpp, trace

__all__ = [
    "EigenCount", "Eigenpairs", "Estimate", "MatrixOperator", "SpectralDensity", "SymmetricOperator",
    "TraceEstimate", "density", "eigencount", "eigs", "hutchinson", "hutchpp", "trace",
]
