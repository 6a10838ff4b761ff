"""The cost of scale: what a BERT-style Transformer costs in parameters, FLOPs, memory and time.

Belongs here: exact analytic counts of the parameters and the matrix-multiplication FLOPs
of a BERT encoder (with its pooler and classification head) from its configuration; small
configurations to experiment with; measuring FLOPs, the memory autograd holds for the
backward pass, and the time of a training step; fitting a power law to measurements; and
the checks of chapter 5a's exercises. torch and Transformers are imported inside the
functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.runtime.timing import median_seconds

if TYPE_CHECKING:
    import torch

# AdamW keeps two moments per parameter; with the weights and their gradients that is four
# numbers per parameter, 16 bytes in float32.
ADAM_FP32_BYTES_PER_PARAMETER = 16


@dataclass(frozen=True)
class TransformerShape:
    """The sizes of a BERT-style encoder that fix its parameter and FLOP counts."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int = 2

    @classmethod
    def from_config(cls, config: Any) -> TransformerShape:
        """Read the sizes from a Transformers ``BertConfig`` (or anything with its attributes).

        Args:
            config: The configuration.

        Returns:
            The shape.

        Raises:
            ValueError: An attribute is missing (the message names it).
        """
        names = {
            "vocab_size": "vocab_size",
            "hidden_size": "hidden_size",
            "num_layers": "num_hidden_layers",
            "intermediate_size": "intermediate_size",
            "max_positions": "max_position_embeddings",
            "type_vocab_size": "type_vocab_size",
        }
        missing = [attr for attr in names.values() if not hasattr(config, attr)]
        if missing:
            raise ValueError(
                f"{type(config).__name__} has no attribute(s) {missing}: expected a BERT-style "
                "configuration such as transformers.BertConfig"
            )
        return cls(**{field: int(getattr(config, attr)) for field, attr in names.items()})


def _shape(config: Any) -> TransformerShape:
    return config if isinstance(config, TransformerShape) else TransformerShape.from_config(config)


def parameter_breakdown(config: Any, *, pooler: bool = True, num_labels: int = 0) -> dict[str, int]:
    """Count the parameters of a BERT encoder, part by part, from its sizes alone.

    With hidden size ``h``, intermediate size ``i`` and ``L`` layers: the embeddings hold
    ``(V + P + T) h`` vectors plus a LayerNorm (``2h``); each layer holds four ``h x h``
    attention projections with biases, a LayerNorm, the two feed-forward matrices with
    biases and another LayerNorm; the pooler is one ``h x h`` dense layer; the
    classification head is ``h x C`` plus ``C`` biases.

    Args:
        config: A ``BertConfig`` or a ``TransformerShape``.
        pooler: Whether the model has BERT's pooler (``BertModel`` and
            ``BertForSequenceClassification`` do).
        num_labels: Classes of the classification head; 0 for none.

    Returns:
        ``{"embeddings", "attention", "feed_forward", "layer_norms", "pooler", "classifier"}``
        to counts; the attention, feed-forward and layer-norm entries cover all layers.
    """
    s = _shape(config)
    h, i, layers = s.hidden_size, s.intermediate_size, s.num_layers
    return {
        "embeddings": (s.vocab_size + s.max_positions + s.type_vocab_size) * h + 2 * h,
        "attention": layers * 4 * (h * h + h),
        "feed_forward": layers * (2 * h * i + i + h),
        "layer_norms": layers * 2 * 2 * h,
        "pooler": (h * h + h) if pooler else 0,
        "classifier": (h * num_labels + num_labels) if num_labels else 0,
    }


def parameter_count(config: Any, *, pooler: bool = True, num_labels: int = 0) -> int:
    """Count the parameters of a BERT encoder from its configuration alone.

    Args:
        config: A ``BertConfig`` or a ``TransformerShape``.
        pooler: Whether the model has BERT's pooler.
        num_labels: Classes of the classification head; 0 for none.

    Returns:
        The number of parameters, equal to ``sum(p.numel() for p in model.parameters())``.
    """
    return sum(parameter_breakdown(config, pooler=pooler, num_labels=num_labels).values())


def forward_flops(
    config: Any, *, batch_size: int, seq_len: int, pooler: bool = True, num_labels: int = 0
) -> int:
    """Count the FLOPs of the matrix multiplications in one forward pass of a BERT encoder.

    A multiplication of an ``(m, k)`` by a ``(k, n)`` matrix costs ``2 m k n`` FLOPs (a
    multiply and an add per term). With ``N = batch_size * seq_len`` tokens, each layer
    costs ``8 N h^2`` for the four attention projections, ``4 N seq_len h`` for the scores
    ``Q K^T`` and the weighted sum of values (over all heads), and ``4 N h i`` for the
    feed-forward block. The pooler and the head act on the first token only. Softmax,
    LayerNorm, GELU and bias additions are left out: they are a few percent of the total.

    Args:
        config: A ``BertConfig`` or a ``TransformerShape``.
        batch_size: Sequences per batch.
        seq_len: Tokens per sequence.
        pooler: Whether the model has BERT's pooler.
        num_labels: Classes of the classification head; 0 for none.

    Returns:
        The FLOP count, equal to what ``torch.utils.flop_counter.FlopCounterMode`` counts for
        a model with eager attention (the counter misses some fused attention kernels).

    Raises:
        ValueError: ``batch_size`` or ``seq_len`` is not positive.
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size={batch_size} and seq_len={seq_len} must be positive")
    s = _shape(config)
    h, i = s.hidden_size, s.intermediate_size
    tokens = batch_size * seq_len
    per_layer = 8 * tokens * h * h + 4 * tokens * seq_len * h + 4 * tokens * h * i
    head = (2 * batch_size * h * h if pooler else 0) + 2 * batch_size * h * num_labels
    return s.num_layers * per_layer + head


def training_flops(
    config: Any, *, batch_size: int, seq_len: int, pooler: bool = True, num_labels: int = 0
) -> int:
    """Count the matrix-multiplication FLOPs of a forward and backward pass.

    The backward pass of ``Y = X W`` computes ``dL/dX`` and ``dL/dW``, two products of the
    same size as the forward one, so a training step costs three forward passes (the
    optimizer's elementwise update is not counted).

    Args:
        config: A ``BertConfig`` or a ``TransformerShape``.
        batch_size: Sequences per batch.
        seq_len: Tokens per sequence.
        pooler: Whether the model has BERT's pooler.
        num_labels: Classes of the classification head; 0 for none.

    Returns:
        Three times ``forward_flops``.
    """
    return 3 * forward_flops(
        config, batch_size=batch_size, seq_len=seq_len, pooler=pooler, num_labels=num_labels
    )


def tiny_bert_config(
    hidden_size: int,
    num_layers: int,
    *,
    num_heads: int = 4,
    vocab_size: int = 2000,
    max_positions: int = 128,
    num_labels: int = 2,
    attn_implementation: str = "eager",
) -> Any:
    """Build a small ``BertConfig`` for experiments (nothing is downloaded).

    The intermediate size is ``4 * hidden_size`` as in BERT, and dropout is left at BERT's
    0.1 (call ``model.eval()`` to switch it off).

    Args:
        hidden_size: The model width; ``num_heads`` must divide it.
        num_layers: The number of encoder layers.
        num_heads: Attention heads per layer.
        vocab_size: The vocabulary size.
        max_positions: The longest sequence the position embeddings cover.
        num_labels: Classes of a sequence-classification head.
        attn_implementation: ``"eager"`` (returns attention weights) or ``"sdpa"``.

    Returns:
        A ``transformers.BertConfig``.

    Raises:
        ValueError: ``num_heads`` does not divide ``hidden_size``.
    """
    if hidden_size % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide hidden_size={hidden_size}")
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_positions,
        num_labels=num_labels,
        attn_implementation=attn_implementation,
    )


def enable_activation_checkpointing(model: Any) -> None:
    """Turn on activation (gradient) checkpointing in a Transformers model, on any release.

    Transformers after 5.15 names it ``activation_checkpointing_enable`` and keeps
    ``gradient_checkpointing_enable`` as a deprecated alias; 5.15 (Colab's) has only the
    old name.

    Args:
        model: A Transformers ``PreTrainedModel``.
    """
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable()
    else:
        model.gradient_checkpointing_enable()


def count_flops(fn: Callable[[], object]) -> int:
    """Run ``fn`` once under PyTorch's FLOP counter and return the FLOPs it counted.

    The counter sees matrix multiplications (``mm``, ``bmm``, ``addmm``, attention kernels,
    convolutions) in the forward and the backward pass, on any device.

    Args:
        fn: A function of no arguments, for example one training step.

    Returns:
        The total FLOP count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def saved_activation_bytes(fn: Callable[[], object], model: torch.nn.Module) -> int:
    """Run ``fn`` and count the bytes of the tensors autograd saves for the backward pass.

    Every tensor that an operation saves for its backward goes through
    ``torch.autograd.graph.saved_tensors_hooks``. Tensors that share memory (views) are
    counted once, and the model's own parameters are not counted: what remains is the
    activation memory that the backward pass needs, on any device. It is what mixed
    precision shrinks and gradient checkpointing trades for recomputation. It also works
    on a sharded model (chapter 6): a saved DTensor counts with its local shard, and the
    parameters are looked up as each tensor is saved, because FSDP2 swaps a block's
    sharded parameters for gathered ones just before the block runs.

    Args:
        fn: A function of no arguments that runs a forward pass with gradients enabled.
        model: The model, whose parameters are excluded.

    Returns:
        The number of bytes.
    """
    import torch

    def local(tensor: torch.Tensor) -> torch.Tensor:
        to_local = getattr(tensor, "to_local", None)  # a DTensor keeps its shard locally
        return to_local() if callable(to_local) else tensor

    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        parameters = {local(p).untyped_storage().data_ptr() for p in model.parameters()}
        storage = local(tensor).untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values())


@dataclass(frozen=True)
class StepMeasurement:
    """What one training step of a model cost, measured."""

    seconds: float  # median wall time of forward, backward and optimizer step
    activation_bytes: int  # saved for the backward pass (see saved_activation_bytes)
    peak_bytes: int | None  # peak allocated device memory on a GPU; None on a CPU


def measure_training_step(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    *,
    repeats: int = 3,
    autocast_dtype: torch.dtype | None = None,
    scaler: Any = None,
) -> StepMeasurement:
    """Measure a sequence-classification training step: time, activation memory, GPU peak.

    The step is ``loss = model(input_ids, labels=labels).loss``, ``loss.backward()`` and an
    ``AdamW`` update, in training mode, on the device of ``input_ids``. With
    ``autocast_dtype`` the forward pass runs under ``torch.autocast`` (bfloat16 works on
    CPUs and GPUs, float16 on GPUs); the weights and the optimizer stay in float32. Pass a
    ``torch.amp.GradScaler`` as ``scaler`` with float16, whose small range needs the loss
    scaled. On a GPU the peak comes from ``torch.cuda.max_memory_allocated``.

    Args:
        model: A Transformers model for sequence classification, already on the device.
        input_ids: Token ids, shape ``(batch, seq_len)``.
        labels: Class labels, shape ``(batch,)``.
        repeats: Timed steps after one warm-up step.
        autocast_dtype: None for float32, or ``torch.bfloat16`` / ``torch.float16``.
        scaler: A ``GradScaler`` for float16, or None.

    Returns:
        The ``StepMeasurement``.
    """
    import torch

    device = input_ids.device
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cuda = device.type == "cuda"

    def forward() -> torch.Tensor:
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return model(input_ids=input_ids, labels=labels).loss

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = forward()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if cuda:
            torch.cuda.synchronize(device)

    step()  # warm-up: allocates gradients and optimizer state
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds = median_seconds(step, repeats=repeats, warmup=0)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    activations = saved_activation_bytes(forward, model)
    optimizer.zero_grad(set_to_none=True)
    return StepMeasurement(seconds=seconds, activation_bytes=activations, peak_bytes=peak)


@dataclass(frozen=True)
class PowerLaw:
    """A fitted trend ``y = prefactor * x ** exponent``."""

    prefactor: float
    exponent: float
    r_squared: float  # of the straight-line fit in log-log space

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        """Evaluate the trend.

        Args:
            x: Positive values.

        Returns:
            ``prefactor * x ** exponent``.
        """
        return self.prefactor * np.asarray(x, dtype=np.float64) ** self.exponent


def fit_power_law(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PowerLaw:
    """Fit ``y = a x^b`` by least squares on ``log y = log a + b log x``.

    A power law is a straight line on log-log axes; its slope ``b`` says how fast ``y``
    grows: ``b = 1`` means proportionally, ``b < 1`` that fixed overheads still dominate.

    Args:
        x: Positive values, at least two distinct.
        y: Positive values of the same length.

    Returns:
        The ``PowerLaw`` with its ``r_squared``.

    Raises:
        ValueError: The lengths differ, fewer than two distinct x values are given, or a
            value is not positive.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(np.unique(x)) < 2:
        raise ValueError(
            f"x has shape {x.shape} and y {y.shape}: expected two 1-D arrays of the same "
            "length with at least two distinct x values"
        )
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"a power law needs positive values; got x={x} and y={y}")
    log_x, log_y = np.log(x), np.log(y)
    slope, intercept = np.polyfit(log_x, log_y, 1)
    residual = log_y - (intercept + slope * log_x)
    total = log_y - log_y.mean()
    r_squared = 1.0 - float(residual @ residual) / float(total @ total) if total.any() else 1.0
    return PowerLaw(prefactor=float(np.exp(intercept)), exponent=float(slope), r_squared=r_squared)


# Exercise checks (chapter 5a). Each prints "Correct: ..." or "Not yet: ... Hint: ...".

BERT_BASE = TransformerShape(
    vocab_size=30522, hidden_size=768, num_layers=12, intermediate_size=3072, max_positions=512
)
