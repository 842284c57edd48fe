"""landscape: loss-landscape and curvature instruments for PyTorch."""
from landscape.data.batches import as_batches
from landscape.evaluation import Evaluation, evaluate
from landscape.params import ParamSpace

__all__ = ["ParamSpace", "as_batches", "evaluate", "Evaluation"]
__version__ = "0.1.0"
