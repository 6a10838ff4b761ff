"""Chapter 5's figures: compilation, mixed precision, checkpointing and int8 quantization.

Measures, on whatever device this machine has (one CPU thread on a CPU, as in the
notebooks): the first call and the steady-state time of a tiny BERT in eager mode and under
``torch.compile``; the same for a small Keras Transformer block under ``tf.function`` with
and without XLA; a training step in float32 and under bfloat16 autocast; a training step
with and without activation checkpointing; and the size and CPU latency of the book's
MiniLM classifier (with a fresh head: latency does not depend on training) before and
after dynamic int8 quantization. Prints the figures as one JSON object on its last line
(see tools/run_benchmarks.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import helpers
from helpers.lessons import quantization, scaling
from helpers.runtime import timing


def first_and_steady(fn, repeats: int = 20) -> tuple[float, float]:
    """Return the first call's time and the median of the next ``repeats`` calls."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    return first, timing.median_seconds(fn, repeats=repeats, warmup=0)


def torch_figures(device) -> dict[str, float]:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    figures: dict[str, float] = {}
    tiny = transformers.BertForSequenceClassification(scaling.tiny_bert_config(64, 2))
    tiny = tiny.to(device).eval()
    ids = torch.randint(0, 2000, (8, 32), device=device)
    compiled = torch.compile(tiny)
    with torch.no_grad():
        for name, model in (("eager", tiny), ("compile", compiled)):
            first, steady = first_and_steady(lambda model=model: model(input_ids=ids))
            figures[f"torch_{name}_first_call_s"] = round(first, 3)
            figures[f"torch_{name}_steady_ms"] = round(steady * 1e3, 3)

    small = scaling.tiny_bert_config(64, 2)
    net = transformers.BertForSequenceClassification(small).to(device)
    batch = torch.randint(0, small.vocab_size, (4, 32), device=device)
    target = torch.randint(0, 2, (4,), device=device)
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        result = scaling.measure_training_step(net, batch, target, repeats=5, autocast_dtype=dtype)
        figures[f"step_{name}_ms"] = round(result.seconds * 1e3, 3)
        figures[f"step_{name}_activation_kib"] = round(result.activation_bytes / 2**10, 1)

    deep = scaling.tiny_bert_config(128, 6)
    deep.use_cache = False
    net = transformers.BertForSequenceClassification(deep).to(device)
    batch = torch.randint(0, deep.vocab_size, (8, 64), device=device)
    target = torch.randint(0, 2, (8,), device=device)
    plain = scaling.measure_training_step(net, batch, target, repeats=5)
    scaling.enable_activation_checkpointing(net)
    checkpointed = scaling.measure_training_step(net, batch, target, repeats=5)
    figures["checkpoint_memory_ratio"] = round(
        plain.activation_bytes / checkpointed.activation_bytes, 2
    )
    figures["checkpoint_time_ratio"] = round(checkpointed.seconds / plain.seconds, 3)
    return figures


def keras_figures() -> dict[str, float]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 64))
    attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)(inputs, inputs)
    hidden = keras.layers.LayerNormalization()(inputs + attended)
    mlp = keras.layers.Dense(64)(keras.layers.Dense(256, activation="gelu")(hidden))
    block = keras.Model(inputs, keras.layers.LayerNormalization()(hidden + mlp))
    x = tf.random.normal((8, 32, 64))
    variants = {
        "eager": lambda: block(x),
        "function": tf.function(lambda: block(x)),
        "xla": tf.function(lambda: block(x), jit_compile=True),
    }
    figures: dict[str, float] = {}
    for name, fn in variants.items():
        first, steady = first_and_steady(fn)
        figures[f"keras_{name}_first_call_s"] = round(first, 3)
        figures[f"keras_{name}_steady_ms"] = round(steady * 1e3, 3)
    return figures


def quantization_figures() -> dict[str, float]:
    import transformers

    transformers.logging.set_verbosity_error()
    tokenizer, model = helpers.load_text_model(task="sequence-classification", num_labels=2)
    quantized = quantization.quantize_dynamic_int8(model)
    sentences = [
        "The food was not great, but the service was wonderful.",
        "I would not buy this phone again.",
    ] * 16
    inputs = {
        "1": tokenizer(sentences[:1], return_tensors="pt"),
        "32": tokenizer(sentences, padding=True, return_tensors="pt"),
    }
    figures: dict[str, float] = {}
    for name, net in (("fp32", model), ("int8", quantized)):
        figures[f"minilm_{name}_mb"] = round(quantization.serialized_size_bytes(net) / 1e6, 1)
        for size, batch in inputs.items():
            seconds = quantization.latency_seconds(net, batch, repeats=20, warmup=2)
            figures[f"minilm_{name}_batch{size}_ms"] = round(seconds * 1e3, 2)
    return figures


def main() -> None:
    # A fresh compile cache, so torch.compile's first call is measured cold, as a reader's
    # first run sees it (later runs reuse the cache and start much faster).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    import torch

    device = helpers.torch_device("auto")
    if device.type == "cpu":
        torch.set_num_threads(1)
    figures = torch_figures(device) | quantization_figures() | keras_figures()
    for name, value in figures.items():
        print(f"{name:32} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
