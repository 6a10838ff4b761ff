"""Tests of helpers.seed_everything: same seed, same draws; different seed, different draws."""

import os
import random
import sys

import numpy as np
import pytest

from helpers import seed_everything


@pytest.fixture(autouse=True)
def _restore_pythonhashseed(monkeypatch):
    """seed_everything sets PYTHONHASHSEED; monkeypatch restores the original afterwards."""
    monkeypatch.setenv("PYTHONHASHSEED", "0")


def _draws() -> dict[str, list[float]]:
    import tensorflow as tf
    import torch

    return {
        "random": [random.random() for _ in range(3)],
        "numpy": np.random.rand(3).tolist(),
        "torch": torch.rand(3).tolist(),
        "tensorflow": tf.random.uniform([3]).numpy().tolist(),
    }


def test_same_seed_same_draws_different_seed_different_draws():
    seed_everything(7)
    first = _draws()
    assert os.environ["PYTHONHASHSEED"] == "7"
    seed_everything(7)
    assert _draws() == first
    seed_everything(8)
    other = _draws()
    for source in first:
        assert other[source] != first[source], source


def test_single_framework_as_string():
    import torch

    seed_everything(3, frameworks="torch")
    first = torch.rand(2).tolist()
    seed_everything(3, frameworks="torch")
    assert torch.rand(2).tolist() == first


def test_unknown_framework_lists_valid_ones():
    with pytest.raises(ValueError, match=r"\['jax'\]; choose from \['torch', 'tensorflow'\]"):
        seed_everything(0, frameworks=("torch", "jax"))


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_seed_out_of_range(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(seed)


def test_framework_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # Python's way to block an import
    with pytest.raises(ModuleNotFoundError, match="'torch', but torch is not installed"):
        seed_everything(0, frameworks=["torch"])
