"""Checks of chapter 5's exercises: cost of scale (05a), interpretability (05b), efficiency (05c).

Belongs here: one ``check_...`` function per exercise of chapter 5's notebooks, and the
small reference answers they compare with. Each prints a verdict through
``helpers.checks.report`` and never raises. torch is imported inside the checks that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.checks.report import report_correct, report_not_attempted, report_not_yet
from helpers.lessons.quantization import distillation_loss, predicted_int8_size_bytes
from helpers.lessons.scaling import (
    ADAM_FP32_BYTES_PER_PARAMETER,
    BERT_BASE,
    forward_flops,
    parameter_breakdown,
    parameter_count,
)

if TYPE_CHECKING:
    import torch


def _number(answer: object) -> float | None:
    try:
        return float(answer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        report_not_yet(f"{answer!r} is not a number", "write it as an int or a float.")
        return None


def check_bert_base_parameters(answer: int | None) -> None:
    """Check the parameter count of BERT-base (``BertModel`` with its pooler).

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    value = _number(answer)
    if value is None:
        return None
    parts = parameter_breakdown(BERT_BASE)
    expected = sum(parts.values())
    if value == expected:
        return report_correct(
            f"{expected:,} parameters, {parts['embeddings']:,} of them in the embeddings."
        )
    h = BERT_BASE.hidden_size
    hints = {
        expected - parts["pooler"]: "you left out the pooler (one 768 x 768 dense layer)",
        expected - parts["layer_norms"] - 2 * h: "you left out the LayerNorms (2 x 768 each)",
        expected - (BERT_BASE.max_positions + BERT_BASE.type_vocab_size) * h: (
            "you left out the position and token-type embeddings"
        ),
        expected - 12 * (4 * h + 3072 + h) - h: "you left out the biases",
    }
    for wrong, problem in hints.items():
        if value == wrong:
            return report_not_yet(f"{problem}", "add up every part listed above the exercise.")
    report_not_yet(
        f"{value:,.0f} is not the count",
        "embeddings (V + P + T) h + 2h, then per "
        "layer 4 (h^2 + h) + 2 h i + i + h + 4h, then the pooler h^2 + h.",
    )


def check_flops_ratio(answer: float | None) -> None:
    """Check the forward-FLOP ratio of BERT-base at 256 tokens per sequence versus 128.

    Args:
        answer: The learner's ratio, or None.
    """
    if answer is None:
        return report_not_attempted("a number")
    value = _number(answer)
    if value is None:
        return None
    expected = forward_flops(BERT_BASE, batch_size=1, seq_len=256) / forward_flops(
        BERT_BASE, batch_size=1, seq_len=128
    )
    if abs(value - expected) < 1e-4:
        return report_correct(
            f"{expected:.4f}. The projections and feed-forward grow with the number of "
            "tokens (x2), the attention scores with its square (x4)."
        )
    if abs(value - 2) < 1e-9:
        return report_not_yet(
            "2 would hold if every FLOP grew with the number of tokens",
            "the score matrix Q K^T is seq_len x seq_len.",
        )
    if abs(value - 4) < 1e-9:
        return report_not_yet(
            "only the attention term grows fourfold",
            "most FLOPs are in the projections and the feed-forward block, which grow linearly.",
        )
    report_not_yet(
        f"{value} is not the ratio",
        "use helpers.lessons.scaling.forward_flops with "
        "BERT_BASE, batch_size=1 and seq_len 256 and 128, or the formula above it.",
    )


def check_training_memory_gib(answer: float | None) -> None:
    """Check the GiB that BERT-base's weights, gradients and AdamW state take in float32.

    Args:
        answer: The learner's number of GiB (2**30 bytes), or None.
    """
    if answer is None:
        return report_not_attempted("a number of GiB")
    value = _number(answer)
    if value is None:
        return None
    params = parameter_count(BERT_BASE)
    expected = ADAM_FP32_BYTES_PER_PARAMETER * params / 2**30
    if abs(value - expected) < 0.01:
        return report_correct(
            f"16 bytes x {params:,} = {expected:.2f} GiB before a single activation."
        )
    if abs(value - 4 * params / 2**30) < 0.01:
        return report_not_yet(
            "that is the weights alone",
            "training also keeps a gradient and AdamW's two moments per parameter.",
        )
    if abs(value - 16 * params / 1e9) < 0.01:
        return report_not_yet("that is in GB (10^9 bytes)", "a GiB is 2**30 bytes.")
    report_not_yet(
        f"{value} GiB is not it",
        "four float32 numbers (4 bytes each) per parameter, divided by 2**30.",
    )


def check_integrated_gradients(
    answer: Callable[[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray, int], Any] | None,
) -> None:
    """Check a NumPy ``integrated_gradients(grad_f, x, baseline, steps)``.

    The test function is ``f(x) = sum(w * tanh(x))``, whose exact integrated gradients are
    ``w * (tanh(x) - tanh(baseline))`` because each input acts on its own.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function integrated_gradients(grad_f, x, baseline, steps)")
    rng = np.random.default_rng(7)
    w, x, baseline = rng.normal(size=6), rng.normal(0, 2, 6), rng.normal(0, 0.5, 6)

    def grad_f(point: np.ndarray) -> np.ndarray:
        return w * (1 - np.tanh(point) ** 2)

    try:
        got = np.asarray(answer(grad_f, x, baseline, 200), dtype=np.float64)
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "grad_f takes one point (an array like x) and returns the gradient there.",
        )
    exact = w * (np.tanh(x) - np.tanh(baseline))
    if got.shape != x.shape:
        return report_not_yet(
            f"you returned shape {got.shape}, but x has shape {x.shape}",
            "one attribution per input.",
        )
    if np.allclose(got, exact, atol=1e-3):
        return report_correct(
            "your attributions match the exact ones, and they add up to "
            f"f(x) - f(baseline) = {exact.sum():.4f}."
        )
    if np.allclose(got, grad_f(x) * x, atol=1e-3):
        return report_not_yet(
            "that is gradient x input at x alone",
            "average the gradient along the path baseline + a (x - baseline), a from 0 to 1.",
        )
    if np.allclose(got * (x - baseline), exact, rtol=0.05, atol=1e-2):
        return report_not_yet("you returned the average gradient", "multiply it by (x - baseline).")
    report_not_yet(
        f"your attributions differ from the exact ones by up to {np.abs(got - exact).max():.3g}",
        "evaluate grad_f at baseline + a (x - baseline) "
        "for a = 0, 1/steps, ..., 1, average, and multiply by (x - baseline).",
    )


def kept_pairs(tokens: Sequence[str], scores: Sequence[float]) -> list[tuple[str, float]]:
    """Return ``(token, score)`` pairs without BERT's special tokens ``[CLS]`` and ``[SEP]``."""
    return [(t, s) for t, s in zip(tokens, scores, strict=True) if t not in ("[CLS]", "[SEP]")]


def top_tokens_reference(tokens: Sequence[str], scores: Sequence[float], k: int) -> list[str]:
    """Return the ``k`` tokens with the largest absolute scores, special tokens skipped.

    Args:
        tokens: Token strings, such as ``Attribution.tokens``.
        scores: One score per token.
        k: How many to return.

    Returns:
        The tokens, largest ``|score|`` first (ties keep the sentence order).
    """
    kept = kept_pairs(tokens, scores)
    order = sorted(range(len(kept)), key=lambda i: -abs(kept[i][1]))
    return [kept[i][0] for i in order[:k]]


def check_top_tokens(answer: Callable[[Sequence[str], Sequence[float], int], Any] | None) -> None:
    """Check ``top_tokens(tokens, scores, k)`` on a made-up attribution.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function top_tokens(tokens, scores, k)")
    tokens = ["[CLS]", "the", "film", "was", "not", "good", "[SEP]"]
    scores = [2.5, 0.1, -0.3, 0.05, -1.2, 0.9, -3.0]
    expected = top_tokens_reference(tokens, scores, 3)
    try:
        got = list(answer(tokens, scores, 3))
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "run it on a small example first and read the error.",
        )
    if got == expected:
        return report_correct(f"{got}. 'not' matters most, and it pushes the logit down.")
    if "[SEP]" in got or "[CLS]" in got:
        return report_not_yet("special tokens are in your answer", "skip '[CLS]' and '[SEP]'.")
    signed = [t for t, _ in sorted(kept_pairs(tokens, scores), key=lambda pair: -pair[1])][:3]
    if got == signed:
        return report_not_yet(
            "you ranked by signed score",
            "a large negative score matters as much as a large positive one: sort by abs(score).",
        )
    report_not_yet(
        f"expected {len(expected)} tokens, largest |score| first; you gave {got}",
        "drop the special tokens, sort the rest by abs(score), keep the first k.",
    )


def check_int8_size(answer: float | None, model: torch.nn.Module) -> None:
    """Check a prediction of the int8 model's size in MB (10**6 bytes).

    Args:
        answer: The learner's number of MB, or None.
        model: The float32 model it was predicted for.
    """
    if answer is None:
        return report_not_attempted("a number of MB")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a number", "give MB as a float.")
    expected = predicted_int8_size_bytes(model) / 1e6
    everything = sum(p.numel() for p in model.parameters()) / 1e6
    if abs(value - expected) <= 0.01 * expected:
        return report_correct(
            f"about {expected:.1f} MB. The embeddings are not linear layers, so they "
            "stay in float32 and now dominate the file."
        )
    if abs(value - everything) <= 0.01 * everything:
        return report_not_yet(
            "that is every parameter at 1 byte",
            "only nn.Linear weights become "
            "int8; embeddings, LayerNorms and biases stay at 4 bytes.",
        )
    report_not_yet(
        f"{value} MB is not it",
        "1 byte per nn.Linear weight plus 4 bytes per other parameter, divided by 10**6.",
    )


def check_distillation_loss(
    answer: Callable[[np.ndarray, np.ndarray, float], float] | None,
) -> None:
    """Check ``loss(student_logits, teacher_logits, temperature)`` against the reference.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function loss(student_logits, teacher_logits, temperature)")
    rng = np.random.default_rng(11)
    student, teacher = rng.normal(0, 2, (5, 3)), rng.normal(0, 3, (5, 3))
    expected = distillation_loss(student, teacher, 4.0)
    try:
        got = float(answer(student, teacher, 4.0))
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "run it on a small example first and read the error.",
        )
    if abs(got - expected) < 1e-6 * max(1.0, abs(expected)):
        return report_correct(f"{got:.6f}, the same as the reference.")
    if abs(got * 16 - expected) < 1e-6 * max(1.0, abs(expected)):
        return report_not_yet("you left out the factor T^2", "multiply the KL by T**2.")
    if abs(got - distillation_loss(student, teacher, 1.0)) < 1e-6:
        return report_not_yet("the temperature has no effect", "divide both logits by T.")
    swapped = distillation_loss(teacher, student, 4.0)
    if abs(got - swapped) < 1e-6 * max(1.0, abs(swapped)):
        return report_not_yet(
            "the KL is the wrong way round",
            "KL(teacher || student) weights by the teacher's probabilities.",
        )
    report_not_yet(
        f"you returned {got:.6f}, the reference gives {expected:.6f}",
        "p = softmax(teacher / T), q = softmax(student / T), then T**2 * mean(sum p log(p/q)).",
    )
