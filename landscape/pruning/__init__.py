"""Pruning: masks, magnitude pruning, lottery-ticket controls, iterative magnitude pruning with rewinding."""
from landscape.pruning.controls import random_masks, reinitialize, signs_only, supermask
from landscape.pruning.imp import (CONTROLS, ControlResult, IMPResult, PruningDistance, PruningHparams, RoundResult,
                                   control_dir, iterative_magnitude_pruning, load_imp, pruning_distance, round_dir,
                                   run_masks)
from landscape.pruning.masks import (Masks, apply_masks, density, full_masks, layer_densities, magnitude_masks,
                                     prunable_names, prune_to_density)

__all__ = ["CONTROLS", "ControlResult", "IMPResult", "Masks", "PruningDistance", "PruningHparams", "RoundResult",
           "apply_masks", "control_dir", "density", "full_masks", "iterative_magnitude_pruning", "layer_densities",
           "load_imp", "magnitude_masks", "prunable_names", "prune_to_density", "pruning_distance", "random_masks",
           "reinitialize", "round_dir", "run_masks", "signs_only", "supermask"]
