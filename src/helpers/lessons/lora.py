"""Parameter-efficient fine-tuning with LoRA, and the data of supervised fine-tuning a chat model.

Belongs here: the LoRA layer written out around a frozen ``torch.nn.Linear``
(``W x + (alpha / r) B A x`` with ``B = 0`` at the start), its parameter count as a formula,
merging it back into one linear layer, adding it to a model by module name; the same with
PEFT (checked names and ranks, saving an adapter with a fingerprint of its base model and
loading it back only onto that model); what a training run holds in memory (optimizer
state, gradients) and how long its steps take; the chat-format examples of supervised
fine-tuning (prompt tokens labelled -100), their padding and their ``Trainer``, and the
task accuracy of a chat model on the review sentences, with its 95% interval (from
``helpers.lessons.stats``); the SFT recipe of notebook 05e and the 7B memory arithmetic of
chapter 5. torch, Transformers and PEFT are imported inside the functions; ``LoRALinear``
is built on first use for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.assets.data import SENTIMENT_LABELS
from helpers.lessons.scaling import ADAM_FP32_BYTES_PER_PARAMETER
from helpers.lessons.stats import accuracy_interval

if TYPE_CHECKING:
    import torch

# The LoRA settings of chapter 5: PEFT's defaults for r and alpha in most guides.
RANK = 8
ALPHA = 16
# The file, next to PEFT's adapter files, that records which base weights an adapter fits.
FINGERPRINT_FILE = "base_fingerprint.json"
# The chat task of notebook 05e: the system turn asks for one word, the user turn is a review.
SENTIMENT_SYSTEM_PROMPT = "Is the review positive or negative? Answer with one word."
# The SFT recipe of notebook 05e and benchmarks/lora.py: one pass over 64 conversations.
SFT_STEPS = 8
SFT_BATCH_SIZE = 8
SFT_LEARNING_RATE = 1e-3
SFT_HELD_OUT = 100  # test sentences scored before and after
IGNORE_INDEX = -100  # the label that PyTorch's cross-entropy (and Transformers) leaves out
# The sizes of Llama-2-7B (Touvron et al. 2023), the usual "7B model" of LoRA guides.
LLAMA2_7B = {"hidden_size": 4096, "num_layers": 32, "intermediate_size": 11008, "vocab_size": 32000}
# float32 bytes per trained parameter besides its weight: the gradient and AdamW's two moments.
# With the float32 weight, these make ADAM_FP32_BYTES_PER_PARAMETER (16).
GRADIENT_BYTES = 4
ADAM_MOMENT_BYTES = ADAM_FP32_BYTES_PER_PARAMETER - 4 - GRADIENT_BYTES


# --- The LoRA layer, by hand ----------------------------------------------------------------


def check_rank(rank: int, in_features: int, out_features: int) -> None:
    """Refuse a LoRA rank that is not between 1 and the layer's smaller dimension.

    A rank above ``min(in_features, out_features)`` adds parameters without adding
    anything: ``B A`` has at most that rank already.

    Args:
        rank: The proposed rank ``r``.
        in_features: The layer's input size.
        out_features: The layer's output size.

    Raises:
        ValueError: Naming the rank and the layer's dimensions.
    """
    limit = min(in_features, out_features)
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or not 1 <= rank <= limit:
        raise ValueError(
            f"LoRA rank r={rank!r} must be an integer from 1 to min(in_features, out_features) = "
            f"min({in_features}, {out_features}) = {limit}; a larger r adds parameters but no "
            "rank, since B A cannot have a rank above that."
        )


def lora_parameter_count(in_features: int, out_features: int, rank: int) -> int:
    """Count the parameters LoRA adds to one linear layer: ``r (in + out)``.

    ``A`` is ``r x in`` and ``B`` is ``out x r``, against ``in x out`` for the full update.

    Args:
        in_features: The layer's input size.
        out_features: The layer's output size.
        rank: The LoRA rank ``r``.

    Returns:
        ``rank * (in_features + out_features)``.

    Raises:
        ValueError: The rank is out of range (see ``check_rank``).
    """
    check_rank(rank, in_features, out_features)
    return rank * (in_features + out_features)


def _build_lora_linear() -> type:
    import torch

    class LoRALinear(torch.nn.Module):
        """A frozen ``nn.Linear`` plus a trainable low-rank update: ``W x + b + (alpha/r) B A x``.

        ``A`` (``r x in``) starts random, as PEFT initialises it (Kaiming-uniform), and ``B``
        (``out x r``) starts at zero, so the layer first computes exactly what the frozen one
        did. The computation follows PEFT's order, so equal ``A`` and ``B`` give equal outputs.

        Args:
            base: The pretrained layer; its weight and bias are frozen in place.
            rank: ``r``, from 1 to ``min(in_features, out_features)``.
            alpha: The scale numerator: the update is multiplied by ``alpha / r``.
        """

        def __init__(self, base: torch.nn.Linear, rank: int = RANK, alpha: float = ALPHA) -> None:
            super().__init__()
            if not isinstance(base, torch.nn.Linear):
                raise ValueError(f"LoRALinear wraps a torch.nn.Linear, not {type(base).__name__}")
            check_rank(rank, base.in_features, base.out_features)
            self.base = base.requires_grad_(False)
            self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
            weight = base.weight
            self.A = torch.nn.Parameter(weight.new_empty(rank, base.in_features))
            self.B = torch.nn.Parameter(weight.new_zeros(base.out_features, rank))
            torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Return ``base(x) + (alpha / r) B (A x)``."""
            update = torch.nn.functional.linear(torch.nn.functional.linear(x, self.A), self.B)
            return self.base(x) + update * self.scaling

        def delta_weight(self) -> torch.Tensor:
            """Return the update ``(alpha / r) B A``, shaped like the base weight."""
            return (self.B @ self.A) * self.scaling

        def merged(self) -> torch.nn.Linear:
            """Return a plain ``nn.Linear`` whose weight is ``W + (alpha / r) B A``."""
            layer = torch.nn.Linear(
                self.base.in_features,
                self.base.out_features,
                bias=self.base.bias is not None,
                device=self.base.weight.device,
                dtype=self.base.weight.dtype,
            )
            with torch.no_grad():
                layer.weight.copy_(self.base.weight + self.delta_weight())
                if self.base.bias is not None:
                    layer.bias.copy_(self.base.bias)
            return layer

        def extra_repr(self) -> str:
            return f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}"

    return LoRALinear


_classes: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """Build ``LoRALinear`` on first access, so importing this module does not import torch."""
    if name == "LoRALinear":
        if name not in _classes:
            _classes[name] = _build_lora_linear()
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """Return the distinct last components of the names of a model's ``nn.Linear`` layers.

    Args:
        model: Any PyTorch model.

    Returns:
        The names, sorted (``["dense", "key", "query", "value", ...]`` for BERT).
    """
    import torch

    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)
        }
    )


def _matching_linears(
    model: torch.nn.Module, target_modules: Sequence[str]
) -> list[tuple[str, torch.nn.Linear]]:
    """The ``nn.Linear`` layers whose last name component is a target; every target must match."""
    import torch

    if isinstance(target_modules, str) or not target_modules:
        raise ValueError(
            f"target_modules={target_modules!r} must be a non-empty list of module names, "
            'such as ["query", "value"]'
        )
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in target_modules
    ]
    matched = {name.rsplit(".", 1)[-1] for name, _ in found}
    missing = [t for t in target_modules if t not in matched]
    if missing:
        raise ValueError(
            f"target module name(s) {missing} match no torch.nn.Linear in "
            f"{type(model).__name__}; its linear layers are named {linear_layer_names(model)}"
        )
    return found


def expected_lora_parameters(
    model: torch.nn.Module, target_modules: Sequence[str], rank: int = RANK
) -> int:
    """Add up ``r (in + out)`` over the linear layers that LoRA would adapt.

    Args:
        model: The model before LoRA is added.
        target_modules: Last components of the layer names, such as ``["query", "value"]``.
        rank: The LoRA rank.

    Returns:
        The number of LoRA parameters (heads that are trained in full are not included).

    Raises:
        ValueError: A target matches nothing, or the rank is out of range for a layer.
    """
    return sum(
        lora_parameter_count(m.in_features, m.out_features, rank)
        for _, m in _matching_linears(model, target_modules)
    )


def add_lora(
    model: torch.nn.Module,
    target_modules: Sequence[str],
    rank: int = RANK,
    alpha: float = ALPHA,
    *,
    seed: int = 0,
) -> torch.nn.Module:
    """Freeze a model and replace its target linear layers by ``LoRALinear``, in place.

    Args:
        model: The model.
        target_modules: Last components of the layer names, such as ``["query", "value"]``.
        rank: The LoRA rank.
        alpha: The LoRA scale numerator.
        seed: Seeds the random ``A`` matrices.

    Returns:
        The same model, with only the ``A`` and ``B`` matrices trainable.

    Raises:
        ValueError: A target matches nothing, or the rank is out of range for a layer.
    """
    import torch

    targets = _matching_linears(model, target_modules)
    for _, module in targets:
        check_rank(rank, module.in_features, module.out_features)
    model.requires_grad_(False)
    lora_linear = __getattr__("LoRALinear")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, module in targets:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, lora_linear(module, rank, alpha))
    return model


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """Count a model's trainable and total parameters.

    Args:
        model: Any PyTorch model.

    Returns:
        ``(trainable, total)``.
    """
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


# --- The same with PEFT ---------------------------------------------------------------------


def peft_lora_model(
    model: torch.nn.Module,
    *,
    rank: int = RANK,
    alpha: float = ALPHA,
    target_modules: Sequence[str] | None = None,
    task_type: str | None = None,
    dropout: float = 0.0,
    layers_to_transform: Sequence[int] | None = None,
) -> Any:
    """Wrap a Transformers model with PEFT's LoRA, after checking the names and the rank.

    PEFT's own errors come from deep inside; these name the cause first.

    Args:
        model: A Transformers model (it is modified: PEFT freezes it and inserts layers).
        rank: The LoRA rank ``r``.
        alpha: ``lora_alpha``.
        target_modules: Layer names; None for PEFT's default for the architecture
            (``["query", "value"]`` for BERT, ``["q_proj", "v_proj"]`` for Llama).
        task_type: ``"SEQ_CLS"`` (the new classification head is trained in full),
            ``"CAUSAL_LM"`` or None.
        dropout: ``lora_dropout`` on the adapter's input.
        layers_to_transform: Indices of the Transformer layers to adapt; None for all.

    Returns:
        The ``peft.PeftModel``.

    Raises:
        ValueError: A target matches no linear layer, the architecture has no default, or
            the rank is out of range for a target layer.
    """
    import peft
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if target_modules is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in DEFAULTS:
            raise ValueError(
                f"PEFT has no default LoRA targets for model_type={model_type!r}; pass "
                f"target_modules from its linear layers {linear_layer_names(model)}"
            )
        target_modules = list(DEFAULTS[model_type])
    for name, module in _matching_linears(model, list(target_modules)):
        try:
            check_rank(rank, module.in_features, module.out_features)
        except ValueError as error:
            raise ValueError(f"{error} (layer {name})") from None
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type=task_type,
        layers_to_transform=list(layers_to_transform) if layers_to_transform else None,
    )
    with warnings.catch_warnings():
        # PEFT 0.21 asks Transformers 5.24 a question under its deprecated name.
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*deprecated")
        return peft.get_peft_model(model, config)


def base_fingerprint(model: torch.nn.Module, target_modules: Iterable[str]) -> str:
    """Return a SHA-256 of the frozen base weights that an adapter was trained on.

    Args:
        model: The model, with or without PEFT's LoRA layers.
        target_modules: The adapted layers' names.

    Returns:
        The hex digest over the names, shapes and bytes of the targets' base weights.
    """
    import torch

    targets = set(target_modules)
    digest = hashlib.sha256()
    for name, module in sorted(model.named_modules(), key=lambda item: item[0]):
        name = name.replace(".base_layer", "").replace("base_model.model.", "")
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            weight = module.weight.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}{tuple(weight.shape)}".encode())
            digest.update(weight.numpy().tobytes())
    return digest.hexdigest()


def save_adapter(model: Any, folder: str | Path) -> int:
    """Save a PEFT model's adapter alone, with the fingerprint of its base weights.

    Args:
        model: A ``peft.PeftModel``.
        folder: Where ``adapter_model.safetensors``, ``adapter_config.json`` and
            ``base_fingerprint.json`` go.

    Returns:
        The adapter's size on disk in bytes (all files in the folder).
    """
    folder = Path(folder)
    model.save_pretrained(str(folder))
    targets = model.peft_config["default"].target_modules
    fingerprint = base_fingerprint(model, targets)
    (folder / FINGERPRINT_FILE).write_text(json.dumps({"sha256": fingerprint}) + "\n")
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def load_adapter(base_model: torch.nn.Module, folder: str | Path) -> Any:
    """Load an adapter saved by ``save_adapter`` onto a fresh base model, after checking it fits.

    Args:
        base_model: The pretrained model the adapter was trained on, without LoRA.
        folder: The adapter's folder.

    Returns:
        The ``peft.PeftModel`` in eval mode.

    Raises:
        ValueError: The folder holds no adapter, the base model lacks a layer the adapter
            adapts, a layer's shape differs, or its weights are not the ones the adapter was
            trained on.
    """
    import peft
    from safetensors import safe_open

    folder = Path(folder)
    config_file, weights_file = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise ValueError(f"{folder} holds no PEFT adapter (adapter_config.json and weights)")
    config = json.loads(config_file.read_text())
    modules = dict(base_model.named_modules())
    with safe_open(str(weights_file), framework="pt") as tensors:
        shapes = {key: tuple(tensors.get_slice(key).get_shape()) for key in tensors.keys()}  # noqa: SIM118
    for key, shape in shapes.items():
        match = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", key)
        if not match:
            continue
        name, which = match.groups()
        layer = modules.get(name)
        if layer is None:
            raise ValueError(
                f"the adapter in {folder} adapts layer {name!r}, which {type(base_model).__name__} "
                f"does not have: load it onto the model it was trained on "
                f"({config.get('base_model_name_or_path')!r})"
            )
        wanted = getattr(layer, "in_features" if which == "A" else "out_features", None)
        have = shape[1] if which == "A" else shape[0]
        if wanted != have:
            side = "inputs" if which == "A" else "outputs"
            raise ValueError(
                f"the adapter in {folder} was trained on a model whose layer {name!r} has "
                f"{have} {side}; this {type(base_model).__name__} has {wanted}: load it onto "
                f"the model it was trained on ({config.get('base_model_name_or_path')!r})"
            )
    recorded = folder / FINGERPRINT_FILE
    if recorded.is_file():
        expected = json.loads(recorded.read_text())["sha256"]
        if base_fingerprint(base_model, config["target_modules"]) != expected:
            raise ValueError(
                f"the adapter in {folder} was trained on other base weights than this "
                f"{type(base_model).__name__}'s (their SHA-256 fingerprint differs): load it "
                f"onto the model it was trained on ({config.get('base_model_name_or_path')!r})"
            )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*deprecated")
        return peft.PeftModel.from_pretrained(base_model, str(folder)).eval()


# --- What a training run holds and how long its steps take ---------------------------------


def optimizer_state_bytes(optimizer: Any) -> int:
    """Add up the bytes of every tensor in an optimizer's state (AdamW: two moments, a step).

    Args:
        optimizer: A ``torch.optim.Optimizer``, or Accelerate's wrapper of one.

    Returns:
        The number of bytes.
    """
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)
    return sum(
        value.numel() * value.element_size()
        for state in inner.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


def training_recorder() -> Any:
    """Return a ``TrainerCallback`` that records a run's cost: step times, memory, optimizer.

    After ``Trainer.train()`` its ``result`` holds ``step_seconds`` (each optimizer step's
    wall time, evaluation excluded), ``trainable_parameters``, ``total_parameters``,
    ``weight_bytes``, ``gradient_bytes`` (of the trainable parameters), ``optimizer_state_bytes``
    and, on a GPU, ``cuda_peak_bytes`` (else None); ``model`` is the trained model.

    Returns:
        The callback, to pass in ``Trainer(callbacks=[...])``.
    """
    import torch
    import transformers

    class TrainingRecorder(transformers.TrainerCallback):
        def __init__(self) -> None:
            self.result: dict[str, Any] = {"step_seconds": []}
            self.model: Any = None
            self._start = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.result["step_seconds"].append(time.perf_counter() - self._start)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            model = self.model = kwargs["model"]
            params = list(model.parameters())
            trainable = [p for p in params if p.requires_grad]
            self.result |= {
                "trainable_parameters": sum(p.numel() for p in trainable),
                "total_parameters": sum(p.numel() for p in params),
                "weight_bytes": sum(p.numel() * p.element_size() for p in params),
                "gradient_bytes": sum(p.numel() * p.element_size() for p in trainable),
                "optimizer_state_bytes": optimizer_state_bytes(kwargs["optimizer"]),
                "cuda_peak_bytes": (
                    int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
                ),
            }

    return TrainingRecorder()


def llama_parameter_count(
    hidden_size: int, num_layers: int, intermediate_size: int, vocab_size: int
) -> int:
    """Count the parameters of a Llama-style decoder with full multi-head attention.

    Per layer: four ``h x h`` attention projections, the gated feed-forward's three
    ``h x i`` matrices and two RMSNorm vectors; plus the input embeddings, the output
    projection (not tied) and the final norm. No biases.

    Args:
        hidden_size: ``h``.
        num_layers: ``L``.
        intermediate_size: ``i``.
        vocab_size: ``V``.

    Returns:
        ``2 V h + L (4 h^2 + 3 h i + 2 h) + h`` (6,738,415,616 for Llama-2-7B).
    """
    h, i = hidden_size, intermediate_size
    return 2 * vocab_size * h + num_layers * (4 * h * h + 3 * h * i + 2 * h) + h


def training_memory_bytes(
    total_parameters: int, trainable_parameters: int, *, frozen_bytes_per_parameter: float = 4
) -> dict[str, float]:
    """What training holds in memory besides activations: weights, gradients, AdamW's moments.

    Full fine-tuning is ``trainable_parameters == total_parameters``: 16 bytes each in
    float32 (``helpers.lessons.scaling.ADAM_FP32_BYTES_PER_PARAMETER``). With LoRA the base
    weights are frozen (stored at ``frozen_bytes_per_parameter``: 4 in float32, 2 in
    bfloat16, about 0.5 in 4 bits) and only the adapter's parameters carry a float32 weight,
    gradient and two moments.

    Args:
        total_parameters: The base model's parameters.
        trainable_parameters: The parameters trained (all of them, or the adapter's).
        frozen_bytes_per_parameter: Bytes per frozen base weight.

    Returns:
        ``weights``, ``gradients``, ``optimizer_state`` and ``total``, in bytes.

    Raises:
        ValueError: A count is negative, or more are trainable than there are.
    """
    if not 0 <= trainable_parameters <= total_parameters:
        raise ValueError(
            f"trainable_parameters={trainable_parameters} must be from 0 to "
            f"total_parameters={total_parameters}"
        )
    full = trainable_parameters == total_parameters
    weights = (
        4 * total_parameters
        if full
        else frozen_bytes_per_parameter * total_parameters + 4 * trainable_parameters
    )
    parts = {
        "weights": weights,
        "gradients": GRADIENT_BYTES * trainable_parameters,
        "optimizer_state": ADAM_MOMENT_BYTES * trainable_parameters,
    }
    return parts | {"total": sum(parts.values())}


# --- Supervised fine-tuning of a chat model ---------------------------------------------------


def sentiment_messages(
    sentence: str, system: str = SENTIMENT_SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """Return the chat turns that ask for a review's sentiment: a system turn, a user turn.

    Args:
        sentence: The review sentence.
        system: The instruction, as the system turn.

    Returns:
        ``[{"role": "system", ...}, {"role": "user", "content": sentence}]``.
    """
    return [{"role": "system", "content": system}, {"role": "user", "content": sentence}]


def chat_example(
    tokenizer: Any, messages: list[dict[str, str]], answer: str, *, mask_prompt: bool = True
) -> dict[str, list[int]]:
    """Tokenise a conversation and its answer for SFT, labelling the prompt tokens -100.

    The prompt is ``messages`` rendered with ``add_generation_prompt=True`` (ending with
    the assistant's header); the full text adds the assistant turn with ``answer`` and the
    template's end-of-turn tokens. Labels copy the input ids, except that the prompt's are
    -100, so the loss covers the answer and its end-of-turn token only.

    Args:
        tokenizer: A tokenizer with a chat template.
        messages: The conversation so far (system and user turns).
        answer: The assistant's reply to learn.
        mask_prompt: False labels every token (the pitfall the notebook shows).

    Returns:
        ``{"input_ids", "attention_mask", "labels"}``, lists of equal length.

    Raises:
        ValueError: ``answer`` is empty, or the template does not render the prompt as a
            prefix of the full conversation (then the answer tokens cannot be found).
    """
    if not answer.strip():
        raise ValueError("the answer to learn is empty")
    prompt = _template_ids(tokenizer, messages, add_generation_prompt=True)
    full = _template_ids(tokenizer, [*messages, {"role": "assistant", "content": answer}])
    if full[: len(prompt)] != prompt:
        raise ValueError(
            "the chat template does not render the prompt as a prefix of the conversation with "
            "its answer, so the answer tokens cannot be told apart; check the template"
        )
    labels = [IGNORE_INDEX] * len(prompt) + full[len(prompt) :] if mask_prompt else list(full)
    return {"input_ids": full, "attention_mask": [1] * len(full), "labels": labels}


def _template_ids(tokenizer: Any, messages: list[dict[str, str]], **options: Any) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, **options)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_batch(
    examples: Sequence[dict[str, list[int]]], pad_token_id: int, padding_side: str = "right"
) -> dict[str, torch.Tensor]:
    """Pad SFT examples into tensors: ids with the pad token, mask 0, labels -100.

    Labels are padded with -100 rather than derived from the pad token, so an end-of-turn
    token that doubles as the pad token (as in SmolLM2) keeps its label.

    Args:
        examples: From ``chat_example``.
        pad_token_id: The tokenizer's pad token id.
        padding_side: ``"right"`` for training, ``"left"`` for batched generation.

    Returns:
        ``{"input_ids", "attention_mask", "labels"}`` as ``(batch, longest)`` int64 tensors.

    Raises:
        ValueError: No examples, or an unknown padding side.
    """
    import torch

    if not examples or padding_side not in ("left", "right"):
        raise ValueError(
            f"pad_batch needs examples and padding_side 'left' or 'right' "
            f"(got {len(examples)} examples, {padding_side!r})"
        )
    longest = max(len(e["input_ids"]) for e in examples)
    fills = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    batch: dict[str, list[list[int]]] = {key: [] for key in fills}
    for example in examples:
        gap = longest - len(example["input_ids"])
        for key, fill in fills.items():
            row = list(example[key])
            batch[key].append(row + [fill] * gap if padding_side == "right" else [fill] * gap + row)
    return {key: torch.tensor(rows, dtype=torch.long) for key, rows in batch.items()}


def sentiment_examples(
    tokenizer: Any, texts: Sequence[str], labels: Sequence[int], *, mask_prompt: bool = True
) -> list[dict[str, list[int]]]:
    """Build one SFT example per review: the chat prompt, and the label's name as the answer.

    Args:
        tokenizer: A tokenizer with a chat template.
        texts: Review sentences.
        labels: Their labels, 0 (negative) or 1 (positive).
        mask_prompt: False labels the prompt tokens too (the pitfall).

    Returns:
        The examples of ``chat_example``.
    """
    return [
        chat_example(
            tokenizer, sentiment_messages(text), SENTIMENT_LABELS[int(y)], mask_prompt=mask_prompt
        )
        for text, y in zip(texts, labels, strict=True)
    ]


def sft_trainer(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, list[int]]],
    *,
    output_dir: str | Path,
    max_steps: int = SFT_STEPS,
    batch_size: int = SFT_BATCH_SIZE,
    learning_rate: float = SFT_LEARNING_RATE,
    seed: int = 0,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Build the ``Trainer`` of notebook 05e: SFT examples, padded by ``pad_batch``, AdamW.

    A constant learning rate without warm-up, no weight decay, batches of conversations of
    similar lengths (less padding); the loss is Transformers'
    causal-LM loss, averaged over the labelled (not -100) tokens of each batch. Nothing is
    saved during training.

    Args:
        model: The model to train (a PEFT model for LoRA).
        tokenizer: Its tokenizer (for the pad token).
        examples: From ``chat_example`` or ``sentiment_examples``.
        output_dir: Trainer's working folder.
        max_steps: Optimizer steps.
        batch_size: Conversations per step.
        learning_rate: AdamW's learning rate.
        seed: Seeds the data order.
        callbacks: ``TrainerCallback`` objects.

    Returns:
        The ``transformers.Trainer``; call ``.train()``.

    Raises:
        ValueError: No examples, or a step count or batch size below 1.
    """
    import torch
    import transformers

    if not examples or max_steps < 1 or batch_size < 1:
        raise ValueError(
            f"need examples ({len(examples)} given), max_steps >= 1 ({max_steps}) and "
            f"batch_size >= 1 ({batch_size})"
        )
    pad_id = tokenizer.pad_token_id
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=max_steps,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        logging_steps=max(1, max_steps // 4),
        save_strategy="no",
        report_to="none",
        train_sampling_strategy="group_by_length",  # batches of similar lengths: less padding
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        push_to_hub=False,
    )
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=list(examples),
        data_collator=lambda batch: pad_batch(batch, pad_id),
        callbacks=list(callbacks),
    )


def parse_answer(text: str, choices: Sequence[str] = SENTIMENT_LABELS) -> str | None:
    """Read a generated reply as one of the choices: the first of them it names, in any case.

    "Positive.", "positive" and "The review is positive" all read as ``"positive"``; a reply
    that names neither reads as None (and is scored wrong).

    Args:
        text: The generated reply.
        choices: The accepted answers, lower case.

    Returns:
        The first choice that appears as a word in the reply, or None.
    """
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in choices:
            return word
    return None


def follows_format(text: str, choices: Sequence[str] = SENTIMENT_LABELS) -> bool:
    """Say whether a reply is exactly one of the choices (case and final punctuation aside).

    Args:
        text: The generated reply.
        choices: The accepted answers, lower case.

    Returns:
        True for "positive", "Negative." and the like; False for a sentence.
    """
    return text.strip().lower().rstrip(".!") in choices


def task_accuracy(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    labels: Sequence[int],
    *,
    batch_size: int = 10,
    max_new_tokens: int = 5,
) -> dict[str, Any]:
    """Ask a chat model for each review's sentiment and score its replies.

    Greedy generation, batched with left padding, prompts of similar lengths together. A
    reply counts as right when the first label it names (``parse_answer``) is the
    sentence's label; a reply naming neither is wrong. ``format_rate`` is the share of
    replies that are exactly one label word (``follows_format``). ``choice_accuracy`` scores
    the first step differently: whether the model puts more probability on ``"positive"``
    than on ``"negative"`` as its first token, whatever it would have written.

    Args:
        model: A causal language model (with or without an adapter).
        tokenizer: Its tokenizer.
        sentences: The review sentences.
        labels: Their labels, 0 (negative) or 1 (positive).
        batch_size: Sentences per generation batch; small batches of sorted prompts waste
            little on padding (one batch of all would pad every prompt to the longest).
        max_new_tokens: Tokens generated per reply.

    Returns:
        ``accuracy``, ``correct``, ``total``, ``interval`` (Wilson 95%), ``format_rate``,
        ``choice_accuracy`` and ``replies`` (the decoded replies, stripped).

    Raises:
        ValueError: ``sentences`` and ``labels`` differ in length or are empty.
    """
    import torch

    if len(sentences) != len(labels) or not sentences:
        raise ValueError(f"{len(sentences)} sentences and {len(labels)} labels: need equal, >= 1")
    word_ids = [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in SENTIMENT_LABELS]
    prompts = [
        _template_ids(tokenizer, sentiment_messages(s), add_generation_prompt=True)
        for s in sentences
    ]
    # Batches of similar lengths waste less on padding; the replies go back in input order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies: list[str] = [""] * len(prompts)
    choices: list[int] = [0] * len(prompts)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        examples = [
            {"input_ids": prompts[i], "attention_mask": [1] * len(prompts[i]), "labels": prompts[i]}
            for i in rows
        ]
        batch = pad_batch(examples, tokenizer.pad_token_id, padding_side="left")
        batch.pop("labels")
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=tokenizer.pad_token_id,
            )
        width = batch["input_ids"].shape[1]
        texts = tokenizer.batch_decode(out.sequences[:, width:], skip_special_tokens=True)
        picks = out.scores[0][:, word_ids].argmax(dim=-1).tolist()
        for i, text, pick in zip(rows, texts, picks, strict=True):
            replies[i], choices[i] = text, pick
    model.train(was_training)
    truth = [SENTIMENT_LABELS[int(y)] for y in labels]
    correct = sum(parse_answer(r) == t for r, t in zip(replies, truth, strict=True))
    return {
        "accuracy": correct / len(truth),
        "correct": correct,
        "total": len(truth),
        "interval": accuracy_interval(correct, len(truth)),
        "format_rate": float(np.mean([follows_format(r) for r in replies])),
        "choice_accuracy": float(np.mean(np.asarray(choices) == np.asarray(labels))),
        "replies": [r.strip() for r in replies],
    }
