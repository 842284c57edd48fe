"""Connectivity: the loss along paths and planes between trained networks.

``interpolation`` (linear paths and barriers between two networks or checkpoints), ``instability`` (the
linear-mode-connectivity instability of Frankle et al. 2020: copies trained on different SGD noise), ``surface``
(1-D and 2-D loss slices along random, filter-normalised, PCA or eigen directions).
"""
from landscape.connectivity.interpolation import (Barrier, InterpolationResult, interpolate, interpolate_checkpoints,
                                                  load_run_checkpoint, reset_batchnorm)
from landscape.connectivity.surface import (Directions, LossSurface, eigen_directions, filter_directions,
                                            line_direction, loss_surface, pca_directions, surface_for,
                                            surface_from_checkpoint)

__all__ = ["Barrier", "InterpolationResult", "interpolate", "interpolate_checkpoints", "load_run_checkpoint",
           "reset_batchnorm", "Directions", "LossSurface", "eigen_directions", "filter_directions", "line_direction",
           "loss_surface", "pca_directions", "surface_for", "surface_from_checkpoint"]
