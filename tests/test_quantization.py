"""Dynamic int8 quantization and the distillation loss of helpers.lessons.quantization.

A small random BERT is quantized: its linear layers must become dynamically quantized, its
size on disk must match the prediction, and its outputs must stay close to the float32
model's. The distillation loss must equal a direct computation, be zero when student and
teacher agree, and its exercise checks must accept right answers and explain wrong ones.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import transformers

from helpers.checks import ch05 as checks
from helpers.lessons import quantization, scaling


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = scaling.tiny_bert_config(64, 2, vocab_size=500)
    return transformers.BertForSequenceClassification(config).eval()


def test_quantized_copy_has_int8_linear_layers(model):
    quantized = quantization.quantize_dynamic_int8(model)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    n_linear = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert sum(type(m) is dynamic for m in quantized.modules()) == n_linear
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert any(type(m) is torch.nn.Linear for m in model.modules()), "the original is untouched"


def test_size_on_disk_matches_the_prediction(model):
    quantized = quantization.quantize_dynamic_int8(model)
    size_fp32 = quantization.serialized_size_bytes(model)
    size_int8 = quantization.serialized_size_bytes(quantized)
    predicted = quantization.predicted_int8_size_bytes(model)
    n_params = sum(p.numel() for p in model.parameters())
    assert 4 * n_params <= size_fp32 < 1.02 * 4 * n_params + 50_000
    assert predicted <= size_int8 < 1.02 * predicted + 50_000
    assert size_int8 < size_fp32


def test_quantized_outputs_stay_close(model):
    quantized = quantization.quantize_dynamic_int8(model)
    ids = torch.randint(0, 500, (16, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact, rounded = model(input_ids=ids).logits, quantized(input_ids=ids).logits
    assert (exact - rounded).abs().max() < 0.1 * exact.abs().max() + 0.05


def test_accuracy_and_latency(model):
    from helpers.assets.models import text_model_source

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        text_model_source().location, local_files_only=True
    )
    config = scaling.tiny_bert_config(32, 1, vocab_size=tokenizer.vocab_size)
    net = transformers.BertForSequenceClassification(config).eval()
    texts = ["good", "bad", "fine film", "awful"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = net(**batch).logits.argmax(-1).numpy()
    assert quantization.accuracy(net, tokenizer, texts, predicted, batch_size=3) == 1.0
    assert quantization.accuracy(net, tokenizer, texts, 1 - predicted) == 0.0
    start = time.perf_counter()
    latency = quantization.latency_seconds(net, batch, repeats=2)
    assert 0 < 2 * latency < time.perf_counter() - start  # per batch, in seconds
    with pytest.raises(ValueError, match="3 labels"):
        quantization.accuracy(net, tokenizer, texts, [0, 1, 0])


def direct_loss(student, teacher, temperature):
    p = np.exp(teacher / temperature)
    p /= p.sum(axis=1, keepdims=True)
    q = np.exp(student / temperature)
    q /= q.sum(axis=1, keepdims=True)
    return temperature**2 * np.mean(np.sum(p * np.log(p / q), axis=1))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_distillation_loss_matches_a_direct_computation(temperature):
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    expected = direct_loss(student, teacher, temperature)
    assert quantization.distillation_loss(student, teacher, temperature) == pytest.approx(expected)
    assert quantization.distillation_loss(teacher, teacher, temperature) == pytest.approx(0.0)


def test_distillation_loss_is_stable_and_checks_its_inputs():
    huge = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    assert np.isfinite(quantization.distillation_loss(huge, huge[::-1], 1.0))
    with pytest.raises(ValueError, match="temperature=0"):
        quantization.distillation_loss(huge, huge, 0)
    with pytest.raises(ValueError, match="expected equal"):
        quantization.distillation_loss(huge, huge[:1], 1.0)


def test_exercise_checks(model, capsys):
    checks.check_int8_size(quantization.predicted_int8_size_bytes(model) / 1e6, model)
    checks.check_int8_size(sum(p.numel() for p in model.parameters()) / 1e6, model)
    checks.check_distillation_loss(quantization.distillation_loss)
    checks.check_distillation_loss(lambda s, t, T: quantization.distillation_loss(s, t, T) / T**2)
    checks.check_distillation_loss(lambda s, t, T: quantization.distillation_loss(t, s, T))
    checks.check_distillation_loss(None)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Correct") and "every parameter at 1 byte" in out[1]
    assert out[2].startswith("Correct") and "T^2" in out[3] and "wrong way round" in out[4]
    assert out[5].startswith("Not attempted")
