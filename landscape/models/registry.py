"""Registry of the architectures the loss-landscape literature studies, sized to any data set.

Every entry is a factory ``(input_shape, num_classes, **kwargs) -> nn.Module`` returning a plain
``torch.nn.Module`` that maps inputs ``(N, *input_shape)`` to outputs ``(N, num_classes)`` (logits for
classification, predictions for regression, where ``num_classes`` is the number of regression targets).
Every model but ``gpt2`` (whose output layer is tied to its token embedding) ends in a linear layer named
``head``, so pruning code can single out the output layer.

=========  =====================================================================================
name       architecture
=========  =====================================================================================
mlp        fully connected, hidden ``widths`` and ``activation`` configurable
cnn1d      three strided 1-D convolutions + linear head (the MNIST-1D paper's CNN), BatchNorm
           optional
lenet300   LeNet-300-100 of the lottery-ticket papers (Frankle and Carbin 2019), sized to the input
resnet1d   a small 1-D residual network with BatchNorm (stem, basic blocks, global average pool)
resnet18   ResNet-18 in the CIFAR form (3x3 stem, no max-pool), BatchNorm, ``width`` channels in the
           first stage (64 is the standard network) (:mod:`landscape.models.architectures`)
vit        Vision Transformer (Dosovitskiy et al. 2021), patch size, width, depth, heads configurable;
           ViT-B/16 with its options set to the paper's (:mod:`landscape.models.architectures`)
gpt2       GPT-2 (Radford et al. 2019) built from a ``transformers.GPT2Config`` (``n_layer``, ``n_embd``,
           ``n_head``), randomly initialised, nothing downloaded; inputs are token ids ``(N, T)`` and the
           outputs logits ``(N, T, vocab)`` (:mod:`landscape.models.language`)
=========  =====================================================================================

``torchvision:NAME`` builds ``torchvision.models.NAME(weights=None, num_classes=...)`` (randomly initialised)
when torchvision is installed; it is imported only then.

Users add their own with :func:`register_model`; any ``nn.Module`` works wherever the toolkit takes a model.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from landscape.foundation.registry import Registry
from landscape.models.architectures import ResNet18, ViT
from landscape.models.language import CausalLM

ModelFactory = Callable[..., nn.Module]
TORCHVISION_PREFIX = "torchvision:"
_MODELS: Registry[ModelFactory] = Registry("model", "models")

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid, "identity": nn.Identity,
}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding ``factory(input_shape, num_classes, **kwargs)`` to the registry under ``name``."""
    return _MODELS.register(name)


def model_names() -> list[str]:
    """Names of the registered models, sorted."""
    return _MODELS.names()


def model_description(name: str) -> str:
    """First line of the factory's docstring, then its keyword arguments with their defaults."""
    return _MODELS.describe(name, positional=("input_shape", "num_classes"))


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """Build the registered model ``name`` for inputs ``(N, *input_shape)`` and ``num_classes`` outputs.

    Weights are initialised from the global torch RNG (seed it, or build under
    ``torch.random.fork_rng``, for a reproducible initialisation). Unknown names or keyword arguments
    fail with the known ones listed.
    """
    if name.startswith(TORCHVISION_PREFIX):
        return _torchvision_model(name.removeprefix(TORCHVISION_PREFIX), input_shape, num_classes, **kwargs)
    factory = _MODELS.get(name)
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("input_shape", "num_classes")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"model {name!r} takes no argument(s) {unknown}; it accepts {accepted}")
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"input_shape must be non-empty positive sizes, got {input_shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return factory(input_shape, num_classes, **kwargs)


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
    return _ACTIVATIONS[name]()


def _channels_and_length(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(L,)`` is one channel of length L; ``(C, L)`` is C channels."""
    if len(input_shape) == 1:
        return 1, input_shape[0]
    if len(input_shape) == 2:
        return input_shape
    raise ValueError(f"1-D convolutional models take inputs of shape (L,) or (C, L), got {input_shape}")


class MLP(nn.Module):
    """Flatten, then ``Linear -> activation`` per hidden width (``Linear -> BatchNorm1d -> activation``, the
    linear layer without bias, with ``batchnorm``), then a linear ``head``."""

    def __init__(self, in_features: int, widths: Sequence[int], num_classes: int, activation: str,
                 batchnorm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in widths:
            layers.append(nn.Linear(in_features, width, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(_activation(activation))
            in_features = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, widths: Sequence[int] = (100, 100),
        activation: str = "relu", batchnorm: bool = False) -> nn.Module:
    """Multilayer perceptron: hidden layer sizes ``widths``, one ``activation`` (relu, tanh, gelu, ...),
    optionally BatchNorm before each activation."""
    widths = [int(w) for w in widths]
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden widths must be positive, got {widths}")
    return MLP(math.prod(input_shape), widths, num_classes, activation, bool(batchnorm))


@register_model("lenet300")
def lenet300(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-300-100 (Frankle and Carbin 2019): ReLU MLP with hidden layers of 300 and 100 units."""
    return MLP(math.prod(input_shape), (300, 100), num_classes, "relu")


class CNN1d(nn.Module):
    """Strided 1-D convolutions (ReLU, optional BatchNorm) and a linear ``head`` on the flattened maps."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: int, batchnorm: bool):
        super().__init__()
        in_channels, length = _channels_and_length(input_shape)
        layers: list[nn.Module] = []
        for kernel in (5, 3, 3):
            layers.append(nn.Conv1d(in_channels, channels, kernel, stride=2, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(channels))
            layers.append(nn.ReLU())
            in_channels = channels
            length = (length + 2 - kernel) // 2 + 1
            if length < 1:
                raise ValueError(f"input length {input_shape[-1]} is too short for cnn1d (needs at least 4)")
        self.input_shape = input_shape
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(channels * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.reshape(x.shape[0], *_channels_and_length(self.input_shape))))


@register_model("cnn1d")
def cnn1d(input_shape: tuple[int, ...], num_classes: int, channels: int = 32, batchnorm: bool = False) -> nn.Module:
    """1-D CNN of the MNIST-1D paper (Greydanus 2020): 3 strided convolutions, ``channels`` wide, BatchNorm optional."""
    return CNN1d(input_shape, num_classes, int(channels), bool(batchnorm))


class BasicBlock1d(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; the shortcut is a 1x1 conv + BN when shapes change."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm1d(channels))

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet1d(nn.Module):
    """Stem conv + BN, stages of basic blocks (channels doubling, stride 2 after the first), average pool, ``head``."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, blocks: Sequence[int]):
        super().__init__()
        in_channels, _ = _channels_and_length(input_shape)
        self.input_shape = input_shape
        self.stem = nn.Sequential(nn.Conv1d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm1d(width), nn.ReLU())
        stages: list[nn.Module] = []
        channels = width
        for i, count in enumerate(blocks):
            out = width * 2 ** i
            for j in range(count):
                stages.append(BasicBlock1d(channels, out, stride=2 if (i > 0 and j == 0) else 1))
                channels = out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *_channels_and_length(self.input_shape))
        return self.head(self.stages(self.stem(x)).mean(dim=-1))


@register_model("resnet1d")
def resnet1d(input_shape: tuple[int, ...], num_classes: int, width: int = 16,
             blocks: Sequence[int] = (1, 1, 1)) -> nn.Module:
    """Small 1-D ResNet with BatchNorm: ``blocks[i]`` basic blocks of ``width * 2**i`` channels per stage."""
    blocks = [int(b) for b in blocks]
    if not blocks or any(b < 1 for b in blocks) or width < 1:
        raise ValueError(f"resnet1d needs width >= 1 and at least one stage of >= 1 block, got {width}, {blocks}")
    return ResNet1d(input_shape, num_classes, int(width), blocks)


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)``; ``(H, W)`` is one channel."""
    if len(input_shape) == 2:
        return (1, *input_shape)
    if len(input_shape) == 3:
        return input_shape  # type: ignore[return-value]
    raise ValueError(f"{name} takes images of shape (C, H, W) or (H, W), got input shape {input_shape}")


@register_model("resnet18")
def resnet18(input_shape: tuple[int, ...], num_classes: int, width: int = 64) -> nn.Module:
    """ResNet-18, CIFAR form (3x3 stride-1 stem, no max-pool): 4 stages of 2 basic blocks, width, 2, 4, 8 x width."""
    if width < 1:
        raise ValueError(f"resnet18 width must be positive, got {width}")
    channels, _, _ = _image_shape("resnet18", input_shape)
    return ResNet18(channels, num_classes, int(width))


@register_model("vit")
def vit(input_shape: tuple[int, ...], num_classes: int, patch: int = 4, dim: int = 192, depth: int = 6,
        heads: int = 3, mlp_dim: int = 768) -> nn.Module:
    """Vision Transformer: patch x patch patches, depth pre-norm blocks of width dim (ViT-B/16: 16, 768, 12, 12, 3072)."""
    if min(patch, dim, depth, heads, mlp_dim) < 1:
        raise ValueError("vit options patch, dim, depth, heads and mlp_dim must all be positive")
    return ViT(_image_shape("vit", input_shape), num_classes, int(patch), int(dim), int(depth), int(heads),
               int(mlp_dim))


@register_model("gpt2")
def gpt2(input_shape: tuple[int, ...], num_classes: int, n_layer: int = 12, n_embd: int = 768, n_head: int = 12,
         dropout: float = 0.0) -> nn.Module:
    """GPT-2 from a transformers.GPT2Config, random init: inputs (N, T) token ids, num_classes the vocabulary size."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as e:
        raise ImportError(f"the gpt2 model needs the transformers package (pip install transformers): {e}") from e
    if len(input_shape) != 1:
        raise ValueError(f"gpt2 takes token sequences of shape (T,), got input shape {input_shape}")
    if n_embd % n_head:
        raise ValueError(f"gpt2 n_embd={n_embd} must be a multiple of n_head={n_head}")
    config = GPT2Config(vocab_size=num_classes, n_positions=input_shape[0], n_layer=int(n_layer),
                        n_embd=int(n_embd), n_head=int(n_head), resid_pdrop=dropout, embd_pdrop=dropout,
                        attn_pdrop=dropout, bos_token_id=None, eos_token_id=None)
    return CausalLM(GPT2LMHeadModel(config))


def _torchvision_model(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """``torchvision.models.<name>(weights=None, num_classes=num_classes, **kwargs)``, imported only here."""
    try:
        import torchvision.models
    except Exception as e:  # absent, or installed against another torch build
        raise ImportError(f"model 'torchvision:{name}' needs torchvision, which cannot be imported here ({e}); "
                          f"install the torchvision build matching your torch, or use the built-in "
                          f"'resnet18' or 'vit' models") from e
    factory = getattr(torchvision.models, name, None)
    if not callable(factory):
        raise ValueError(f"torchvision.models has no model {name!r}")
    return factory(weights=None, num_classes=num_classes, **kwargs)
