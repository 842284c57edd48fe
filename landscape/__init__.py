"""landscape: loss-landscape and curvature instruments for PyTorch.

The package reads as the data flow, bottom to top; a floor imports only floors below it (``tests/test_layout.py``
checks this, and that no subpackages import each other in a cycle):

- ``foundation``: parameter spaces, RNG and mode preservation, devices, settings, registries, run directories;
- ``models``: the model registry and its architectures; ``data``: data sets, batches, sharding over processes;
- ``operators``: matrix-free Hessian, GGN and Fisher over a model and a data set;
- ``linalg``: solvers over any symmetric operator (eigenpairs, trace, spectral density, counts);
- ``instruments``: the measurements (saddle index, flatness, escape dimensions, Fisher trace, block spectra);
- ``training``: evaluation, reproducible training, hyperparameters, the curvature tracker and its sinks;
- ``connectivity``: interpolation paths and barriers, instability, loss surfaces;
- ``pruning``: lottery tickets (IMP, pruning at initialisation, controls);
- ``plots``: figures (the only floor that imports matplotlib);
- ``analysis``: the curvature profile, ``analyze`` (checkpoints), ``compare`` (tickets against the dense
  network), the report and the demo; they import ``plots`` only inside the functions that draw;
- ``cli`` (the ``landscape`` command) and ``integrations`` (callbacks for Lightning and ``transformers`` and a
  TensorBoard sink, optional extras that ``import landscape`` does not load) on top.

Functions named like their module (``landscape.connectivity.instability.instability``,
``landscape.analysis.compare.compare``, ``landscape.analysis.analyze.analyze``) are used from their modules, so
that the modules stay reachable as attributes.
"""
from landscape.foundation.params import ParamSpace
from landscape.models import build_model
from landscape.data import as_batches, load_dataset
from landscape.operators import GGN, CurvatureOperator, DeterminismError, Fisher, Hessian
from landscape.linalg import (EigenCount, Eigenpairs, Estimate, MatrixOperator, SpectralDensity, TraceEstimate,
                              density, eigencount, eigs, hutchinson, hutchpp, trace, xtrace)
from landscape.instruments import (BlockSpectra, EscapeDimensions, EscapeExperiment, FisherTrace, Flatness, SaddleIndex,
                                   SubspaceOverlap, block_spectra, escape_dimensions, escape_experiment, fisher_trace,
                                   flatness, saddle_index, subspace_overlap, widen)
from landscape.training import Hparams, Start, load_model, train
from landscape.training.evaluation import Evaluation, evaluate
from landscape.training.tracker import Tracker, TrackerSettings
from landscape.connectivity import (Barrier, Directions, InterpolationResult, LossSurface, eigen_directions,
                                    filter_directions, interpolate, interpolate_checkpoints, line_direction,
                                    load_run_checkpoint, loss_surface, pca_directions, reset_batchnorm, surface_for,
                                    surface_from_checkpoint)
from landscape.pruning import (PruningHparams, apply_masks, iterative_magnitude_pruning, magnitude_masks,
                               pruning_distance)
from landscape.analysis.curvature import CurvatureSettings, measure_curvature
from landscape.analysis.results import Analysis, AnalyzeSettings
from landscape.analysis.compare import CompareSettings, Comparison
from landscape.analysis.demo import run_demo

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
