"""Pruning: masks, magnitude pruning, lottery-ticket controls, iterative magnitude pruning with rewinding (and its
rewinding-step sweep), pruning at initialisation (SNIP, GraSP, SynFlow), supermasks (Zhou criteria, edge-popup) and
fixed-sign training."""
from landscape.pruning.at_init import (AT_INIT_METHODS, grasp_scores, magnitude_scores, prune_at_init,
                                       random_scores, shuffle_masks, snip_scores, synflow_scores)
from landscape.pruning.controls import random_masks, reinitialize, signs_only, supermask
from landscape.pruning.imp import (CONTROLS, ControlResult, IMPResult, PruningDistance, PruningHparams, RoundResult,
                                   control_dir, dense_run_dir, iterative_magnitude_pruning, load_imp, pruning_distance,
                                   round_dir, run_masks)
from landscape.pruning.masks import (ALLOCATIONS, Masks, apply_masks, density, full_masks, layer_densities,
                                     magnitude_masks, masks_from_scores, prunable_names, prune_to_density)
from landscape.pruning.rewinding import (STABLE_BARRIER, Matching, RewindSweepResult, SweepSummary, judge_matching,
                                         rewind_sweep, rewind_sweeps, summarize)
from landscape.pruning.signs import FixedSignResult, sign_bit_start, train_fixed_signs
from landscape.pruning.supermasks import ZHOU_CRITERIA, EdgePopupResult, edge_popup, zhou_masks, zhou_scores

__all__ = ["ALLOCATIONS", "AT_INIT_METHODS", "CONTROLS", "ControlResult", "EdgePopupResult", "FixedSignResult",
           "IMPResult", "Masks", "Matching", "PruningDistance", "PruningHparams", "RewindSweepResult", "RoundResult",
           "STABLE_BARRIER", "SweepSummary", "ZHOU_CRITERIA", "apply_masks", "control_dir", "dense_run_dir", "density",
           "edge_popup", "full_masks", "grasp_scores", "iterative_magnitude_pruning", "judge_matching",
           "layer_densities", "load_imp", "magnitude_masks", "magnitude_scores", "masks_from_scores", "prunable_names",
           "prune_at_init", "prune_to_density", "pruning_distance", "random_masks", "random_scores", "reinitialize",
           "rewind_sweep", "rewind_sweeps", "round_dir", "run_masks", "shuffle_masks", "sign_bit_start", "signs_only",
           "snip_scores", "summarize", "supermask", "synflow_scores", "train_fixed_signs", "zhou_masks", "zhou_scores"]
