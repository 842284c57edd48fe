"""Image architectures of the deep-learning literature in plain PyTorch (no torchvision needed).

* :class:`ResNet18` in the CIFAR form of He et al. (2016) as used throughout the loss-landscape literature
  (e.g. Li et al. 2018, Frankle et al. 2020): a 3x3 stride-1 stem without max-pooling, four stages of two
  basic blocks (``width``, 2 ``width``, 4 ``width``, 8 ``width`` channels, stride 2 from the second stage on),
  global average pooling and a linear ``head``. Module names follow torchvision's ``resnet18`` (``conv1``,
  ``bn1``, ``layer1.0.conv1``, ...), except the output layer, ``head`` here and ``fc`` there.
* :class:`ViT`, the Vision Transformer of Dosovitskiy et al. (2021): non-overlapping ``patch`` x ``patch``
  patches linearly embedded, a class token and learned position embeddings, ``depth`` pre-norm encoder blocks
  ``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))`` (``blocks.{i}.attn``, ``blocks.{i}.mlp``), a final LayerNorm and a
  linear ``head`` on the class token. ``ViT(patch=16, dim=768, depth=12, heads=12, mlp_dim=3072)`` on 224x224
  inputs is ViT-B/16 (86 M parameters); the registry's default is a small one for 32x32 images.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, 3x3 convolutions; the shortcut is a 1x1
    convolution and BatchNorm (``downsample``, as torchvision) when the stride or the width changes."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.downsample(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR form (see the module docstring), for inputs ``(N, C, H, W)``."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        channels = width
        for stage in range(4):
            out, stride = width * 2 ** stage, 1 if stage == 0 else 2
            setattr(self, f"layer{stage + 1}", nn.Sequential(BasicBlock(channels, out, stride),
                                                             BasicBlock(out, out, 1)))
            channels = out
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x.mean(dim=(2, 3)))


class Attention(nn.Module):
    """Multi-head self-attention: one ``qkv`` projection, ``softmax(q k^T / sqrt(d)) v`` per head
    (:func:`torch.nn.functional.scaled_dot_product_attention`), an output projection ``proj``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` (GELU MLP)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    """Vision Transformer (see the module docstring) for inputs ``(N, C, H, W)`` with H and W multiples of
    ``patch``."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, patch: int, dim: int, depth: int,
                 heads: int, mlp_dim: int):
        super().__init__()
        channels, height, width = input_shape
        if height % patch or width % patch:
            raise ValueError(f"the image size {height}x{width} is not a multiple of the patch size {patch}")
        if dim % heads:
            raise ValueError(f"dim={dim} must be a multiple of heads={heads}")
        tokens = (height // patch) * (width // patch) + 1
        self.patch_embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads, mlp_dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])
