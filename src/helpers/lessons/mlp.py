"""The chapter 4 multilayer perceptron (784-128-64-10) in Keras and in PyTorch, trained alike.

Belongs here: building the MLP in both frameworks, copying its weights from Keras to
PyTorch, the training recipe that notebooks 04a and 04b teach and the benchmark repeats,
the parity check (same weights, same batches, same SGD steps in both), the measurements
behind the FLOP fraction (the FLOPs of a training step, the time of a bare step, this
machine's dense matrix-multiply speed), and the checks of the exercises about the MLP.
Frameworks are imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.assets.data import MnistData

LAYER_SIZES: tuple[int, ...] = (784, 128, 64, 10)
# The training recipe of notebooks 04a and 04b and of benchmarks/mnist.py.
EPOCHS = 20
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
DROPOUT = 0.2


def build_keras_mlp(dropout: float = DROPOUT) -> Any:
    """Build the MLP in Keras: Flatten, Dense 128 and 64 with ReLU, Dense 10 giving logits.

    Args:
        dropout: Dropout rate after each hidden layer (0 for none).

    Returns:
        An uncompiled ``keras.Sequential`` for (batch, 28, 28) inputs.
    """
    import keras

    layers: list[Any] = [keras.Input(shape=(28, 28)), keras.layers.Flatten()]
    for units in LAYER_SIZES[1:-1]:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(LAYER_SIZES[-1]))  # logits: the loss applies softmax
    return keras.Sequential(layers, name="mlp")


def build_torch_mlp(dropout: float = DROPOUT, sizes: Sequence[int] = LAYER_SIZES) -> Any:
    """Build the MLP in PyTorch, layer for layer the same as ``build_keras_mlp``.

    Args:
        dropout: Dropout rate after each hidden layer (0 for none).
        sizes: Layer widths, input first (other widths are for timing experiments).

    Returns:
        A ``torch.nn.Sequential`` for (batch, 28, 28) or (batch, sizes[0]) inputs,
        returning logits.
    """
    from torch import nn

    layers: list[nn.Module] = [nn.Flatten()]
    for d_in, d_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def copy_keras_to_torch(keras_model: Any, torch_model: Any) -> None:
    """Copy every Dense layer's weights into the matching ``nn.Linear``, in order.

    Keras stores a kernel W of shape (d_in, d_out) and computes x W + b; ``nn.Linear``
    stores W transposed, (d_out, d_in), and computes x W^T + b.

    Args:
        keras_model: A built Keras model.
        torch_model: A PyTorch module with as many ``nn.Linear`` layers as Dense layers.

    Raises:
        ValueError: The layer counts or shapes do not match.
    """
    import keras
    import torch

    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    linear = [m for m in torch_model.modules() if isinstance(m, torch.nn.Linear)]
    if len(dense) != len(linear):
        raise ValueError(f"{len(dense)} Dense layers but {len(linear)} nn.Linear layers.")
    with torch.no_grad():
        for number, (source, target) in enumerate(zip(dense, linear, strict=True)):
            kernel, bias = (np.asarray(w) for w in source.get_weights())
            if kernel.T.shape != tuple(target.weight.shape):
                raise ValueError(
                    f"layer {number}: Keras kernel {kernel.shape} does not transpose to "
                    f"nn.Linear weight {tuple(target.weight.shape)}."
                )
            target.weight.copy_(torch.from_numpy(kernel.T.copy()))
            target.bias.copy_(torch.from_numpy(bias))


@dataclass
class TrainResult:
    """A trained MLP, its per-epoch history and timings, and its test predictions."""

    model: Any
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    train_seconds: float
    test_predictions: np.ndarray
    test_accuracy: float


def train_keras(
    data: MnistData,
    *,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    dropout: float = DROPOUT,
    seed: int = 0,
    verbose: int = 0,
) -> TrainResult:
    """Train the Keras MLP with Adam on logits, validating after every epoch.

    Args:
        data: From ``helpers.assets.data.load_mnist``.
        epochs: Passes over the training images.
        batch_size: Images per step.
        learning_rate: Adam's learning rate.
        dropout: Dropout rate after each hidden layer.
        seed: Seeds the initial weights, dropout and shuffling.
        verbose: Keras' ``fit`` verbosity.

    Returns:
        The ``TrainResult``; ``train_seconds`` is the time of ``fit``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = build_keras_mlp(dropout)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    stamps: list[float] = []
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: stamps.append(time.time()))
    start = time.time()
    fitted = model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[clock],
        verbose=verbose,
    )
    train_seconds = time.time() - start
    # Called directly rather than through predict, which traces a new graph for every model.
    logits = np.asarray(model(data.x_test, training=False))
    return TrainResult(
        model=model,
        history={key: [float(v) for v in values] for key, values in fitted.history.items()},
        epoch_seconds=list(np.diff([start, *stamps])),
        train_seconds=train_seconds,
        test_predictions=logits.argmax(axis=1),
        test_accuracy=float(np.mean(logits.argmax(axis=1) == data.y_test)),
    )


def train_one_epoch(model: Any, loader: Any, optimizer: Any) -> tuple[float, float]:
    """Train a PyTorch classifier for one pass over ``loader``, in train mode.

    Notebook 04b writes this function out; ``tests/test_copies.py`` keeps the two equal.

    Args:
        model: The module.
        loader: A ``DataLoader`` of ``(inputs, labels)`` batches.
        optimizer: The optimizer over the model's parameters.

    Returns:
        ``(mean loss, accuracy)`` over the epoch's examples.
    """
    import torch

    model.train()
    total_loss, correct = 0.0, 0
    for x, y in loader:
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
    return total_loss / len(loader.dataset), correct / len(loader.dataset)


def evaluate_torch(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return the mean cross-entropy and accuracy of a PyTorch classifier, in eval mode.

    Notebook 04b writes this function out (as ``evaluate``); ``tests/test_copies.py`` keeps
    the two equal.

    Args:
        model: The module; it is left in eval mode.
        x: Inputs.
        y: Integer labels.

    Returns:
        ``(loss, accuracy)``.
    """
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    return loss.item(), float((logits.argmax(dim=1).numpy() == y).mean())


def train_torch(
    data: MnistData,
    *,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    dropout: float = DROPOUT,
    seed: int = 0,
    progress: bool = False,
) -> TrainResult:
    """Train the PyTorch MLP with Adam on logits, validating after every epoch.

    Mini-batches come from a shuffling ``DataLoader``; the model is in ``train()`` mode
    while it learns and ``eval()`` mode while it is measured.

    Args:
        data: From ``helpers.assets.data.load_mnist``.
        epochs: Passes over the training images.
        batch_size: Images per step.
        learning_rate: Adam's learning rate.
        dropout: Dropout rate after each hidden layer.
        seed: Seeds the initial weights, dropout and shuffling.
        progress: Show a progress bar over the epochs.

    Returns:
        The ``TrainResult``; its history has Keras' keys (``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy``), training figures averaged over the epoch's batches.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = build_torch_mlp(dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    history: dict[str, list[float]] = {
        k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    epoch_seconds = []
    start = time.time()
    for _ in tqdm(range(epochs), desc="epochs", disable=not progress):
        epoch_start = time.time()
        loss, accuracy = train_one_epoch(model, loader, optimizer)
        val_loss, val_accuracy = evaluate_torch(model, data.x_val, data.y_val)
        epoch_seconds.append(time.time() - epoch_start)
        for key, value in zip(history, (loss, accuracy, val_loss, val_accuracy), strict=True):
            history[key].append(value)
    train_seconds = time.time() - start
    model.eval()
    with torch.no_grad():
        predictions = model(torch.from_numpy(data.x_test)).argmax(dim=1).numpy()
    return TrainResult(
        model=model,
        history=history,
        epoch_seconds=epoch_seconds,
        train_seconds=train_seconds,
        test_predictions=predictions,
        test_accuracy=float(np.mean(predictions == data.y_test)),
    )


@dataclass(frozen=True)
class Parity:
    """The same MLP trained by plain SGD in Keras and in PyTorch, step by step."""

    keras_losses: np.ndarray
    torch_losses: np.ndarray
    initial_diff: float  # max |logits| difference before training
    final_diff: float  # max |logits| difference after the last step
    loss_diff: float  # max |loss| difference over the steps

    @property
    def max_abs_diff(self) -> float:
        """The largest of the three differences."""
        return max(self.initial_diff, self.final_diff, self.loss_diff)


def sgd_parity(
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = 20,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = 0.1,
    seed: int = 0,
) -> Parity:
    """Train the MLP (no dropout) in both frameworks from the same weights on the same batches.

    The Keras model is built and seeded, its weights copied into the PyTorch model; then
    both take ``steps`` plain SGD steps on consecutive batches of ``x`` and the logits on
    the first batch are compared before and after. Each step's loss is that batch's own
    loss before the update, in both frameworks and on every Keras 3 version. On a GPU,
    turn TensorFlow's TF32 off first
    (``tf.config.experimental.enable_tensor_float_32_execution(False)``), or the two
    differ by far more than float32 rounding.

    Args:
        x: Images, (N, 28, 28) float32, N at least ``steps * batch_size``.
        y: Integer labels, (N,).
        steps: SGD steps.
        batch_size: Images per step.
        learning_rate: SGD's learning rate.
        seed: Seeds the initial weights.

    Returns:
        The ``Parity`` record.

    Raises:
        ValueError: There are fewer than ``steps * batch_size`` images.
    """
    if len(x) < steps * batch_size:
        raise ValueError(f"{len(x)} images are fewer than {steps} steps x {batch_size}.")
    import keras
    import torch

    keras.utils.set_random_seed(seed)
    keras_model = build_keras_mlp(dropout=0.0)
    keras_model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    torch_model = build_torch_mlp(dropout=0.0)
    copy_keras_to_torch(keras_model, torch_model)
    optimizer = torch.optim.SGD(torch_model.parameters(), lr=learning_rate)
    probe = x[:batch_size]

    def logits_diff() -> float:
        with torch.no_grad():
            ours = torch_model(torch.from_numpy(probe)).numpy()
        return float(np.max(np.abs(np.asarray(keras_model(probe)) - ours)))

    initial = logits_diff()
    keras_losses, torch_losses = [], []
    for step in range(steps):
        batch = slice(step * batch_size, (step + 1) * batch_size)
        # train_on_batch returns the model's loss metric, a mean over every batch since the
        # metrics were last reset. Keras 3.15 resets them in each call; Keras 3.14 and older
        # (3.13 on Colab) do not, and return the running mean. Reset them, so that on every
        # version the value is this batch's loss, as PyTorch's is.
        keras_model.reset_metrics()
        keras_losses.append(float(keras_model.train_on_batch(x[batch], y[batch])))
        loss = torch.nn.functional.cross_entropy(
            torch_model(torch.from_numpy(x[batch])), torch.from_numpy(y[batch])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        torch_losses.append(loss.item())
    k, t = np.array(keras_losses), np.array(torch_losses)
    return Parity(k, t, initial, logits_diff(), float(np.max(np.abs(k - t))))


# Checks for the exercises of notebooks 04a, 04b and 04d (wording as in helpers.checks.ch03).
