"""Data from outside the registry, as tensors: any ``torch.utils.data.Dataset``, torchvision's data sets from a
local root, and image folders on disk. Nothing is downloaded.

Instruments take ``(inputs, targets)`` tensors or batches of them; a ``Dataset`` of ``(input, target)`` items
becomes one such pair with :func:`tensors_from_dataset` (the items stacked in index order).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.data.batches import Batch
from landscape.data.dataset import Dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def tensors_from_dataset(dataset: Any, samples: int | None = None) -> Batch:
    """``(inputs, targets)``: the first ``samples`` items (all by default) of a map-style dataset (``len`` and
    ``dataset[i] -> (input, target)``), stacked. Inputs become float32 tensors (NumPy arrays and Pillow images
    are converted, images to ``(C, H, W)`` in [0, 1]); integer targets int64 class labels.

    Raises:
        TypeError: the dataset has no length, or an item is not an ``(input, target)`` pair.
    """
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"expected a map-style dataset (len() and indexing), got {type(dataset).__name__}")
    n = len(dataset) if samples is None else min(int(samples), len(dataset))
    if n == 0:
        raise ValueError("the dataset is empty")
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"item {i} of the dataset is not an (input, target) pair: {type(item).__name__}")
        xs.append(_as_tensor(item[0]))
        ys.append(torch.as_tensor(item[1]))
    x, y = torch.stack(xs), torch.stack(ys)
    return (x.float() if x.is_floating_point() or x.dtype == torch.uint8 else x,
            y.long() if not y.is_floating_point() else y.float())


def _as_tensor(value: Any) -> Tensor:
    """A tensor of an input: tensors as they are, Pillow images as ``(C, H, W)`` floats in [0, 1], arrays."""
    if isinstance(value, Tensor):
        return value
    if hasattr(value, "mode") and hasattr(value, "size"):   # a Pillow image
        array = np.asarray(value.convert("RGB") if value.mode not in ("L", "RGB") else value, dtype=np.float32)
        array = array[..., None] if array.ndim == 2 else array
        return torch.from_numpy(array / 255.0).permute(2, 0, 1).contiguous()
    return torch.as_tensor(np.asarray(value))


def torchvision_dataset(name: str, root: str | None = None, samples: int | None = None, **kwargs: Any) -> Dataset:
    """``torchvision.datasets.<name>`` from the local ``root`` (``download=False``), both splits as tensors.

    Args:
        name: e.g. ``"CIFAR10"``, ``"MNIST"``, ``"FashionMNIST"`` (data sets with a ``train=`` flag).
        root: the folder holding the files torchvision expects (required).
        samples: keep the first ``samples`` items of each split (all by default).
        kwargs: further arguments of the data set's constructor.

    Raises:
        ImportError: torchvision cannot be imported (named, with what to do).
        ValueError: no ``root``, an unknown name, or the files are not under ``root``.
    """
    try:
        import torchvision.datasets as datasets
        from torchvision.transforms import ToTensor
    except Exception as e:  # absent, or built against another torch
        raise ImportError(f"data 'torchvision:{name}' needs torchvision, which cannot be imported here ({e}); "
                          f"install the torchvision build matching your torch, or convert the data yourself and "
                          f"pass tensors, a torch Dataset (landscape.data.external.tensors_from_dataset) or "
                          f"--data imagefolder") from e
    if root is None:
        raise ValueError(f"data 'torchvision:{name}' needs the folder its files are in: root=PATH "
                         f"(--data-kwargs root=PATH); nothing is downloaded")
    cls = getattr(datasets, name, None)
    if cls is None:
        raise ValueError(f"torchvision.datasets has no data set {name!r}")
    try:
        splits = {split: cls(root=str(root), train=split == "train", download=False, transform=ToTensor(), **kwargs)
                  for split in ("train", "test")}
    except RuntimeError as e:   # torchvision's "Dataset not found or corrupted"
        raise ValueError(f"cannot load torchvision:{name} from {root} (download=False): {e}") from e
    train, test = (tensors_from_dataset(splits[s], samples) for s in ("train", "test"))
    classes = getattr(splits["train"], "classes", None)
    num_classes = len(classes) if classes else int(train[1].max()) + 1
    return Dataset(name=f"torchvision:{name}", train=train, test=test, num_classes=num_classes,
                   input_shape=tuple(train[0].shape[1:]),
                   description=f"torchvision.datasets.{name} from {root}: {len(train[1])} train / {len(test[1])} "
                               f"test, pixels in [0, 1] (ToTensor).")


def image_folder(root: str | Path, test_fraction: float = 0.2, size: int | None = None, seed: int = 0) -> Dataset:
    """Images in class folders, read with Pillow as ``(C, H, W)`` floats in [0, 1] (RGB, or one channel when
    every image is greyscale).

    ``root/train/<class>/*`` and ``root/test/<class>/*`` when both exist; otherwise ``root/<class>/*`` split
    per class, a ``test_fraction`` of each class (at least one image when the class has two) to the test
    split, drawn with ``seed``. Classes are the folder names in sorted order (label 0 first), as torchvision's
    ``ImageFolder``. ``size``: resize every image to ``size`` x ``size`` (bilinear); otherwise all images must
    have one size.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or holds no images in class folders.
        ValueError: images of different sizes without ``size``, or classes that differ between the splits.
    """
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist (expected root/<class>/*.png)")
    split_dirs = {s: root / s for s in ("train", "test")}
    if all(d.is_dir() for d in split_dirs.values()):
        found = {s: _class_files(d) for s, d in split_dirs.items()}
        if sorted(found["train"]) != sorted(found["test"]):
            raise ValueError(f"{root}/train and {root}/test have different classes: {sorted(found['train'])} "
                             f"and {sorted(found['test'])}")
        classes = sorted(found["train"])
        files = {s: [(p, classes.index(c)) for c in classes for p in found[s][c]] for s in found}
        how = "its train/ and test/ folders"
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        by_class = _class_files(root)
        classes = sorted(by_class)
        rng = np.random.Generator(np.random.PCG64(seed))
        files = {"train": [], "test": []}
        for label, c in enumerate(classes):
            members = [by_class[c][i] for i in rng.permutation(len(by_class[c]))]
            cut = min(len(members) - 1, max(1, round(test_fraction * len(members)))) if len(members) > 1 else 0
            files["test"] += [(p, label) for p in sorted(members[:cut])]
            files["train"] += [(p, label) for p in sorted(members[cut:])]
        how = f"a per-class split of {test_fraction:g} to test (seed {seed})"
    images = {s: [_read_image(p) for p, _ in files[s]] for s in files}
    grey = all(im.mode in ("L", "1", "I", "I;16") for ims in images.values() for im in ims)
    if not files["train"] or not files["test"]:
        raise FileNotFoundError(f"image folder {root} needs images in both splits (found "
                                f"{sum(len(v) for v in files.values())} in all)")
    converted = {s: [im.convert("L" if grey else "RGB") for im in images[s]] for s in files}
    if size is not None:
        converted = {s: [im.resize((size, size), Image.BILINEAR) for im in ims] for s, ims in converted.items()}
    sizes = {im.size for ims in converted.values() for im in ims}
    if len(sizes) > 1:
        raise ValueError(f"the images under {root} have different sizes {sorted(sizes)[:4]}: pass size=N to "
                         f"resize them")
    train, test = ((torch.stack([_as_tensor(im) for im in converted[s]]),
                    torch.tensor([label for _, label in files[s]], dtype=torch.int64)) for s in ("train", "test"))
    return Dataset(name="imagefolder", train=train, test=test, num_classes=len(classes),
                   input_shape=tuple(train[0].shape[1:]),
                   description=f"images from {root} in {len(classes)} class folders ({', '.join(classes[:5])}"
                               f"{', ...' if len(classes) > 5 else ''}), split by {how}: {len(train[1])} train / "
                               f"{len(test[1])} test, pixels in [0, 1].")


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """``{class folder name: sorted image files}`` of the sub-folders of ``folder`` that hold images."""
    found = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
             for d in sorted(folder.iterdir()) if d.is_dir()}
    found = {c: ps for c, ps in found.items() if ps}
    if not found:
        raise FileNotFoundError(f"no images in class folders under {folder} (expected {folder}/<class>/*.png)")
    return found


def _read_image(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image
