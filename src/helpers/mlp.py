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

from helpers.data import MnistData
from helpers.exercises import report_correct, report_not_attempted, report_not_yet

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
        data: From ``helpers.data.load_mnist``.
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


def evaluate_torch(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return the mean cross-entropy and accuracy of a PyTorch classifier, in eval mode.

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
        data: From ``helpers.data.load_mnist``.
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
        val_loss, val_accuracy = evaluate_torch(model, data.x_val, data.y_val)
        epoch_seconds.append(time.time() - epoch_start)
        for key, value in zip(
            history,
            (total_loss / len(data.y_train), correct / len(data.y_train), val_loss, val_accuracy),
            strict=True,
        ):
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
    the first batch are compared before and after.

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


def step_flops(batch_size: int, sizes: Sequence[int] = LAYER_SIZES) -> int:
    """Return the multiply-add FLOPs of one training step of a dense network.

    Forward, each weight costs 2 FLOPs per example (a multiply and an add). Backward, the
    gradient with respect to each weight costs 2 more, and the gradient with respect to
    each layer's input 2 more, except for the first layer, whose input is the data and
    needs no gradient. Biases, activations, the loss and the optimizer add a few percent
    and are not counted.

    Args:
        batch_size: Examples per step (B).
        sizes: Layer widths, input first.

    Returns:
        ``6 * B * P - 2 * B * sizes[0] * sizes[1]``, with P the number of weights.
    """
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 6 * batch_size * weights - 2 * batch_size * sizes[0] * sizes[1]


def torch_step_seconds(
    batch_size: int, steps: int = 200, repeats: int = 5, sizes: Sequence[int] = LAYER_SIZES
) -> float:
    """Time one bare PyTorch training step of an MLP (Adam, one fixed batch, no data loading).

    Args:
        batch_size: Examples per step.
        steps: Steps per timed run.
        repeats: Timed runs; the median is returned.
        sizes: Layer widths, input first; the chapter's MLP by default.

    Returns:
        Seconds per step (median over the runs).
    """
    import torch

    torch.manual_seed(0)
    model = build_torch_mlp(dropout=0.0, sizes=sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    x, y = torch.rand(batch_size, sizes[0]), torch.randint(0, sizes[-1], (batch_size,))

    def run(count: int) -> None:
        for _ in range(count):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    run(10)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - start) / steps)
    return float(np.median(times))


def torch_adam_update_seconds(fused: bool = False, repeats: int = 200) -> float:
    """Time Adam's update of the MLP's parameters alone, after one backward pass.

    Args:
        fused: Use PyTorch's fused implementation (one pass over all parameters) instead of
            the default one (several small operations per parameter tensor).
        repeats: Updates timed; the mean is returned.

    Returns:
        Seconds per update.
    """
    import torch

    torch.manual_seed(0)
    model = build_torch_mlp(dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=fused)
    x, y = torch.rand(BATCH_SIZE, 28, 28), torch.randint(0, 10, (BATCH_SIZE,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # warm-up: creates Adam's running averages
    start = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    return (time.perf_counter() - start) / repeats


def matmul_flops_per_s(size: int = 1024, repeats: int = 10) -> float:
    """Measure this machine's dense float32 matrix-multiply speed with PyTorch.

    Args:
        size: The matrices are size x size.
        repeats: Timed products; the median time is used.

    Returns:
        FLOP/s, counting ``2 * size**3`` FLOPs per product.
    """
    import torch

    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times))


# Checks for the exercises of notebooks 04a, 04b and 04d (wording as in helpers.exercises).


def check_softmax_model(model: Any) -> None:
    """Check a compiled Keras MLP whose last layer applies softmax, with the matching loss.

    Args:
        model: The learner's compiled ``keras.Model``, or None.
    """
    if model is None:
        return report_not_attempted("a compiled keras model")
    import keras

    if not isinstance(model, keras.Model):
        return report_not_yet(
            f"{type(model).__name__} is not a Keras model", "use keras.Sequential"
        )
    if model.output_shape != (None, 10):
        return report_not_yet(
            f"the model's output shape is {model.output_shape}, not (None, 10)",
            "put keras.layers.Flatten() first, so Dense sees 784 pixels per image",
        )
    probabilities = np.asarray(model(np.random.default_rng(0).random((4, 28, 28))))
    if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5) or probabilities.min() < 0:
        return report_not_yet(
            "the outputs are not probabilities (each row should sum to 1)",
            "give the last Dense layer activation='softmax'",
        )
    loss = getattr(model, "loss", None)
    if loss is None:
        return report_not_yet(
            "the model is not compiled", "call model.compile(optimizer, loss, ...)"
        )
    from_logits = getattr(loss, "get_config", lambda: {})().get("from_logits", False)
    name = loss if isinstance(loss, str) else type(loss).__name__
    if "sparse" not in str(name).lower():
        return report_not_yet(
            f"the loss is {name}",
            "labels are integers 0-9, so use the sparse categorical cross-entropy",
        )
    if from_logits:
        return report_not_yet(
            "the loss has from_logits=True but the model already applies softmax, so the "
            "softmax is applied twice",
            "with a softmax output, use from_logits=False (the default)",
        )
    report_correct(
        "softmax output with from_logits=False is the same model as logits with "
        "from_logits=True; the logits version is a little more stable numerically."
    )


def check_parameter_count(answer: int | None) -> None:
    """Check the parameter count of the 784-128-64-10 MLP.

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if not isinstance(answer, int | np.integer):
        return report_not_yet(f"{answer!r} is not an integer", "parameters come in whole numbers")
    pairs = list(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True))
    weights = sum(a * b for a, b in pairs)
    biases = sum(b for _, b in pairs)
    if answer == weights + biases:
        return report_correct(
            f"{weights:,} weights and {biases} biases: 784 x 128 + 128 x 64 + 64 x 10 "
            f"+ 128 + 64 + 10 = {weights + biases:,}."
        )
    if answer == weights:
        return report_not_yet(
            "you counted the weights but not the biases", "each unit has one bias"
        )
    if answer == LAYER_SIZES[0] * LAYER_SIZES[1] + LAYER_SIZES[1]:
        return report_not_yet(
            "that is the first layer only", "add the 128 -> 64 and 64 -> 10 layers"
        )
    report_not_yet(
        f"{int(answer):,} is not the count",
        "a Dense layer from d_in to d_out has d_in x d_out weights and d_out biases",
    )


def check_unflattened_shape(answer: tuple[int, ...] | None) -> None:
    """Check the output shape of ``Dense(10)`` applied to a batch of shape (32, 28, 28).

    Args:
        answer: The learner's shape as a tuple, or None.
    """
    if answer is None:
        return report_not_attempted("a tuple such as (32, 10)")
    shape = tuple(answer) if isinstance(answer, tuple | list) else answer
    if shape == (32, 28, 10):
        return report_correct(
            "Dense acts on the last axis only, so each of the 28 rows of an image gets its "
            "own 10 outputs computed from that row's 28 pixels."
        )
    if shape == (32, 10):
        return report_not_yet(
            "(32, 10) is what you get after Flatten, not without it",
            "Dense multiplies the last axis by its kernel and keeps all other axes",
        )
    report_not_yet(f"{shape!r} is not the shape", "Dense maps the last axis (28) to 10 units")


def check_accuracy_function(answer: Any) -> None:
    """Check ``accuracy(model, x, y)``: the accuracy of a PyTorch classifier in eval mode.

    Args:
        answer: The learner's function of a module, a float32 array of images and integer
            labels, returning a float; or None.
    """
    if answer is None:
        return report_not_attempted("a function accuracy(model, x, y)")
    import torch

    torch.manual_seed(0)
    model = build_torch_mlp(dropout=0.5)
    rng = np.random.default_rng(0)
    x, y = rng.random((200, 28, 28), dtype=np.float32), rng.integers(0, 10, 200)
    model.eval()
    with torch.no_grad():
        expected = float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())
    results = []
    for _ in range(2):
        model.train()  # as a model is left after a training epoch
        try:
            results.append(float(answer(model, x, y)))
        except Exception as error:  # the learner's code may fail in any way
            return report_not_yet(
                f"your function raised {type(error).__name__}: {error}",
                "convert x with torch.from_numpy(x) and compare predictions with y",
            )
    if all(abs(r - expected) < 1e-9 for r in results):
        return report_correct("model.eval() turns dropout off, so the accuracy is repeatable.")
    if results[0] != results[1]:
        return report_not_yet(
            "two calls gave different accuracies, so dropout was still active",
            "call model.eval() before predicting",
        )
    report_not_yet(
        f"you returned {results[0]:.3f}, expected {expected:.3f}",
        "the predicted class is logits.argmax(dim=1); average (predicted == y)",
    )


def check_train_step(answer: Any) -> None:
    """Check ``train_step(model, optimizer, x, y)``: one step on logits, returning the loss.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function train_step(model, optimizer, x, y)")
    import copy

    import torch

    torch.manual_seed(0)
    models = {"theirs": build_torch_mlp(dropout=0.0)}
    models["reference"] = copy.deepcopy(models["theirs"])
    models["accumulating"] = copy.deepcopy(models["theirs"])
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.5) for name, m in models.items()}
    x, y = torch.rand(16, 28, 28), torch.randint(0, 10, (16,))
    for step in range(2):
        try:
            returned = float(answer(models["theirs"], optimizers["theirs"], x, y))
        except Exception as error:  # the learner's code may fail in any way
            return report_not_yet(
                f"your function raised {type(error).__name__}: {error}",
                "compute the loss of model(x) and y, then backward, step, return loss.item()",
            )
        for name in ("reference", "accumulating"):
            loss = torch.nn.functional.cross_entropy(models[name](x), y)
            if name == "reference" or step == 0:
                optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if name == "reference" and abs(returned - loss.item()) > 1e-5:
                return report_not_yet(
                    f"your step returned the loss {returned:.4f}, expected {loss.item():.4f}",
                    "pass the logits straight to cross_entropy (no softmax) and return loss.item()",
                )

    def same_as(name: str) -> bool:
        pairs = zip(models["theirs"].parameters(), models[name].parameters(), strict=True)
        return all(torch.allclose(p, q, atol=1e-6) for p, q in pairs)

    if same_as("reference"):
        return report_correct("zero_grad, backward, step: the weights match a reference step.")
    if same_as("accumulating"):
        return report_not_yet(
            "the second step used the sum of both steps' gradients",
            "call optimizer.zero_grad() before loss.backward()",
        )
    report_not_yet("the weights after two steps differ from a reference", "call optimizer.step()")


def check_softmax_loss_floor(answer: float | None) -> None:
    """Check the smallest loss of ``CrossEntropyLoss`` fed softmax outputs, with 10 classes.

    Args:
        answer: The learner's number, or None.
    """
    if answer is None:
        return report_not_attempted("a number")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a number", "write it as a float")
    floor = float(np.log(1 + 9 / np.e))
    if abs(value - floor) < 1e-3:
        return report_correct(
            f"at best the probabilities are one-hot, (1, 0, ..., 0); softmax of that gives "
            f"e / (e + 9) to the true class, so the loss is log(1 + 9/e) = {floor:.4f}."
        )
    if abs(value) < 1e-3:
        return report_not_yet(
            "0 is the floor on logits, not on probabilities",
            "probabilities lie in [0, 1]; apply softmax to the best case (1, 0, ..., 0)",
        )
    report_not_yet(
        f"{value} is not the floor",
        "the best the model can output is (1, 0, ..., 0); compute -log softmax(that)[0]",
    )


def check_torch_to_keras(answer: Any) -> None:
    """Check ``copy_torch_to_keras(torch_model, keras_model)``: the reverse weight copy.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function copy_torch_to_keras(torch_model, keras_model)")
    import keras
    import torch

    torch.manual_seed(3)
    torch_model = build_torch_mlp(dropout=0.0)
    keras.utils.set_random_seed(4)
    keras_model = build_keras_mlp(dropout=0.0)
    x = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    try:
        answer(torch_model, keras_model)
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "a Keras kernel is (d_in, d_out): pass weight.detach().numpy().T",
        )
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    difference = float(np.max(np.abs(np.asarray(keras_model(x)) - expected)))
    if difference < 1e-5:
        return report_correct(f"the two models agree to {difference:.1e}.")
    report_not_yet(
        f"the Keras model's logits differ from PyTorch's by up to {difference:.3g}",
        "copy every Dense layer's kernel (the transposed nn.Linear weight) and bias, in order",
    )


def check_step_flops(answer: int | None) -> None:
    """Check the FLOPs of one training step of the MLP at batch size 128, as counted in 04d.

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    try:
        value = int(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a whole number", "FLOPs are counted as integers")
    expected = step_flops(128)
    weights = sum(a * b for a, b in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True))
    if value == expected:
        return report_correct(
            f"6 x 128 x 109,184 - 2 x 128 x 784 x 128 = {expected:,} FLOPs per step."
        )
    if value == 6 * 128 * weights:
        return report_not_yet(
            "you counted an input gradient for the first layer",
            "its input is the images, which need no gradient: subtract 2 x 128 x 784 x 128",
        )
    if value == 2 * 128 * weights:
        return report_not_yet(
            "that is the forward pass only",
            "backward adds 2 per weight for its gradient and 2 for the layer's input gradient",
        )
    if value == expected // 128:
        return report_not_yet("that is for one image", "multiply by the batch size, 128")
    report_not_yet(
        f"{value:,} is not the count",
        "2 FLOPs per weight and image forward, 2 for the weight gradients, 2 for the input "
        "gradients of the second and third layers",
    )
