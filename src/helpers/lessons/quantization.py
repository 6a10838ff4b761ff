"""Making a trained model cheaper to run: dynamic int8 quantization, and distillation's loss.

Belongs here: quantizing a PyTorch model's linear layers to int8 with PyTorch's dynamic
quantization, its size on disk (measured and predicted), its latency and accuracy on
sentences, the soft-target loss with which distillation trains a small student on a large
teacher, and the checks of chapter 5c's exercises. torch is imported inside the functions
that need it.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.lessons.backprop import log_softmax
from helpers.lessons.scaling import median_seconds

if TYPE_CHECKING:
    import torch


def quantize_dynamic_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Return a copy of a model whose ``nn.Linear`` layers compute with int8 weights.

    Dynamic quantization stores each linear layer's weights as 8-bit integers with one
    scale for the whole weight tensor (``qscheme=torch.per_tensor_affine``, zero point 0),
    and quantizes the activations on the fly, per batch, when the layer runs. Embeddings,
    LayerNorms and everything else stay in float32. It runs on CPUs only.
    ``torch.ao.quantization`` is deprecated in favour of the separate torchao package; its
    deprecation warnings are silenced here because the book pins the PyTorch version that
    still has it.

    Args:
        model: A float32 model on the CPU (it is not modified).

    Returns:
        The quantized copy, in eval mode.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).cpu().eval(), {torch.nn.Linear}, dtype=torch.qint8
        )


def serialized_size_bytes(model: torch.nn.Module) -> int:
    """Return the bytes that ``torch.save(model.state_dict())`` writes: the size on disk.

    Args:
        model: Any model, quantized or not.

    Returns:
        The number of bytes.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def predicted_int8_size_bytes(model: torch.nn.Module) -> int:
    """Predict the weight bytes of a float32 model after ``quantize_dynamic_int8``.

    Linear weights shrink from 4 bytes to 1 per number; their biases and every other
    parameter stay at 4 bytes. The scales (one per layer) and file metadata are left
    out, so the measured size is slightly larger.

    Args:
        model: The float32 model.

    Returns:
        The predicted number of bytes.
    """
    import torch

    linear_weights = sum(
        module.weight.numel() for module in model.modules() if isinstance(module, torch.nn.Linear)
    )
    total = sum(p.numel() for p in model.parameters())
    return 4 * (total - linear_weights) + linear_weights


def latency_seconds(
    model: torch.nn.Module, batch: dict[str, Any], *, repeats: int = 5, warmup: int = 1
) -> float:
    """Return the median time of one forward pass on a batch, without gradients.

    Args:
        model: The model, in eval mode.
        batch: Its inputs, such as a tokenizer's output.
        repeats: Timed calls.
        warmup: Untimed calls first.

    Returns:
        The median in seconds.
    """
    import torch

    def forward() -> None:
        with torch.no_grad():
            model(**batch)

    return median_seconds(forward, repeats=repeats, warmup=warmup)


def accuracy(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    max_length: int = 64,
    batch_size: int = 64,
) -> float:
    """Return a sequence classifier's accuracy on sentences, on the CPU.

    Args:
        model: A Transformers model for sequence classification, in eval mode, on the CPU.
        tokenizer: Its tokenizer.
        texts: The sentences.
        labels: Their labels.
        max_length: Longest tokenised sentence kept.
        batch_size: Sentences per forward pass.

    Returns:
        The fraction classified correctly.

    Raises:
        ValueError: ``texts`` and ``labels`` differ in length or are empty.
    """
    import torch

    labels = np.asarray(labels)
    if len(texts) != len(labels) or len(texts) == 0:
        raise ValueError(f"got {len(texts)} texts and {len(labels)} labels: need equal, nonzero")
    predictions = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            predictions.append(model(**batch).logits.argmax(-1).numpy())
    return float(np.mean(np.concatenate(predictions) == labels))


def distillation_loss(
    student_logits: np.ndarray, teacher_logits: np.ndarray, temperature: float
) -> float:
    """Return Hinton et al.'s soft-target loss, ``T^2 KL(softmax(t/T) || softmax(s/T))``.

    Both sets of logits are divided by the temperature ``T`` before the softmax, which
    spreads the teacher's probabilities so the student also learns how the teacher ranks
    the wrong classes; the ``T^2`` keeps the gradient's size independent of ``T``. The
    loss is averaged over the batch.

    Args:
        student_logits: Shape ``(batch, classes)``.
        teacher_logits: The same shape.
        temperature: ``T > 0``.

    Returns:
        The loss.

    Raises:
        ValueError: The shapes differ or the temperature is not positive.
    """
    s, t = np.asarray(student_logits, float), np.asarray(teacher_logits, float)
    if s.shape != t.shape or s.ndim != 2:
        raise ValueError(
            f"student {s.shape} and teacher {t.shape}: expected equal (batch, classes)"
        )
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be positive")
    log_p, log_q = log_softmax(t / temperature), log_softmax(s / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)
    return float(temperature**2 * kl.mean())


# Exercise checks (chapter 5c). Each prints "Correct: ..." or "Not yet: ... Hint: ...".
