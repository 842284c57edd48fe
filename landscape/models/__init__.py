"""Models: the registry of named architectures (``registry``) and the networks it builds that ``torch`` lacks
(``architectures``: ResNet-18, ViT; ``language``: causal language models and their next-token loss)."""
from landscape.models.registry import build_model, model_description, model_names, register_model

__all__ = ["build_model", "model_description", "model_names", "register_model"]
