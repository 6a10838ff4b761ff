"""Checks of chapter 5's exercises: cost of scale (05a), interpretability (05b), efficiency (05c).

Belongs here: one ``check_...`` function per exercise of chapter 5's notebooks, and the
small reference answers they compare with. Each prints a verdict through
``helpers.checks.report`` and never raises. torch is imported inside the checks that need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.checks.report import report_correct, report_not_attempted, report_not_yet
from helpers.lessons.lora import IGNORE_INDEX, lora_parameter_count
from helpers.lessons.quantization import distillation_loss, predicted_int8_size_bytes
from helpers.lessons.scaling import (
    ADAM_FP32_BYTES_PER_PARAMETER,
    BERT_BASE,
    forward_flops,
    parameter_breakdown,
    parameter_count,
)
from helpers.lessons.stats import accuracy_interval

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


# Checks of notebooks 05d (LoRA) and 05e (instruction tuning).


def check_lora_parameters(answer: int | None) -> None:
    """Check the LoRA parameters of rank 16 on MiniLM's query, key and value (6 layers).

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    value = _number(answer)
    if value is None:
        return None
    expected = 6 * 3 * lora_parameter_count(384, 384, 16)
    if value == expected:
        return report_correct(
            f"{expected:,}: 18 matrices, each r (in + out) = 16 x 768, "
            f"{expected / 22_713_986:.2%} of the classifier."
        )
    hints = {
        6 * 3 * 16 * 384: "that counts A only; B has out x r numbers too: r (in + out)",
        6 * 3 * 384 * 384: "that is the full matrices; LoRA trains r (in + out) per matrix",
        3 * lora_parameter_count(384, 384, 16): "that is one layer; MiniLM has 6",
        6 * 2 * lora_parameter_count(384, 384, 16): "that is query and value; add the key",
    }
    if value in hints:
        return report_not_yet(hints[value], "6 layers x 3 matrices x r (in + out).")
    report_not_yet(f"{value:,.0f} is not it", "6 layers x 3 matrices x r (in + out), r = 16.")


def check_lora_merge(answer: Callable[..., Any] | None) -> None:
    """Check ``merge(W, A, B, alpha, r)`` against ``W + (alpha / r) B A``.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function merge(W, A, B, alpha, r)")
    rng = np.random.default_rng(5)
    w, a, b = rng.normal(size=(6, 5)), rng.normal(size=(2, 5)), rng.normal(size=(6, 2))
    expected = w + (16 / 2) * b @ a
    try:
        got = np.asarray(answer(w, a, b, 16, 2), dtype=np.float64)
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "B has shape (out, r) and A (r, in): which product has the shape of W?",
        )
    if got.shape != w.shape:
        return report_not_yet(
            f"the result has shape {got.shape}, W has {w.shape}", "B @ A is (out, in)."
        )
    if np.allclose(got, expected):
        return report_correct("W + (alpha / r) B A, one matrix of W's shape.")
    if np.allclose(got, w + b @ a):
        return report_not_yet("the scale is missing", "multiply B @ A by alpha / r.")
    if np.allclose(got, w + (2 / 16) * b @ a):
        return report_not_yet("the scale is upside down", "it is alpha / r, here 16 / 2 = 8.")
    report_not_yet("the merged weight differs", "return W + (alpha / r) * B @ A.")


def check_lora_rank_budget(answer: int | None) -> None:
    """Check the largest rank with at most 1 % of a 4096 x 4096 matrix's parameters.

    Args:
        answer: The learner's rank, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    value = _number(answer)
    if value is None:
        return None
    budget = 0.01 * 4096 * 4096
    expected = int(budget // (4096 + 4096))
    if value == expected:
        return report_correct(
            f"r = {expected}: {lora_parameter_count(4096, 4096, expected):,} numbers, "
            f"{lora_parameter_count(4096, 4096, expected) / 4096**2:.2%} of the matrix; "
            "LoRA's usual ranks (4 to 64) are well inside."
        )
    if value == expected + 1:
        return report_not_yet(
            f"r = {expected + 1} gives {lora_parameter_count(4096, 4096, expected + 1):,}, "
            f"above {budget:,.0f}",
            "round down.",
        )
    if value == int(budget // 4096):
        return report_not_yet("A and B both count", "r (4096 + 4096) <= 1 % of 4096 x 4096.")
    report_not_yet(f"r = {value:g} is not it", "solve r (4096 + 4096) <= 0.01 x 4096 x 4096.")


def check_sft_labels(answer: Callable[[list[int], list[int]], list[int]] | None) -> None:
    """Check ``labels(prompt_ids, full_ids)``: -100 on the prompt, the ids on the answer.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function labels(prompt_ids, full_ids)")
    prompt, full = [1, 9690, 198, 42, 7], [1, 9690, 198, 42, 7, 16185, 2, 198]
    expected = [IGNORE_INDEX] * 5 + [16185, 2, 198]
    try:
        got = [int(v) for v in answer(list(prompt), list(full))]
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "return a list as long as full_ids.",
        )
    if got == expected:
        return report_correct("only the answer and its end-of-turn tokens carry labels.")
    if got == full:
        return report_not_yet("every token is labelled", "put -100 on the prompt's positions.")
    if len(got) != len(full):
        return report_not_yet(
            f"{len(got)} labels for {len(full)} tokens", "one label per input token."
        )
    if got[5:] == [IGNORE_INDEX] * 3:
        return report_not_yet("the answer is masked", "mask the prompt, keep the answer.")
    report_not_yet(f"got {got}", "[-100] * len(prompt_ids) + full_ids[len(prompt_ids):].")


def check_normal_interval(answer: tuple[float, float] | None, correct: int, total: int) -> None:
    """Check the normal-approximation 95 % interval of an accuracy ``correct / total``.

    Args:
        answer: The learner's ``(low, high)``, or None.
        correct: Right answers.
        total: Scored answers.
    """
    if answer is None:
        return report_not_attempted("a pair (low, high)")
    try:
        low, high = (float(v) for v in answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a pair of numbers", "return (low, high).")
    p = correct / total
    half = 1.96 * math.sqrt(p * (1 - p) / total)
    if abs(low - (p - half)) < 1e-3 and abs(high - (p + half)) < 1e-3:
        wilson = accuracy_interval(correct, total)
        return report_correct(
            f"[{low:.3f}, {high:.3f}], {2 * half:.3f} wide; Wilson's interval "
            f"[{wilson[0]:.3f}, {wilson[1]:.3f}] is close, and stays inside [0, 1] near 0 or 1."
        )
    if abs((high - low) / 2 - 1.96 * p * (1 - p) / total) < 1e-4:
        return report_not_yet("the square root is missing", "the standard error is sqrt(p(1-p)/n).")
    if abs(high - low - 2 * 1.96 * math.sqrt(p * (1 - p))) < 1e-3:
        return report_not_yet("n is missing", "divide p(1 - p) by the number of sentences.")
    report_not_yet(f"[{low:.3f}, {high:.3f}] is not it", "p -/+ 1.96 sqrt(p (1 - p) / n).")
