"""Noisy and random training labels for any classification data set (double descent, memorisation).

Two corruptions of the TRAINING labels, each reproducible from ``seed`` alone (a NumPy PCG64 generator seeded by
``numpy.random.SeedSequence(seed)``; the caller's random-number state is not touched); the test split is
returned unchanged (the same tensors), so test error measures the clean task:

* ``label_noise = p`` in ``[0, 1]`` (Nakkiran et al. 2020, "Deep double descent"): exactly ``round(p N)`` of the
  ``N`` training samples, a uniformly random subset, get a label drawn uniformly from the ``C - 1`` OTHER
  classes. Exactly that many labels are wrong, so ``label_noise=1.0`` makes every label wrong (which still
  tells a network something: "not this class").
* ``random_labels = True`` (Zhang et al. 2017, "Understanding deep learning requires rethinking
  generalization"): every training label is replaced by an independent draw, uniform over all ``C`` classes,
  so the labels carry no information about the inputs (about ``N / C`` of them equal the true label by chance).

:func:`load_dataset` applies them to every classification data set through its ``label_noise``,
``random_labels`` and ``label_seed`` keywords (so runs reach them through ``data_kwargs``).
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import torch

from landscape.data.dataset import Dataset

LABEL_KEYWORDS = ("label_noise", "random_labels", "label_seed")


def corrupt_labels(dataset: Dataset, *, label_noise: float = 0.0, random_labels: bool = False,
                   label_seed: int = 0) -> Dataset:
    """``dataset`` with its training labels corrupted as the module docstring defines (test split untouched).

    Args:
        dataset: a classification data set (integer labels ``(N,)`` in ``[0, C)``).
        label_noise: fraction ``p`` of training labels replaced by a uniformly random other class
            (``round(p N)`` of them exactly).
        random_labels: replace every training label by a uniform draw over all classes.
        label_seed: seed of the corruption (which samples, which new labels).

    Returns the dataset itself when nothing is corrupted; otherwise a copy with new training labels and a
    description saying what was done.

    Raises:
        ValueError: a value out of range, both corruptions asked at once, or a data set without class labels.
    """
    _check(dataset, label_noise, random_labels, label_seed)
    if not random_labels and label_noise == 0:
        return dataset
    x, y = dataset.train
    n, classes = int(y.shape[0]), int(dataset.num_classes)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(label_seed))))
    labels = y.numpy().copy()
    if random_labels:
        labels = rng.integers(classes, size=n)
        what = f"every training label replaced by a uniform draw over the {classes} classes (random labels)"
    else:
        changed = rng.choice(n, size=round(label_noise * n), replace=False)
        labels[changed] = (labels[changed] + rng.integers(1, classes, size=changed.size)) % classes
        what = (f"{changed.size} of {n} training labels ({label_noise:g}) replaced by a uniformly random other "
                f"class")
    train = (x, torch.as_tensor(labels, dtype=y.dtype))
    return dataclasses.replace(dataset, train=train,
                               description=f"{dataset.description} Label noise: {what}, seed {label_seed}; test "
                                           f"labels untouched.")


def _check(dataset: Dataset, label_noise, random_labels, label_seed) -> None:
    """Refuse values that would corrupt nothing sensible, naming the keyword and the fix."""
    if isinstance(label_noise, bool) or not isinstance(label_noise, numbers.Real) or not 0 <= label_noise <= 1:
        raise ValueError(f"label_noise must be a fraction in [0, 1] (share of training labels replaced by another "
                         f"class), got {label_noise!r}")
    if not isinstance(random_labels, bool):
        raise ValueError(f"random_labels must be true or false, got {random_labels!r}")
    if isinstance(label_seed, bool) or not isinstance(label_seed, numbers.Integral) or label_seed < 0:
        raise ValueError(f"label_seed must be a non-negative integer, got {label_seed!r}")
    if random_labels and label_noise > 0:
        raise ValueError(f"give either label_noise ({label_noise}) or random_labels=true, not both: random labels "
                         f"already replace every label")
    if (random_labels or label_noise > 0) and (dataset.num_classes is None or dataset.next_token):
        kind = "token sequences" if dataset.next_token else "regression targets"
        raise ValueError(f"label_noise and random_labels need class labels, but data set {dataset.name!r} has "
                         f"{kind}")
