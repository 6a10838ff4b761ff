"""When the model does not fit: the memory arithmetic of training and of sharding it.

Belongs here: the bytes that training keeps per parameter (weights, gradients, the
optimizer's moments, the float32 master copy of mixed precision); the bytes each rank
holds under DDP, ZeRO-1, ZeRO-2, FSDP (ZeRO-3), with tensor and pipeline parallelism and
with CPU offload; the parameter count of a Llama-style decoder; the pipeline bubble;
measuring what a rank really holds (its parameters, gradients and optimizer state, the
local shards of DTensors) and the activations autograd saves; the checks that give clear
errors for a world size that does not divide a sharded dimension, a mesh on the wrong
device type, and a sharded checkpoint from a different model. Chapter 6 (notebook 06e)
teaches it; ``helpers.scripts.sharding_*`` run it under ``torchrun``. torch is imported
inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.lessons.scaling import saved_activation_bytes  # noqa: F401 (06e calls it from here)

if TYPE_CHECKING:
    import torch

STRATEGIES = ("ddp", "zero1", "zero2", "fsdp")  # "zero3" is accepted as FSDP's other name

OPTIMIZER_MOMENTS = {"sgd": 0, "momentum": 1, "adam": 2}  # float32 numbers per parameter

GIB = 1024**3


@dataclass(frozen=True)
class ModelStateBytes:
    """The bytes of training state one device holds, by kind, plus what lives in host memory.

    ``optimizer`` includes the float32 master copy of the weights under mixed precision
    (the ZeRO paper counts it with the optimizer states, since only the optimizer uses it).
    """

    parameters: int
    gradients: int
    optimizer: int
    host: int = 0  # bytes moved to the CPU's memory by offloading (not on the device)

    @property
    def total(self) -> int:
        """Bytes on the device: parameters, gradients and optimizer state together."""
        return self.parameters + self.gradients + self.optimizer

    def gib(self) -> dict[str, float]:
        """Return every field and the total in GiB (2**30 bytes), rounded to 0.01."""
        fields = {
            "parameters": self.parameters,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "total": self.total,
            "host": self.host,
        }
        return {name: round(value / GIB, 2) for name, value in fields.items()}


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def check_divisible(size: int, parts: int, what: str) -> int:
    """Return ``size // parts``, or explain why ``size`` cannot be split evenly into ``parts``.

    Args:
        size: The length of the dimension to shard (hidden units, heads, layers, ranks).
        parts: How many pieces (the world size, or the size of one mesh dimension).
        what: What the dimension is, for the message (such as ``"fc1's 256 output units"``).

    Returns:
        The size of one piece.

    Raises:
        ValueError: ``parts`` or ``size`` is not positive, or ``parts`` does not divide ``size``.
    """
    _positive("the number of parts", parts)
    _positive(f"the size of {what}", size)
    if size % parts:
        raise ValueError(
            f"A world size of {parts} does not divide {what} ({size} = {size // parts} x "
            f"{parts} + {size % parts}): every rank must get an equal shard. Use a world "
            f"size that divides {size}, or change the model's size."
        )
    return size // parts


def model_state_bytes(
    num_parameters: int, *, optimizer: str = "adam", mixed_precision: bool = False
) -> ModelStateBytes:
    """Count the bytes of weights, gradients and optimizer state for one full copy of a model.

    In float32, every parameter costs 4 bytes of weight, 4 of gradient and 4 per optimizer
    moment (Adam keeps two: 16 bytes in all). With mixed precision (bfloat16 or float16),
    weights and gradients take 2 bytes each, and the optimizer keeps a float32 master copy
    (4) beside its float32 moments: 2 + 2 + 4 + 8 = 16 bytes with Adam, the ZeRO paper's
    ``16 Psi`` (Rajbhandari et al., 2020).

    Args:
        num_parameters: The number of parameters.
        optimizer: ``"adam"`` (two moments, also AdamW), ``"momentum"`` (SGD with momentum,
            one) or ``"sgd"`` (none).
        mixed_precision: 16-bit weights and gradients with a float32 master copy.

    Returns:
        The bytes by kind (nothing offloaded).

    Raises:
        ValueError: ``num_parameters`` is not positive or the optimizer is unknown.
    """
    _positive("num_parameters", num_parameters)
    if optimizer not in OPTIMIZER_MOMENTS:
        raise ValueError(
            f"Unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZER_MOMENTS)}."
        )
    weight_bytes = 2 if mixed_precision else 4
    optimizer_numbers = OPTIMIZER_MOMENTS[optimizer] + (1 if mixed_precision else 0)
    return ModelStateBytes(
        parameters=weight_bytes * num_parameters,
        gradients=weight_bytes * num_parameters,
        optimizer=4 * optimizer_numbers * num_parameters,
    )


def per_rank_bytes(
    num_parameters: int,
    strategy: str,
    world_size: int,
    *,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    optimizer: str = "adam",
    mixed_precision: bool = False,
    offload: bool = False,
) -> ModelStateBytes:
    """Count the training-state bytes one rank holds under a parallelism strategy.

    Tensor parallelism (``tensor_parallel`` ranks) and pipeline parallelism
    (``pipeline_parallel`` stages) split the model itself, so each rank starts from
    ``1 / (tp * pp)`` of every kind of state; the remaining
    ``dp = world_size / (tp * pp)`` ranks are data parallel with ``strategy``:

    - ``ddp``: every data-parallel rank holds everything;
    - ``zero1``: optimizer state divided by ``dp``;
    - ``zero2``: optimizer state and gradients divided by ``dp``;
    - ``fsdp`` (``zero3``): parameters, gradients and optimizer state divided by ``dp``.

    With ``offload``, ``zero2`` becomes ZeRO-Offload (gradients and optimizer state in host
    memory, the weights stay on the device) and ``fsdp`` becomes FSDP's CPU offload
    (everything in host memory; the device holds one layer's gathered weights at a time,
    not counted here). Real shards are padded to equal sizes, so measured bytes can be a
    little above these counts; activations come on top of them.

    Args:
        num_parameters: The model's parameters.
        strategy: ``"ddp"``, ``"zero1"``, ``"zero2"``, ``"fsdp"`` or ``"zero3"``.
        world_size: All ranks (devices) of the job.
        tensor_parallel: Ranks that split each layer's matrices.
        pipeline_parallel: Pipeline stages that split the layers.
        optimizer: See ``model_state_bytes``.
        mixed_precision: See ``model_state_bytes``.
        offload: Move optimizer state (``zero2``) or everything (``fsdp``) to host memory.

    Returns:
        The bytes on one device, and in ``host`` those that one rank keeps in CPU memory.

    Raises:
        ValueError: An unknown strategy, sizes that are not positive, ``tp * pp`` not dividing
            the world size, or offload with a strategy that does not offload.
    """
    strategy = "fsdp" if strategy == "zero3" else strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {[*STRATEGIES, 'zero3']}.")
    _positive("world_size", world_size)
    _positive("tensor_parallel", tensor_parallel)
    _positive("pipeline_parallel", pipeline_parallel)
    if offload and strategy not in ("zero2", "fsdp"):
        raise ValueError(
            f"offload=True needs strategy 'zero2' (ZeRO-Offload) or 'fsdp' (CPU offload); "
            f"got {strategy!r}."
        )
    model_parallel = tensor_parallel * pipeline_parallel
    if world_size % model_parallel:
        raise ValueError(
            f"tensor_parallel x pipeline_parallel = {model_parallel} does not divide the "
            f"world size {world_size}: the data-parallel size must be a whole number."
        )
    dp = world_size // model_parallel
    full = model_state_bytes(num_parameters, optimizer=optimizer, mixed_precision=mixed_precision)
    params = -(-full.parameters // model_parallel)  # ceil: a shard is never smaller
    grads = -(-full.gradients // model_parallel)
    states = -(-full.optimizer // model_parallel)

    def split(value: int) -> int:
        return -(-value // dp)

    if strategy == "zero1":
        states = split(states)
    elif strategy == "zero2":
        grads, states = split(grads), split(states)
    elif strategy == "fsdp":
        params, grads, states = split(params), split(grads), split(states)
    if not offload:
        return ModelStateBytes(params, grads, states)
    if strategy == "zero2":
        return ModelStateBytes(params, 0, 0, host=grads + states)
    return ModelStateBytes(0, 0, 0, host=params + grads + states)


def decoder_parameter_count(
    *,
    hidden_size: int,
    num_layers: int,
    intermediate_size: int,
    vocab_size: int,
    num_heads: int,
    num_kv_heads: int | None = None,
    tie_embeddings: bool = False,
) -> int:
    """Count the parameters of a Llama-style decoder (no biases, RMSNorm, gated MLP).

    Each layer has the query and output projections (``h x h`` each), the key and value
    projections (``h x h * kv_heads / heads`` each, smaller with grouped-query attention),
    three MLP matrices (``h x i`` each: gate, up, down) and two RMSNorm weights; then a
    final norm, the token embeddings and the output head (shared with the embeddings when
    tied). Llama 2 7B (h 4096, 32 layers, i 11008, vocabulary 32000) has 6,738,415,616.

    Args:
        hidden_size: The model width ``h``.
        num_layers: Decoder layers.
        intermediate_size: The MLP width ``i``.
        vocab_size: Vocabulary size.
        num_heads: Query heads; they must divide ``hidden_size``.
        num_kv_heads: Key-value heads (grouped-query attention); ``num_heads`` when None.
        tie_embeddings: Whether the output head reuses the embedding matrix.

    Returns:
        The number of parameters, equal to Transformers' ``LlamaForCausalLM`` with that
        configuration.

    Raises:
        ValueError: A size is not positive, or the heads do not divide the width.
    """
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    for name, value in (
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("intermediate_size", intermediate_size),
        ("vocab_size", vocab_size),
        ("num_heads", num_heads),
        ("num_kv_heads", kv_heads),
    ):
        _positive(name, value)
    head_dim = check_divisible(hidden_size, num_heads, f"the hidden size by {num_heads} heads")
    check_divisible(num_heads, kv_heads, "the query heads into key-value groups")
    h, i = hidden_size, intermediate_size
    attention = 2 * h * h + 2 * h * (kv_heads * head_dim)
    layer = attention + 3 * h * i + 2 * h
    embeddings = vocab_size * h
    return num_layers * layer + h + embeddings + (0 if tie_embeddings else embeddings)


LLAMA2_7B = {
    "hidden_size": 4096,
    "num_layers": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "num_heads": 32,
}


def decision_table(
    num_parameters: int,
    *,
    gpus: int = 8,
    tensor_parallel: int = 2,
    mixed_precision: bool = True,
) -> list[dict[str, Any]]:
    """Compute the "my model does not fit" table: memory per GPU of each strategy, in GiB.

    The rows go from the least to the most sharding: DDP, ZeRO-1, ZeRO-2, FSDP (ZeRO-3),
    FSDP with tensor parallelism, and two kinds of offload (ZeRO-Offload on one GPU; FSDP
    with CPU offload on ``gpus`` GPUs). Adam, with mixed precision by default. Activations
    come on top of every figure.

    Args:
        num_parameters: The model's parameters (``decoder_parameter_count(**LLAMA2_7B)``
            for a 7B model).
        gpus: GPUs of the job (one machine of 8 is common).
        tensor_parallel: The tensor-parallel size of the "+ TP" row.
        mixed_precision: 16-bit weights and gradients with a float32 master copy.

    Returns:
        One dict per row: ``strategy``, ``gpus``, and the GiB of ``parameters``,
        ``gradients``, ``optimizer``, ``total`` (per GPU) and ``host`` (CPU memory per rank).
    """
    rows = [
        ("DDP", "ddp", gpus, {}),
        ("ZeRO-1", "zero1", gpus, {}),
        ("ZeRO-2", "zero2", gpus, {}),
        ("FSDP / ZeRO-3", "fsdp", gpus, {}),
        (f"FSDP + TP {tensor_parallel}", "fsdp", gpus, {"tensor_parallel": tensor_parallel}),
        ("ZeRO-Offload, 1 GPU", "zero2", 1, {"offload": True}),
        ("FSDP + CPU offload", "fsdp", gpus, {"offload": True}),
    ]
    table = []
    for name, strategy, world, options in rows:
        state = per_rank_bytes(
            num_parameters, strategy, world, mixed_precision=mixed_precision, **options
        )
        table.append({"strategy": name, "gpus": world, **state.gib()})
    return table


def pipeline_bubble_fraction(stages: int, microbatches: int) -> float:
    """Return the share of a GPipe or 1F1B schedule during which a stage waits idle.

    With ``p`` stages and ``m`` micro-batches of equal cost, a step lasts ``m + p - 1``
    slots of forward (and as many of backward) per stage, of which ``p - 1`` are the fill
    and drain of the pipeline: the bubble is ``(p - 1) / (m + p - 1)``
    (Huang et al., 2019, GPipe).

    Args:
        stages: Pipeline stages ``p``.
        microbatches: Micro-batches per step ``m``.

    Returns:
        The idle fraction, from 0 (one stage) towards 1.

    Raises:
        ValueError: ``stages`` or ``microbatches`` is not positive.
    """
    _positive("stages", stages)
    _positive("microbatches", microbatches)
    return (stages - 1) / (microbatches + stages - 1)


def gpipe_schedule(stages: int, microbatches: int) -> list[tuple[int, int, str, int]]:
    """List the slots of a GPipe schedule: all forwards, then all backwards.

    Stage ``s`` runs the forward of micro-batch ``j`` in slot ``s + j`` and, after the last
    forward has left the last stage, the backwards in reverse order of stages.

    Args:
        stages: Pipeline stages ``p``.
        microbatches: Micro-batches ``m``.

    Returns:
        ``(stage, slot, "F" or "B", micro-batch)`` for every piece of work; the step lasts
        ``2 (m + p - 1)`` slots.

    Raises:
        ValueError: ``stages`` or ``microbatches`` is not positive.
    """
    _positive("stages", stages)
    _positive("microbatches", microbatches)
    forward_end = microbatches + stages - 1
    work = []
    for stage in range(stages):
        for j in range(microbatches):
            work.append((stage, stage + j, "F", j))
            work.append((stage, forward_end + (stages - 1 - stage) + j, "B", j))
    return sorted(work, key=lambda item: (item[0], item[1]))


def backend_for_mesh(
    device_type: str,
    *,
    cuda_available: bool | None = None,
    supported: tuple[str, ...] = ("cpu", "cuda"),
) -> str:
    """Return the process-group backend for a device mesh on ``device_type``, or explain why not.

    Args:
        device_type: ``"cpu"`` (backend gloo) or ``"cuda"`` (backend NCCL).
        cuda_available: Whether this process sees a CUDA GPU; asked of torch when None.
        supported: The device types the caller's code handles (a script that keeps its
            tensors on the CPU passes ``("cpu",)``).

    Returns:
        ``"gloo"`` or ``"nccl"``.

    Raises:
        ValueError: Another device type, ``"cuda"`` without a visible GPU, or a device type
            that the caller does not support.
    """
    if device_type not in ("cpu", "cuda"):
        raise ValueError(
            f"A device mesh here is on 'cpu' (gloo) or 'cuda' (NCCL); got {device_type!r}."
        )
    if device_type == "cuda":
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        if not cuda_available:
            raise ValueError(
                "A device mesh on 'cuda' needs a CUDA GPU per process, and this process sees "
                "none: use init_device_mesh('cpu', ...) with the gloo backend."
            )
    if device_type not in supported:
        raise ValueError(
            f"This code keeps its tensors on {' or '.join(supported)}, so its mesh must be "
            f"there too; got {device_type!r}. On GPUs, put each process's model on "
            "cuda:LOCAL_RANK and use init_device_mesh('cuda', ...) with NCCL."
        )
    return "gloo" if device_type == "cpu" else "nccl"


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """Return the part of a tensor stored in this process: a DTensor's local shard, or itself."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if callable(to_local) else tensor


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Return the bytes this process stores for ``tensor`` (for a DTensor, its local shard).

    Args:
        tensor: A tensor or a DTensor.

    Returns:
        ``numel * element_size`` of the local data.
    """
    local = _local(tensor)
    return local.numel() * local.element_size()


def rank_state_bytes(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> ModelStateBytes:
    """Measure the training state this process holds: parameters, gradients, optimizer state.

    Sharded parameters and gradients (DTensors, as FSDP2 and tensor parallelism make them)
    count with their local shards only. A ``ZeroRedundancyOptimizer`` keeps this rank's
    state in its inner optimizer (``optimizer.optim``), which is what is counted. Tensors
    shared by several parameters (tied weights) count once.

    Args:
        model: The model (or its DDP wrapper) on this rank.
        optimizer: Its optimizer, after at least one step (the state is created lazily).

    Returns:
        The bytes by kind.
    """
    import torch

    def unique_bytes(tensors: list[torch.Tensor]) -> int:
        seen: dict[int, int] = {}
        for tensor in tensors:
            local = _local(tensor)
            seen[id(local) if local.numel() == 0 else local.data_ptr()] = tensor_bytes(tensor)
        return sum(seen.values())

    parameters = list(model.parameters())
    gradients = [p.grad for p in parameters if p.grad is not None]
    states: list[torch.Tensor] = []
    if optimizer is not None:
        inner = getattr(optimizer, "optim", optimizer)
        for state in inner.state.values():
            states += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return ModelStateBytes(
        parameters=unique_bytes(parameters),
        gradients=unique_bytes(gradients),
        optimizer=unique_bytes(states),
    )


def checkpoint_shapes(folder: str | Path) -> dict[str, tuple[int, ...]]:
    """Read the names and full shapes of the tensors in a ``torch.distributed.checkpoint`` folder.

    Args:
        folder: The folder that ``dcp.save`` wrote (it holds a ``.metadata`` file).

    Returns:
        Each tensor's name and its unsharded shape.

    Raises:
        ValueError: The folder does not exist or holds no distributed checkpoint.
    """
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    path = Path(folder)
    if not (path / ".metadata").is_file():
        raise ValueError(
            f"{path} is not a torch.distributed.checkpoint folder (no .metadata file in it)."
        )
    metadata = FileSystemReader(str(path)).read_metadata()
    return {
        name: tuple(item.size)
        for name, item in metadata.state_dict_metadata.items()
        if isinstance(item, TensorStorageMetadata)
    }


def check_checkpoint_matches(folder: str | Path, state_dict: Mapping[str, Any]) -> None:
    """Check that a sharded checkpoint holds exactly the tensors of ``state_dict``, shape for shape.

    Args:
        folder: The checkpoint folder.
        state_dict: The state dict to load into (names to tensors or DTensors).

    Raises:
        ValueError: The folder is not a checkpoint, or it comes from a different model:
            the message names the missing, unexpected and mis-shaped tensors.
    """
    saved = checkpoint_shapes(folder)
    wanted = {name: tuple(tensor.shape) for name, tensor in state_dict.items()}
    missing = sorted(set(wanted) - set(saved))
    unexpected = sorted(set(saved) - set(wanted))
    reshaped = sorted(
        f"{name}: checkpoint {saved[name]}, model {wanted[name]}"
        for name in set(saved) & set(wanted)
        if saved[name] != wanted[name]
    )
    if missing or unexpected or reshaped:
        parts = [
            f"missing from the checkpoint: {missing[:5]}" if missing else "",
            f"not in the model: {unexpected[:5]}" if unexpected else "",
            f"different shapes: {reshaped[:5]}" if reshaped else "",
        ]
        raise ValueError(
            f"The checkpoint in {folder} is from a different model; "
            + "; ".join(p for p in parts if p)
            + "."
        )


def load_checkpoint_unsharded(folder: str | Path, model: torch.nn.Module) -> torch.nn.Module:
    """Load a sharded checkpoint into an ordinary model in one process (no process group).

    ``dcp.load`` reads every rank's shards and fills the full tensors of the state dict;
    ``no_dist=True`` tells it that no process group takes part.

    Args:
        folder: The folder that ``dcp.save`` wrote from the sharded model.
        model: An unsharded model of the same architecture.

    Returns:
        The model, with the checkpoint's parameters.

    Raises:
        ValueError: The folder is not a checkpoint, or is from a different model.
    """
    import warnings

    import torch.distributed.checkpoint as dcp

    state = model.state_dict()
    check_checkpoint_matches(folder, state)
    with warnings.catch_warnings():  # it warns that it assumes one process: that is the intent
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(folder), no_dist=True)
    model.load_state_dict(state)
    return model
