"""The NumPy backpropagation formulas of helpers.lessons.backprop against TensorFlow and PyTorch.

Every gradient the chapter derives is checked three ways here: against ``torch.autograd``,
against ``tf.GradientTape``, and against central finite differences, on several shapes,
in float32 and float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch

from helpers.lessons import backprop

SHAPES = [(1, 1, 1), (4, 3, 2), (16, 7, 5)]  # (N, d_in, d_out)
DTYPES = [np.float32, np.float64]
ACTIVATIONS = list(backprop.ACTIVATIONS)
TORCH_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
}
TF_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": tf.sigmoid,
    "tanh": tf.tanh,
    "relu": tf.nn.relu,
}


def tolerance(dtype: type) -> dict[str, float]:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def dense_problem(shape: tuple[int, int, int], dtype: type, seed: int = 0):
    """Random x, w, b and targets y for a dense layer of the given (N, d_in, d_out)."""
    n, d_in, d_out = shape
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out))
    b, y = rng.normal(size=d_out), rng.normal(size=(n, d_out))
    return tuple(a.astype(dtype) for a in (x, w, b, y))


def torch_dense_mse(x, w, b, y, name):
    """Loss and gradients of 1/(2N) sum (f(xW + b) - y)^2 by torch.autograd."""
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    y_hat = TORCH_ACTIVATIONS[name](torch.from_numpy(x) @ tw + tb)
    loss = ((y_hat - torch.from_numpy(y)) ** 2).sum() / (2 * x.shape[0])
    loss.backward()
    return loss.item(), tw.grad.numpy(), tb.grad.numpy()


def tf_dense_mse(x, w, b, y, name):
    """Loss and gradients of 1/(2N) sum (f(xW + b) - y)^2 by tf.GradientTape."""
    vw, vb = tf.Variable(w), tf.Variable(b)
    with tf.GradientTape() as tape:
        y_hat = TF_ACTIVATIONS[name](tf.constant(x) @ vw + vb)
        loss = tf.reduce_sum((y_hat - y) ** 2) / (2 * x.shape[0])
    grad_w, grad_b = tape.gradient(loss, [vw, vb])
    return float(loss), grad_w.numpy(), grad_b.numpy()


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_derivatives_match_finite_differences(name):
    z = np.linspace(-3.0, 3.0, 13) + 0.05  # avoid relu's kink at exactly 0
    act = backprop.activation(name)
    numeric = backprop.numerical_gradient(lambda t: float(act.fn(t).sum()), z)
    np.testing.assert_allclose(act.derivative(z), numeric, rtol=1e-7, atol=1e-9)


def test_sigmoid_is_stable_and_keeps_dtype():
    z = np.array([-1000.0, 0.0, 1000.0], dtype=np.float32)
    np.testing.assert_array_equal(backprop.sigmoid(z), [0.0, 0.5, 1.0])
    assert backprop.sigmoid(z).dtype == np.float32


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match="Unknown activation 'gelu'.*sigmoid"):
        backprop.activation("gelu")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_forward_matches_both_frameworks(shape, dtype):
    x, w, b, _ = dense_problem(shape, dtype)
    z, y = backprop.dense_forward(x, w, b, "tanh")
    assert z.dtype == dtype and y.shape == (shape[0], shape[2])
    # PyTorch's Linear stores its weight as (d_out, d_in) and computes x @ W.T + b.
    torch_y = torch.tanh(
        torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w.T), torch.from_numpy(b))
    )
    np.testing.assert_allclose(y, torch_y.numpy(), **tolerance(dtype))
    layer = tf.keras.layers.Dense(shape[2], activation="tanh", dtype=np.dtype(dtype).name)
    layer.build((None, shape[1]))
    layer.set_weights([w, b])  # Keras stores the kernel as (d_in, d_out), like here
    np.testing.assert_allclose(y, layer(x).numpy(), **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_mse_gradients_match_both_autodiffs(name, shape, dtype):
    x, w, b, y = dense_problem(shape, dtype)
    z, y_hat = backprop.dense_forward(x, w, b, name)
    loss = backprop.mse_loss(y_hat, y)
    grads = backprop.dense_backward(x, w, z, backprop.mse_grad(y_hat, y), name)
    assert grads.w.dtype == dtype and grads.w.shape == w.shape and grads.b.shape == b.shape
    for reference in (torch_dense_mse, tf_dense_mse):
        ref_loss, ref_w, ref_b = reference(x, w, b, y, name)
        np.testing.assert_allclose(loss, ref_loss, **tolerance(dtype))
        np.testing.assert_allclose(grads.w, ref_w, **tolerance(dtype))
        np.testing.assert_allclose(grads.b, ref_b, **tolerance(dtype))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_gradients_match_finite_differences(name):
    x, w, b, y = dense_problem((6, 4, 3), np.float64, seed=1)
    z, y_hat = backprop.dense_forward(x, w, b, name)
    grads = backprop.dense_backward(x, w, z, backprop.mse_grad(y_hat, y), name)

    def loss_of(w_=w, b_=b, x_=x):
        return backprop.mse_loss(backprop.dense_forward(x_, w_, b_, name)[1], y)

    numeric_w = backprop.numerical_gradient(lambda t: loss_of(w_=t), w)
    numeric_b = backprop.numerical_gradient(lambda t: loss_of(b_=t), b)
    numeric_x = backprop.numerical_gradient(lambda t: loss_of(x_=t), x)
    assert backprop.relative_error(grads.w, numeric_w) < 1e-7
    assert backprop.relative_error(grads.b, numeric_b) < 1e-7
    assert backprop.relative_error(grads.x, numeric_x) < 1e-7


def test_the_design_formula_for_dl_dw_holds():
    """dL/dW = (1/N) X^T [(y_hat - y) * f'(Z)] for the 1/(2N) MSE."""
    x, w, b, y = dense_problem((8, 3, 2), np.float64)
    z, y_hat = backprop.dense_forward(x, w, b, "sigmoid")
    grads = backprop.dense_backward(x, w, z, backprop.mse_grad(y_hat, y), "sigmoid")
    f_prime = y_hat * (1 - y_hat)
    np.testing.assert_allclose(grads.w, x.T @ ((y_hat - y) * f_prime) / len(x), rtol=1e-12)
    np.testing.assert_allclose(grads.b, ((y_hat - y) * f_prime).sum(axis=0) / len(x), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_normalisation_relative_to_the_frameworks(dtype):
    _, _, _, y = dense_problem((5, 2, 3), dtype)
    y_hat = y + np.asarray(0.3, dtype) * np.arange(15, dtype=dtype).reshape(5, 3)
    ours = backprop.mse_loss(y_hat, y)
    torch_mse = torch.nn.functional.mse_loss(torch.from_numpy(y_hat), torch.from_numpy(y)).item()
    keras_mse = float(tf.keras.losses.MeanSquaredError(dtype=np.dtype(dtype).name)(y, y_hat))
    d_out = y.shape[1]
    np.testing.assert_allclose(torch_mse, 2 / d_out * ours, **tolerance(dtype))
    np.testing.assert_allclose(keras_mse, 2 / d_out * ours, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, classes", [(1, 2), (5, 3), (32, 10)])
def test_softmax_cross_entropy_and_its_gradient_match_both_frameworks(n, classes, dtype):
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 3.0, (n, classes)).astype(dtype)
    labels = rng.integers(0, classes, n)
    loss = backprop.softmax_cross_entropy(logits, labels)
    grad = backprop.softmax_cross_entropy_grad(logits, labels)
    assert grad.dtype == dtype

    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()
    np.testing.assert_allclose(loss, t_loss.item(), **tolerance(dtype))
    np.testing.assert_allclose(grad, t_logits.grad.numpy(), **tolerance(dtype))

    v_logits = tf.Variable(logits)
    keras_loss = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, dtype=np.dtype(dtype).name
    )
    with tf.GradientTape() as tape:
        k_loss = keras_loss(labels, v_logits)
    np.testing.assert_allclose(loss, float(k_loss), **tolerance(dtype))
    np.testing.assert_allclose(grad, tape.gradient(k_loss, v_logits).numpy(), **tolerance(dtype))


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(7, 4)), rng.integers(0, 4, 7)
    numeric = backprop.numerical_gradient(
        lambda t: backprop.softmax_cross_entropy(t, labels), logits
    )
    grad = backprop.softmax_cross_entropy_grad(logits, labels)
    assert backprop.relative_error(grad, numeric) < 1e-7
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)  # each row sums to zero


def test_softmax_is_stable_for_huge_logits():
    p = backprop.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])
    log_p = backprop.log_softmax(np.array([[1000.0, 0.0]]))
    np.testing.assert_allclose(log_p, [[0.0, -1000.0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: backprop.dense_forward(np.ones((4, 3)), np.ones((2, 5)), np.ones(5)),
            r"x has shape \(4, 3\) but w has shape \(2, 5\)",
        ),
        (
            lambda: backprop.dense_forward(np.ones((4, 3)), np.ones((3, 5)), np.ones(4)),
            r"w has shape \(3, 5\) but b has shape \(4,\)",
        ),
        (
            lambda: backprop.dense_forward(np.ones(3), np.ones((3, 5)), np.ones(5)),
            r"x has shape \(3,\) and w has shape \(3, 5\)",
        ),
        (
            lambda: backprop.dense_backward(
                np.ones((4, 3)), np.ones((3, 2)), np.ones((4, 2)), np.ones((2, 4))
            ),
            r"grad_y has shape \(2, 4\) .* must have shape \(4, 2\)",
        ),
        (
            lambda: backprop.mse_loss(np.ones((4, 1)), np.ones((4,))),
            r"y_hat has shape \(4, 1\) but y has shape \(4,\)",
        ),
        (
            lambda: backprop.mse_grad(np.ones((4, 2)), np.ones((2, 4))),
            r"y_hat has shape \(4, 2\) but y has shape \(2, 4\)",
        ),
        (
            lambda: backprop.softmax_cross_entropy(np.ones((4, 3)), np.zeros(5, int)),
            r"logits have shape \(4, 3\) and labels have shape \(5,\)",
        ),
        (
            lambda: backprop.softmax_cross_entropy_grad(np.ones((2, 3)), np.array([0, 3])),
            r"labels range over \[0, 3\] but num_classes is 3",
        ),
        (
            lambda: backprop.relative_error(np.ones(3), np.ones(4)),
            r"a has shape \(3,\) but b has shape \(4,\)",
        ),
    ],
)
def test_shape_mismatches_raise_errors_that_name_the_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_numerical_gradient_does_not_change_its_input():
    x = np.array([1.0, 2.0])
    grad = backprop.numerical_gradient(lambda t: float(np.sum(t**3)), x)
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_allclose(grad, [3.0, 12.0], rtol=1e-8)


def small_classification(seed: int = 0):
    """Three Gaussian blobs in 4 dimensions: an easy, fast classification problem."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (3, 4))
    labels = rng.integers(0, 3, 120)
    return centres[labels] + rng.normal(size=(120, 4)), labels


@pytest.mark.parametrize("hidden", ["tanh", "relu", "sigmoid"])
def test_two_layer_net_gradients_match_autograd_and_finite_differences(hidden):
    x, labels = small_classification()
    net = backprop.TwoLayerNet.create(4, 5, 3, np.random.default_rng(1), hidden)
    loss, grads = net.loss_and_grads(x[:10], labels[:10])

    params = {k: torch.tensor(v, requires_grad=True) for k, v in net.params().items()}
    hidden_out = TORCH_ACTIVATIONS[hidden](torch.from_numpy(x[:10]) @ params["w1"] + params["b1"])
    logits = hidden_out @ params["w2"] + params["b2"]
    t_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[:10]))
    t_loss.backward()
    np.testing.assert_allclose(loss, t_loss.item(), rtol=1e-12)
    for name, value in net.params().items():
        np.testing.assert_allclose(grads[name], params[name].grad.numpy(), rtol=1e-10, atol=1e-13)

        def loss_at(t, name=name, value=value):
            saved = value.copy()
            value[...] = t
            result = backprop.softmax_cross_entropy(net.logits(x[:10]), labels[:10])
            value[...] = saved
            return result

        assert (
            backprop.relative_error(grads[name], backprop.numerical_gradient(loss_at, value)) < 1e-6
        )


def test_training_lowers_the_loss_and_learns():
    x, labels = small_classification()
    rng = np.random.default_rng(0)
    net = backprop.TwoLayerNet.create(4, 8, 3, rng)
    before = backprop.softmax_cross_entropy(net.logits(x), labels)
    history = backprop.train(
        net,
        x[:90],
        labels[:90],
        learning_rate=0.5,
        epochs=20,
        batch_size=16,
        rng=rng,
        x_test=x[90:],
        labels_test=labels[90:],
    )
    assert len(history["train_loss"]) == len(history["test_loss"]) == 20
    assert history["train_loss"][-1] < 0.5 * before
    assert net.accuracy(x[90:], labels[90:]) > 0.9


def test_step_moves_against_the_gradient():
    net = backprop.TwoLayerNet.create(2, 2, 2, np.random.default_rng(0))
    w1 = net.w1.copy()
    grads = {name: np.ones_like(value) for name, value in net.params().items()}
    net.step(grads, learning_rate=0.1)
    np.testing.assert_allclose(net.w1, w1 - 0.1)
