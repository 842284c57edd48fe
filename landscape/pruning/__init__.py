"""Pruning: masks, magnitude pruning, lottery-ticket controls."""
from landscape.pruning.controls import random_masks, reinitialize, signs_only, supermask
from landscape.pruning.masks import (Masks, apply_masks, density, full_masks, layer_densities,
                                     magnitude_masks, prunable_names)

__all__ = ["Masks", "apply_masks", "density", "full_masks", "layer_densities", "magnitude_masks",
           "prunable_names", "random_masks", "reinitialize", "signs_only", "supermask"]
