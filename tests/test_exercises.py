"""The exercise checks of chapter 3: right answers pass, typical mistakes get their hint."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.checks import ch03 as checks
from helpers.lessons import attention


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def causal(q, k, v, mask=True, scale=True, transpose=False):
    """Causal attention with switchable mistakes."""
    scores = q @ k.T / (np.sqrt(k.shape[1]) if scale else 1.0)
    allowed = np.tril(np.ones(scores.shape, dtype=bool))
    if transpose:
        allowed = allowed.T
    if mask:
        scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True) @ v


def raises(*args):
    raise RuntimeError("boom")


CASES = [
    # (check, answer, expected start of the output, a phrase it must contain)
    (checks.check_bce_gradient, None, "Not attempted yet", "replace None"),
    (checks.check_bce_gradient, lambda z, y: (sigmoid(z) - y) / len(z), "Correct", "(sigmoid"),
    (checks.check_bce_gradient, lambda z, y: (y - sigmoid(z)) / len(z), "Not yet", "sign"),
    (checks.check_bce_gradient, lambda z, y: sigmoid(z) - y, "Not yet", "N = 7 times"),
    (checks.check_bce_gradient, lambda z, y: sigmoid(z), "Not yet", "Hint: use sigmoid'"),
    (checks.check_bce_gradient, lambda z, y: np.zeros(3), "Not yet", "shape (3,)"),
    (checks.check_bce_gradient, raises, "Not yet", "RuntimeError: boom"),
    (checks.check_stable_learning_rate, None, "Not attempted yet", "a number"),
    (checks.check_stable_learning_rate, 0.2, "Correct", "2/10 = 0.2"),
    (checks.check_stable_learning_rate, 0.1, "Not yet", "one step"),
    (checks.check_stable_learning_rate, 2.0, "Not yet", "steepest"),
    (checks.check_stable_learning_rate, 1.0, "Not yet", "(1 - 10 eta)"),
    (checks.check_stable_learning_rate, "fast", "Not yet", "not a number"),
    (checks.check_dense_input_grad, None, "Not attempted yet", "grad_x"),
    (
        checks.check_dense_input_grad,
        lambda x, w, b, g: (g * sigmoid(x @ w + b) * (1 - sigmoid(x @ w + b))) @ w.T,
        "Correct",
        "W^T",
    ),
    (checks.check_dense_input_grad, lambda x, w, b, g: g @ w.T, "Not yet", "derivative"),
    (checks.check_dense_input_grad, lambda x, w, b, g: x.T @ g, "Not yet", "shape (3, 4)"),
    (checks.check_dense_input_grad, lambda x, w, b, g: -g @ w.T * 2, "Not yet", "chain rule"),
    (checks.check_padding_mask, None, "Not attempted yet", "(2, 1, 5)"),
    (checks.check_padding_mask, attention.padding_mask([3, 5], 5), "Correct", "keys 3 and 4"),
    (checks.check_padding_mask, ~attention.padding_mask([3, 5], 5), "Not yet", "inverted"),
    (
        checks.check_padding_mask,
        attention.padding_mask([3, 5], 5)[:, 0],
        "Not yet",
        "[:, None, :]",
    ),
    (checks.check_padding_mask, np.ones((2, 1, 5)), "Not yet", "dtype float64"),
    (checks.check_padding_mask, np.ones((2, 5, 1), bool), "Not yet", "(2, 1, 5)"),
    (checks.check_padding_mask, attention.padding_mask([2, 5], 5), "Not yet", "lengths[b]"),
    (checks.check_attention_parameter_count, None, "Not attempted yet", "integer"),
    (checks.check_attention_parameter_count, 591_360, "Correct", "591,360"),
    (checks.check_attention_parameter_count, 4 * 384 * 384, "Not yet", "biases"),
    (checks.check_attention_parameter_count, 3 * (384 * 384 + 384), "Not yet", "W^O"),
    (checks.check_attention_parameter_count, 12, "Not yet", "12 slices of 32"),
    (checks.check_attention_parameter_count, 591_360.0, "Not yet", "not an integer"),
    (checks.check_causal_attention, None, "Not attempted yet", "causal_attention"),
    (checks.check_causal_attention, causal, "Correct", "itself"),
    (
        checks.check_causal_attention,
        lambda q, k, v: causal(q, k, v, mask=False),
        "Not yet",
        "mask",
    ),
    (
        checks.check_causal_attention,
        lambda q, k, v: causal(q, k, v, scale=False),
        "Not yet",
        "sqrt",
    ),
    (
        checks.check_causal_attention,
        lambda q, k, v: causal(q, k, v, transpose=True),
        "Not yet",
        "future",
    ),
    (checks.check_causal_attention, lambda q, k, v: v, "Not yet", "softmax each row"),
]


@pytest.mark.parametrize("check, answer, start, phrase", CASES)
def test_checks_say_right_or_wrong_with_a_hint(check, answer, start, phrase, capsys):
    assert check(answer) is None  # prints; never raises for a wrong answer
    printed = capsys.readouterr().out
    assert printed.startswith(start), printed
    assert phrase in printed, printed
    if start == "Not yet":
        assert "Hint:" in printed, printed
