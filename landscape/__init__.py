"""landscape: loss-landscape and curvature instruments for PyTorch.

Layers, bottom to top (lower layers never import higher ones):

- ``params``, ``data``, ``models``, ``runs``, ``training``: parameter spaces, data, the model zoo, run
  directories and reproducible training;
- ``operators``: matrix-free Hessian, GGN and Fisher over a model and a data set;
- ``linalg``: solvers over any symmetric operator (eigenpairs, trace, spectral density, counts);
- ``instruments``, ``connectivity``, ``surface``, ``instability``, ``pruning``: the measurements;
- ``curvature`` (the standard curvature profile of a network), ``analyze`` (checkpoints) and ``compare``
  (tickets against the dense network) on top of them;
- ``plots``, ``cli``: figures and the ``landscape`` command.
- ``integrations``: callbacks for Lightning and ``transformers`` and a TensorBoard sink, optional extras that
  ``import landscape`` does not load.

Functions named like their module (``landscape.instability.instability``, ``landscape.compare.compare``,
``landscape.analyze.analyze``)
are used from their modules, so that the modules stay reachable as attributes.
"""
from landscape.connectivity import (Barrier, InterpolationResult, interpolate, interpolate_checkpoints,
                                    load_run_checkpoint, reset_batchnorm)
from landscape.data import as_batches, load_dataset
from landscape.evaluation import Evaluation, evaluate
from landscape.instruments import (BlockSpectra, EscapeDimensions, EscapeExperiment, FisherTrace, Flatness, SaddleIndex,
                                   SubspaceOverlap, escape_dimensions, escape_experiment, fisher_trace, flatness,
                                   saddle_index, subspace_overlap, widen, block_spectra)
from landscape.linalg import (EigenCount, Eigenpairs, Estimate, MatrixOperator, SpectralDensity, TraceEstimate,
                              density, eigencount, eigs, hutchinson, hutchpp, trace, xtrace)
from landscape.models import build_model
from landscape.operators import GGN, CurvatureOperator, DeterminismError, Fisher, Hessian
from landscape.params import ParamSpace
from landscape.pruning import (PruningHparams, apply_masks, iterative_magnitude_pruning, magnitude_masks,
                               pruning_distance)
from landscape.surface import (Directions, LossSurface, eigen_directions, filter_directions, line_direction,
                               loss_surface, pca_directions, surface_for, surface_from_checkpoint)
from landscape.training import Hparams, Start, load_model, train
from landscape.training.tracker import Tracker, TrackerSettings
from landscape.curvature import CurvatureSettings, measure_curvature
from landscape.analyze import Analysis, AnalyzeSettings
from landscape.compare import CompareSettings, Comparison
from landscape.demo import run_demo

__all__ = [
    "Analysis", "AnalyzeSettings", "CompareSettings", "Comparison", "CurvatureSettings", "measure_curvature",
    "run_demo", "Tracker", "TrackerSettings",
    "EscapeDimensions", "EscapeExperiment", "FisherTrace", "Flatness", "SaddleIndex", "SubspaceOverlap",
    "escape_dimensions", "escape_experiment", "fisher_trace", "flatness", "saddle_index", "subspace_overlap",
    "widen", "BlockSpectra", "block_spectra",
    "Barrier", "CurvatureOperator", "DeterminismError", "Directions", "EigenCount", "Eigenpairs", "Estimate",
    "Evaluation", "Fisher", "GGN", "Hessian", "Hparams", "InterpolationResult", "LossSurface", "MatrixOperator",
    "ParamSpace", "PruningHparams", "SpectralDensity", "Start", "TraceEstimate", "apply_masks", "as_batches",
    "build_model", "density", "eigen_directions", "eigencount", "eigs", "evaluate", "filter_directions",
    "hutchinson", "hutchpp", "interpolate", "interpolate_checkpoints", "iterative_magnitude_pruning",
    "line_direction", "load_dataset", "load_model", "load_run_checkpoint", "loss_surface", "magnitude_masks",
    "pca_directions", "pruning_distance", "reset_batchnorm", "surface_for", "surface_from_checkpoint", "trace",
    "train", "xtrace",
]
__version__ = "0.1.0"
