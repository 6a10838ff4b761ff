"""Checks for the notebooks' exercises: each tells the learner "Correct" or what is wrong.

Belongs here: one ``check_...`` function per exercise. A check prints ``Correct`` or
``Not yet: <what is wrong>. Hint: ...``; it never raises for a wrong answer, and ``None``
(the placeholder in the notebook) means the exercise was not attempted yet. Checks build
their own test inputs with NumPy, so they import no framework.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.checks.report import report_correct, report_not_attempted, report_not_yet
from helpers.lessons import attention, backprop


def _call(answer: Callable[..., Any], *args: np.ndarray) -> np.ndarray | str:
    """Call the learner's function; return its result as an array, or why it failed."""
    try:
        return np.asarray(answer(*args), dtype=np.float64)
    except Exception as error:  # the learner's code may fail in any way
        return f"your function raised {type(error).__name__}: {error}"


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    return a.shape == b.shape and backprop.relative_error(a, b) < tol


# Chapter 3a: backpropagation


def _bce_loss(z: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy on logits, ``-(1/N) sum(y log s + (1 - y) log(1 - s))``."""
    log_p = -np.logaddexp(0.0, -z)  # log sigmoid(z)
    log_not_p = -np.logaddexp(0.0, z)  # log (1 - sigmoid(z))
    return float(-np.mean(y * log_p + (1 - y) * log_not_p))


def check_bce_gradient(answer: Callable[[np.ndarray, np.ndarray], np.ndarray] | None) -> None:
    """Check a function ``grad(z, y)`` that returns dL/dz of the mean binary cross-entropy.

    Args:
        answer: The learner's function of logits ``z`` (N,) and labels ``y`` (N,) in {0, 1},
            or None.
    """
    if answer is None:
        return report_not_attempted("a function grad(z, y) that returns dL/dz")
    rng = np.random.default_rng(3)
    z, y = rng.normal(0.0, 2.0, 7), rng.integers(0, 2, 7).astype(np.float64)
    got = _call(answer, z, y)
    if isinstance(got, str):
        return report_not_yet(got, "take z and y as NumPy arrays of shape (N,) and return one")
    expected = backprop.numerical_gradient(lambda t: _bce_loss(t, y), z)
    if got.shape != expected.shape:
        return report_not_yet(
            f"your gradient has shape {got.shape}, but z has shape {z.shape}",
            "the gradient with respect to z has one entry per logit",
        )
    if _close(got, expected, 1e-5):
        return report_correct("dL/dz = (sigmoid(z) - y) / N, and it matches finite differences.")
    if _close(got, -expected, 1e-5):
        return report_not_yet(
            "your gradient has the wrong sign: a step against it would increase the loss",
            "differentiate -log sigmoid(z) for y = 1: you should get sigmoid(z) - 1",
        )
    if _close(got, expected * len(z), 1e-5):
        return report_not_yet(
            f"your gradient is N = {len(z)} times too large",
            "the loss is a mean over N examples, so every term carries a factor 1/N",
        )
    report_not_yet(
        "your gradient does not match finite differences of the loss",
        "use sigmoid'(z) = sigmoid(z) (1 - sigmoid(z)); the terms combine to "
        "(sigmoid(z) - y) times a factor from the mean",
    )


def check_stable_learning_rate(answer: float | None) -> None:
    """Check the learning-rate limit of gradient descent on ``L = (theta_1^2 + 10 theta_2^2) / 2``.

    Args:
        answer: The learner's number: the rate above which the iteration diverges from
            almost every start, or None.
    """
    if answer is None:
        return report_not_attempted("a number")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a number", "write the rate as a float, like 0.1")
    if abs(value - 0.2) < 1e-9:
        return report_correct(
            "each step multiplies theta_1 by (1 - eta) and theta_2 by (1 - 10 eta); both "
            "shrink only while eta < 2/10 = 0.2, so the steepest direction sets the limit."
        )
    if abs(value - 2.0) < 1e-9:
        return report_not_yet(
            "2.0 is the limit for theta_1 alone, but theta_2 has already blown up by then",
            "every coordinate must shrink, and the steepest one (curvature 10) fails first",
        )
    if abs(value - 0.1) < 1e-9:
        return report_not_yet(
            "0.1 lands theta_2 on its minimum in one step; it is not the limit",
            "larger rates overshoot but still converge while |1 - 10 eta| < 1",
        )
    report_not_yet(
        f"{value} is not the limit",
        "the gradient is (theta_1, 10 theta_2), so one step multiplies the coordinates by "
        "(1 - eta) and (1 - 10 eta); ask when both factors are smaller than 1 in size",
    )


def check_dense_input_grad(
    answer: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None,
) -> None:
    """Check ``grad_x(x, w, b, grad_y)``: dL/dX of a sigmoid dense layer ``y = sigmoid(XW + b)``.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function grad_x(x, w, b, grad_y)")
    rng = np.random.default_rng(4)
    x, w, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
    grad_y = rng.normal(size=(5, 4))
    got = _call(answer, x, w, b, grad_y)
    if isinstance(got, str):
        return report_not_yet(got, "the shapes are x (5, 3), w (3, 4), b (4,) and grad_y (5, 4)")
    z, _ = backprop.dense_forward(x, w, b, "sigmoid")
    expected = backprop.dense_backward(x, w, z, grad_y, "sigmoid").x
    if got.shape != x.shape:
        return report_not_yet(
            f"your gradient has shape {got.shape}, but x has shape {x.shape}",
            "a gradient has the shape of what it differentiates by; (N, d_out) @ (d_out, d_in) "
            "gives (N, d_in)",
        )
    if _close(got, expected):
        return report_correct("dL/dX = (dL/dY * sigmoid'(Z)) W^T.")
    if _close(got, grad_y @ w.T):
        return report_not_yet(
            "you left out the activation's derivative",
            "first turn dL/dY into dL/dZ by multiplying elementwise with sigmoid'(Z)",
        )
    report_not_yet(
        "your gradient does not match the chain rule",
        "dL/dZ = dL/dY * sigmoid(Z) (1 - sigmoid(Z)), then multiply by W^T on the right",
    )


# Chapter 3b: attention


def check_padding_mask(answer: np.ndarray | None) -> None:
    """Check the padding mask for a batch of two sequences of lengths 3 and 5, padded to 5.

    Args:
        answer: The learner's boolean array of shape (2, 1, 5), True = may attend, or None.
    """
    if answer is None:
        return report_not_attempted("a boolean array of shape (2, 1, 5)")
    got = np.asarray(answer)
    expected = attention.padding_mask([3, 5], 5)
    if got.dtype != np.bool_:
        return report_not_yet(
            f"your mask has dtype {got.dtype}",
            "a mask is boolean: compare positions with the lengths, or use .astype(bool)",
        )
    if got.shape == (2, 5):
        return report_not_yet(
            "your mask has shape (2, 5) and would broadcast the wrong way against "
            "(batch, queries, keys) scores",
            "add a query axis of size 1: mask[:, None, :]",
        )
    if got.shape != expected.shape:
        return report_not_yet(
            f"your mask has shape {got.shape}",
            "one row per sequence, a query axis of size 1, one column per key: (2, 1, 5)",
        )
    if np.array_equal(got, ~expected):
        return report_not_yet(
            "your mask is inverted", "True must mean 'may attend', so real tokens are True"
        )
    if np.array_equal(got, expected):
        return report_correct("keys 3 and 4 of the first sequence are hidden; nothing else is.")
    report_not_yet(
        "some positions are wrong",
        "position j is a real token of sequence b when j < lengths[b]",
    )


def check_attention_parameter_count(answer: int | None) -> None:
    """Check the parameter count of multi-head attention with d_model 384 and 12 heads.

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if not isinstance(answer, int | np.integer):
        return report_not_yet(f"{answer!r} is not an integer", "count parameters as a whole number")
    d_model = 384
    projection = d_model * d_model + d_model
    if answer == 4 * projection:
        return report_correct(
            "four projections (Q, K, V and output) of 384 x 384 weights plus 384 biases each "
            "make 591,360, whatever the number of heads."
        )
    if answer == 4 * d_model * d_model:
        return report_not_yet(
            "you counted the weights but not the biases", "each projection has one"
        )
    if answer == 3 * projection:
        return report_not_yet(
            "you left out the output projection W^O", "Concat(heads) is multiplied by W^O"
        )
    report_not_yet(
        f"{answer:,} is not the count",
        "the heads split d_model = 384 into 12 slices of 32, so the per-head matrices "
        "together are still 384 x 384 per projection",
    )


def check_causal_attention(
    answer: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None,
) -> None:
    """Check ``causal_attention(q, k, v)``: single-head attention where token i sees 0..i.

    Args:
        answer: The learner's function of q, k (L, d_k) and v (L, d_v), returning (L, d_v),
            or None.
    """
    if answer is None:
        return report_not_attempted("a function causal_attention(q, k, v)")
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    got = _call(answer, q, k, v)
    if isinstance(got, str):
        return report_not_yet(got, "q and k have shape (6, 4) and v has shape (6, 3)")
    mask = attention.causal_mask(6)

    def reference(mask: np.ndarray | None, scale: float | None = None) -> np.ndarray:
        return attention.scaled_dot_product_attention(q, k, v, mask, scale)[0]

    if _close(got, reference(mask)):
        return report_correct("each token attends to itself and the tokens before it.")
    if _close(got, reference(None)):
        return report_not_yet("your output ignores the mask", "set the masked scores to -inf")
    if _close(got, reference(mask, scale=1.0)):
        return report_not_yet("the scores are not scaled", "divide q k^T by sqrt(d_k) = 2")
    if _close(got, reference(mask.T)):
        return report_not_yet(
            "your mask lets tokens see the future, not the past",
            "rows are queries and columns keys: query i may attend keys j <= i (np.tril)",
        )
    report_not_yet(
        "your output does not match causal attention",
        "scores = q @ k.T / sqrt(d_k); hide j > i with -inf; softmax each row; multiply by v",
    )
