"""Instruments built on curvature operators and solvers: what the loss-landscape literature measures.

=====================  ===================================================================================
module                 measures
=====================  ===================================================================================
``saddle``             saddle index: fraction and count of negative eigenvalues below a tolerance
``escape``             escape dimensions (negative-curvature directions) and the widening experiment
``fisher_trace``       trace of the empirical or true Fisher information
``flatness``           sharpness, trace, Frobenius norm, Occam term, effective dimensionality
                       (``flatness_at_scales``: at several scales z from one solve)
``subspace``           fraction of the gradient in the top Hessian eigenspace
``widening``           function-preserving neuron splitting of MLPs
``deflation``          an operator with known eigenvectors projected out (used by the estimators)
``blocks``             per-block spectra: top eigenvalues, trace and density of each layer's Hessian block
=====================  ===================================================================================

Every result is a frozen dataclass carrying its errors and the matvecs it used.
"""
from landscape.instruments.blocks import BlockSpectra, BlockSpectrum, block_spectra, parameter_blocks
from landscape.instruments.deflation import Deflated
from landscape.instruments.escape import (EscapeDimensions, EscapeExperiment, Minimum, escape_dimensions,
                                          escape_experiment, minimize)
from landscape.instruments.fisher_trace import FisherTrace, fisher_trace
from landscape.instruments.flatness import Flatness, flatness, flatness_at_scales
from landscape.instruments.saddle import SaddleIndex, saddle_index
from landscape.instruments.subspace import SubspaceOverlap, subspace_overlap
from landscape.instruments.widening import linear_chain, widen

__all__ = [
    "BlockSpectra", "BlockSpectrum", "block_spectra", "parameter_blocks", "Deflated", "EscapeDimensions", "EscapeExperiment", "FisherTrace", "Flatness", "Minimum", "SaddleIndex",
    "SubspaceOverlap", "escape_dimensions", "escape_experiment", "fisher_trace", "flatness", "flatness_at_scales",
    "linear_chain", "minimize", "saddle_index", "subspace_overlap", "widen",
]
