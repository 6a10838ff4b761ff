"""Backpropagation in plain NumPy: the formulas of chapter 3, written once and tested.

Belongs here: the forward and backward pass of a dense layer ``y = f(XW + b)``, the
activations and their derivatives, the MSE and softmax cross-entropy losses with their
gradients, finite-difference gradient checks, and a small two-layer network trained by
mini-batch gradient descent. Everything is NumPy; no framework is imported, so the
notebooks and tests can compare these formulas against TensorFlow and PyTorch.

Shapes follow the row convention of Keras and of the book: a batch ``x`` has shape
``(N, d_in)``, weights ``w`` have shape ``(d_in, d_out)`` and a bias ``b`` has shape
``(d_out,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Activation:
    """An elementwise activation function together with its derivative."""

    fn: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Return the logistic sigmoid ``1 / (1 + exp(-z))``, computed without overflow.

    Args:
        z: Any array.

    Returns:
        An array of the same shape and dtype with values in (0, 1).
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation(lambda z: z, np.ones_like),
    "sigmoid": Activation(sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    "tanh": Activation(np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": Activation(lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
}


def activation(name: str) -> Activation:
    """Look up an activation by name.

    Args:
        name: One of ``ACTIVATIONS``: identity, sigmoid, tanh or relu.

    Returns:
        The ``Activation``.

    Raises:
        ValueError: The name is unknown.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose from {list(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def _check_x_w(x: np.ndarray, w: np.ndarray) -> None:
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(
            f"x has shape {x.shape} and w has shape {w.shape}: expected x (N, d_in) and "
            "w (d_in, d_out)"
        )
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"x has shape {x.shape} but w has shape {w.shape}: x's last axis must match "
            "w's first axis (d_in)"
        )


def _check_dense_shapes(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> None:
    _check_x_w(x, w)
    if b.shape != w.shape[1:]:
        raise ValueError(
            f"w has shape {w.shape} but b has shape {b.shape}: b needs one entry per output (d_out)"
        )


def dense_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, activation_name: str = "identity"
) -> tuple[np.ndarray, np.ndarray]:
    """Run a dense layer forward: ``z = x @ w + b`` and ``y = f(z)``.

    Args:
        x: Inputs, shape ``(N, d_in)``.
        w: Weights, shape ``(d_in, d_out)``.
        b: Bias, shape ``(d_out,)``.
        activation_name: The activation ``f``, a key of ``ACTIVATIONS``.

    Returns:
        ``(z, y)``, both of shape ``(N, d_out)``; ``z`` is kept for the backward pass.

    Raises:
        ValueError: The shapes do not fit together (the message names them).
    """
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    _check_dense_shapes(x, w, b)
    z = x @ w + b
    return z, activation(activation_name).fn(z)


@dataclass(frozen=True)
class DenseGrads:
    """The gradients of a loss with respect to a dense layer's weights, bias and inputs."""

    w: np.ndarray
    b: np.ndarray
    x: np.ndarray


def dense_backward(
    x: np.ndarray,
    w: np.ndarray,
    z: np.ndarray,
    grad_y: np.ndarray,
    activation_name: str = "identity",
) -> DenseGrads:
    """Run a dense layer backward by the chain rule.

    With ``dL/dz = dL/dy * f'(z)`` (elementwise): ``dL/dw = x.T @ dL/dz``,
    ``dL/db = dL/dz`` summed over the batch, and ``dL/dx = dL/dz @ w.T``.

    Args:
        x: The layer's inputs, shape ``(N, d_in)``.
        w: Its weights, shape ``(d_in, d_out)``.
        z: Its pre-activations from ``dense_forward``, shape ``(N, d_out)``.
        grad_y: ``dL/dy``, the gradient of the loss with respect to the layer's
            outputs, shape ``(N, d_out)``.
        activation_name: The activation used in the forward pass.

    Returns:
        The ``DenseGrads`` with shapes of ``w``, ``(d_out,)`` and ``x``.

    Raises:
        ValueError: The shapes do not fit together (the message names them).
    """
    x, w, z, grad_y = (np.asarray(a) for a in (x, w, z, grad_y))
    _check_x_w(x, w)
    expected = (x.shape[0], w.shape[1])
    for name, array in (("z", z), ("grad_y", grad_y)):
        if array.shape != expected:
            raise ValueError(
                f"{name} has shape {array.shape} but x has shape {x.shape} and w has shape "
                f"{w.shape}: {name} must have shape {expected}"
            )
    grad_z = grad_y * activation(activation_name).derivative(z)
    return DenseGrads(w=x.T @ grad_z, b=grad_z.sum(axis=0), x=grad_z @ w.T)


def _check_same_shape(y_hat: np.ndarray, y: np.ndarray) -> None:
    if y_hat.shape != y.shape:
        raise ValueError(
            f"y_hat has shape {y_hat.shape} but y has shape {y.shape}: they must be equal "
            "(broadcasting them would silently compute a different loss)"
        )
    if y_hat.ndim != 2:
        raise ValueError(f"y_hat has shape {y_hat.shape}: expected (N, d_out)")


def mse_loss(y_hat: np.ndarray, y: np.ndarray) -> float:
    """Return the mean squared error normalised as ``L = 1/(2N) * sum((y_hat - y)**2)``.

    The sum runs over the ``N`` rows and every output column; the ``1/2`` cancels the 2 of
    the derivative. Keras' and PyTorch's ``mean_squared_error`` divide by ``N * d_out``
    instead and have no ``1/2``, so they equal ``2 / d_out`` times this value.

    Args:
        y_hat: Predictions, shape ``(N, d_out)``.
        y: Targets, the same shape.

    Returns:
        The loss as a Python float.

    Raises:
        ValueError: The shapes differ.
    """
    y_hat, y = np.asarray(y_hat), np.asarray(y)
    _check_same_shape(y_hat, y)
    return float(np.sum((y_hat - y) ** 2) / (2 * y.shape[0]))


def mse_grad(y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return ``dL/dy_hat = (y_hat - y) / N`` for the loss of ``mse_loss``.

    Args:
        y_hat: Predictions, shape ``(N, d_out)``.
        y: Targets, the same shape.

    Returns:
        An array shaped like ``y_hat``.

    Raises:
        ValueError: The shapes differ.
    """
    y_hat, y = np.asarray(y_hat), np.asarray(y)
    _check_same_shape(y_hat, y)
    return (y_hat - y) / y.shape[0]


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return ``exp(z) / sum(exp(z))`` along an axis, shifted by the maximum for stability.

    Args:
        z: Logits.
        axis: The axis that sums to one.

    Returns:
        Probabilities shaped like ``z``.
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return ``log(softmax(z))`` computed as ``z - logsumexp(z)``, without underflow.

    Args:
        z: Logits.
        axis: The axis over which the probabilities sum to one.

    Returns:
        Log-probabilities shaped like ``z``.
    """
    z = np.asarray(z)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def one_hot(
    labels: np.ndarray, num_classes: int, dtype: np.dtype | type = np.float64
) -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Args:
        labels: Integer labels in ``[0, num_classes)``, shape ``(N,)``.
        num_classes: The number of classes ``C``.
        dtype: The dtype of the result.

    Returns:
        An array of shape ``(N, C)`` with a single 1 per row.

    Raises:
        ValueError: A label is out of range.
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels range over [{labels.min()}, {labels.max()}] but num_classes is "
            f"{num_classes}: every label must lie in [0, {num_classes})"
        )
    return np.eye(num_classes, dtype=dtype)[labels]


def _check_logits_labels(logits: np.ndarray, labels: np.ndarray) -> None:
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits have shape {logits.shape} and labels have shape {labels.shape}: "
            "expected logits (N, C) and one integer label per row, shape (N,)"
        )


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Return the mean cross-entropy ``L = -1/N * sum_i log softmax(z_i)[y_i]``.

    This is what ``torch.nn.functional.cross_entropy`` and Keras'
    ``SparseCategoricalCrossentropy(from_logits=True)`` compute: both take logits.

    Args:
        logits: Unnormalised scores ``z``, shape ``(N, C)``.
        labels: Integer class labels, shape ``(N,)``.

    Returns:
        The loss as a Python float.

    Raises:
        ValueError: The shapes do not fit or a label is out of range.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    _check_logits_labels(logits, labels)
    picked = log_softmax(logits) * one_hot(labels, logits.shape[1], logits.dtype)
    return float(-picked.sum() / logits.shape[0])


def softmax_cross_entropy_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return ``dL/dz = (softmax(z) - one_hot(y)) / N`` for ``softmax_cross_entropy``.

    Args:
        logits: Unnormalised scores ``z``, shape ``(N, C)``.
        labels: Integer class labels, shape ``(N,)``.

    Returns:
        An array of shape ``(N, C)``.

    Raises:
        ValueError: The shapes do not fit or a label is out of range.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    _check_logits_labels(logits, labels)
    targets = one_hot(labels, logits.shape[1], logits.dtype)
    return (softmax(logits) - targets) / logits.shape[0]


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Estimate the gradient of a scalar function by central differences.

    Each entry is ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``, an error of order
    ``eps**2``. Use float64: in float32 the rounding error of ``f`` swamps the estimate.

    Args:
        f: A function of one array that returns a number.
        x: The point, any shape; it is copied, never changed.
        eps: The step.

    Returns:
        An array shaped like ``x`` (float64).
    """
    point = np.array(x, dtype=np.float64)
    grad = np.zeros_like(point)
    for index in np.ndindex(point.shape):
        saved = point[index]
        point[index] = saved + eps
        upper = f(point)
        point[index] = saved - eps
        lower = f(point)
        point[index] = saved
        grad[index] = (upper - lower) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """Return ``max|a - b| / max(max|a|, max|b|, tiny)``, a scale-free distance.

    Args:
        a: An array.
        b: An array of the same shape.

    Returns:
        0 for equal arrays; about 1e-7 or less for a correct float64 gradient checked by
        central differences.

    Raises:
        ValueError: The shapes differ.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a has shape {a.shape} but b has shape {b.shape}: they must be equal")
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return float(np.abs(a - b).max(initial=0.0) / scale)


@dataclass
class TwoLayerNet:
    """A classifier ``logits = f(x W1 + b1) W2 + b2`` trained with softmax cross-entropy."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    hidden_activation: str = "tanh"
    PARAM_NAMES: ClassVar[tuple[str, ...]] = ("w1", "b1", "w2", "b2")

    @classmethod
    def create(
        cls,
        n_in: int,
        n_hidden: int,
        n_out: int,
        rng: np.random.Generator,
        hidden_activation: str = "tanh",
    ) -> TwoLayerNet:
        """Make a network with Glorot-style random weights and zero biases.

        Args:
            n_in: Input features.
            n_hidden: Hidden units.
            n_out: Classes.
            rng: The random generator (pass a seeded one).
            hidden_activation: A key of ``ACTIVATIONS`` for the hidden layer.

        Returns:
            The network.
        """
        activation(hidden_activation)  # fail early on an unknown name
        w1 = rng.normal(0.0, np.sqrt(2 / (n_in + n_hidden)), (n_in, n_hidden))
        w2 = rng.normal(0.0, np.sqrt(2 / (n_hidden + n_out)), (n_hidden, n_out))
        return cls(w1, np.zeros(n_hidden), w2, np.zeros(n_out), hidden_activation)

    def params(self) -> dict[str, np.ndarray]:
        """Return the parameters by name (the arrays themselves, not copies).

        Returns:
            ``{"w1": ..., "b1": ..., "w2": ..., "b2": ...}``.
        """
        return {name: getattr(self, name) for name in self.PARAM_NAMES}

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Run the network forward.

        Args:
            x: Inputs, shape ``(N, n_in)``.

        Returns:
            Logits, shape ``(N, n_out)``.
        """
        _, h = dense_forward(x, self.w1, self.b1, self.hidden_activation)
        return dense_forward(h, self.w2, self.b2)[1]

    def loss_and_grads(
        self, x: np.ndarray, labels: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Return the cross-entropy on a batch and its gradient for every parameter.

        Args:
            x: Inputs, shape ``(N, n_in)``.
            labels: Integer labels, shape ``(N,)``.

        Returns:
            ``(loss, grads)`` with ``grads`` keyed like ``params()``.
        """
        z1, h = dense_forward(x, self.w1, self.b1, self.hidden_activation)
        _, logits = dense_forward(h, self.w2, self.b2)
        loss = softmax_cross_entropy(logits, labels)
        grad_logits = softmax_cross_entropy_grad(logits, labels)
        out = dense_backward(h, self.w2, logits, grad_logits)
        hidden = dense_backward(x, self.w1, z1, out.x, self.hidden_activation)
        return loss, {"w1": hidden.w, "b1": hidden.b, "w2": out.w, "b2": out.b}

    def step(self, grads: dict[str, np.ndarray], learning_rate: float) -> None:
        """Apply one gradient-descent update ``theta <- theta - learning_rate * grad``.

        Args:
            grads: Gradients keyed like ``params()``.
            learning_rate: The step size.
        """
        for name, value in self.params().items():
            value -= learning_rate * grads[name]

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Return the fraction of rows whose largest logit is the true label.

        Args:
            x: Inputs, shape ``(N, n_in)``.
            labels: Integer labels, shape ``(N,)``.

        Returns:
            A number in [0, 1].
        """
        return float(np.mean(self.logits(x).argmax(axis=1) == labels))


def train(
    net: TwoLayerNet,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    learning_rate: float,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    x_test: np.ndarray | None = None,
    labels_test: np.ndarray | None = None,
) -> dict[str, list[float]]:
    """Train a ``TwoLayerNet`` in place by mini-batch gradient descent.

    Each epoch shuffles the rows, steps once per batch, then records the loss on the whole
    training set (and on the test set when given).

    Args:
        net: The network; its parameters are updated in place.
        x: Training inputs, shape ``(N, n_in)``.
        labels: Training labels, shape ``(N,)``.
        learning_rate: The step size of every update.
        epochs: Passes over the training set.
        batch_size: Rows per update.
        rng: The random generator used for shuffling.
        x_test: Optional held-out inputs.
        labels_test: Their labels.

    Returns:
        ``{"train_loss": [...], "test_loss": [...]}``, one entry per epoch (``test_loss``
        is empty without a test set).
    """
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": []}
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            _, grads = net.loss_and_grads(x[batch], labels[batch])
            net.step(grads, learning_rate)
        history["train_loss"].append(softmax_cross_entropy(net.logits(x), labels))
        if x_test is not None and labels_test is not None:
            history["test_loss"].append(softmax_cross_entropy(net.logits(x_test), labels_test))
    return history
