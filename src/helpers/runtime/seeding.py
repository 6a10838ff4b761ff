"""Reproducibility: seeding every random number generator a notebook uses.

Belongs here: seeding Python, NumPy and the frameworks, and anything else that makes a run
repeatable. Frameworks are imported only when they are seeded.
"""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Iterable

import numpy as np

SEEDABLE_FRAMEWORKS: tuple[str, ...] = ("torch", "tensorflow")


def seed_everything(seed: int, *, frameworks: Iterable[str] = ("torch", "tensorflow")) -> None:
    """Seed Python's ``random``, NumPy, ``PYTHONHASHSEED`` and each named framework.

    ``"torch"`` calls ``torch.manual_seed``, which seeds the CPU and every CUDA device.
    ``"tensorflow"`` calls ``keras.utils.set_random_seed``, which also seeds ``tf.random``
    and resets Keras' global seed generator. ``PYTHONHASHSEED`` only reaches processes
    started afterwards (this interpreter's string hashing was fixed when it started).
    Seeding makes draws repeatable; some GPU kernels stay non-deterministic regardless.

    Args:
        seed: A non-negative integer below 2**32.
        frameworks: Framework names among ``SEEDABLE_FRAMEWORKS``; a single name may be
            passed as a string.

    Raises:
        ValueError: The seed is out of range or a framework name is unknown.
        ModuleNotFoundError: A named framework is not installed.
    """
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
    names = (frameworks,) if isinstance(frameworks, str) else tuple(frameworks)
    unknown = [name for name in names if name not in SEEDABLE_FRAMEWORKS]
    if unknown:
        raise ValueError(
            f"Unknown framework(s) {unknown}; choose from {list(SEEDABLE_FRAMEWORKS)}."
        )
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(
                f"seed_everything was asked to seed {name!r}, but {name} is not installed in "
                f"this environment; install it or leave it out of frameworks={names}.",
                name=name,
            )

    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in names:
        import torch

        torch.manual_seed(seed)
    if "tensorflow" in names:
        import keras

        keras.utils.set_random_seed(seed)
