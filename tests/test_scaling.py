"""The analytic counts of helpers.lessons.scaling against real models, and the measurement helpers.

The parameter count must equal ``sum(p.numel())`` of Transformers' BERT classes and the FLOP
count must equal what PyTorch's FLOP counter sees, for several configurations; the
activation measurement must show what chapter 5 claims about checkpointing and bfloat16.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import transformers

from helpers.checks import ch05 as checks
from helpers.lessons import scaling

# (hidden, layers, heads, vocab, positions)
CONFIGS = [(32, 1, 2, 50, 16), (48, 2, 4, 100, 32), (64, 3, 8, 257, 64)]


def make_config(hidden, layers, heads, vocab, positions, attn="eager"):
    return scaling.tiny_bert_config(
        hidden,
        layers,
        num_heads=heads,
        vocab_size=vocab,
        max_positions=positions,
        attn_implementation=attn,
    )


@pytest.mark.parametrize("sizes", CONFIGS)
def test_parameter_count_equals_the_real_models(sizes):
    config = make_config(*sizes)
    base = transformers.BertModel(config)
    bare = transformers.BertModel(config, add_pooling_layer=False)
    classifier = transformers.BertForSequenceClassification(config)
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert scaling.parameter_count(config) == count(base)
    assert scaling.parameter_count(config, pooler=False) == count(bare)
    assert scaling.parameter_count(config, num_labels=2) == count(classifier)


def test_bert_base_has_its_published_size():
    assert scaling.parameter_count(transformers.BertConfig()) == 109_482_240
    assert scaling.parameter_count(scaling.BERT_BASE) == 109_482_240


@pytest.mark.parametrize("sizes", CONFIGS)
def test_flop_counts_equal_pytorchs_counter(sizes):
    torch.manual_seed(0)
    config = make_config(*sizes)
    model = transformers.BertForSequenceClassification(config).eval()
    batch, seq_len = 3, 11
    ids = torch.randint(0, config.vocab_size, (batch, seq_len))
    labels = torch.tensor([0, 1, 0])
    with torch.no_grad():
        forward = scaling.count_flops(lambda: model(input_ids=ids))
    counts = dict(batch_size=batch, seq_len=seq_len, num_labels=2)
    assert forward == scaling.forward_flops(config, **counts)
    model.train()
    training = scaling.count_flops(lambda: model(input_ids=ids, labels=labels).loss.backward())
    assert training == scaling.training_flops(config, **counts) == 3 * forward


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="num_hidden_layers"):
        scaling.TransformerShape.from_config(object())
    with pytest.raises(ValueError, match="seq_len=0"):
        scaling.forward_flops(scaling.BERT_BASE, batch_size=1, seq_len=0)
    with pytest.raises(ValueError, match="divide"):
        scaling.tiny_bert_config(30, 1, num_heads=4)


def test_power_law_fit_recovers_exponent_and_prefactor():
    x = np.array([1.0, 10.0, 100.0, 1000.0])
    fit = scaling.fit_power_law(x, 3.0 * x**0.75)
    assert fit.exponent == pytest.approx(0.75)
    assert fit.prefactor == pytest.approx(3.0)
    assert fit.r_squared == pytest.approx(1.0)
    np.testing.assert_allclose(fit(x), 3.0 * x**0.75)
    with pytest.raises(ValueError, match="positive"):
        scaling.fit_power_law([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="distinct"):
        scaling.fit_power_law([2.0, 2.0], [1.0, 3.0])


def test_checkpointing_and_bfloat16_shrink_saved_activations():
    torch.manual_seed(0)
    config = make_config(64, 4, 4, 100, 64)
    config.use_cache = False
    model = transformers.BertForSequenceClassification(config)
    ids = torch.randint(0, 100, (4, 64))
    labels = torch.tensor([0, 1, 0, 1])
    start = time.perf_counter()
    plain = scaling.measure_training_step(model, ids, labels, repeats=1)
    elapsed = time.perf_counter() - start
    bf16 = scaling.measure_training_step(
        model, ids, labels, repeats=1, autocast_dtype=torch.bfloat16
    )
    scaling.enable_activation_checkpointing(model)
    checkpointed = scaling.measure_training_step(model, ids, labels, repeats=1)
    assert plain.peak_bytes is None  # no CUDA allocator on a CPU
    assert 0 < plain.seconds < elapsed  # one step, in seconds, inside the call's wall time
    assert checkpointed.activation_bytes < plain.activation_bytes / 4
    assert bf16.activation_bytes < plain.activation_bytes


def test_saved_activation_bytes_counts_a_known_graph():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8)
    # Linear saves its input (16 x 8 floats); tanh saves its output (16 x 4 floats).
    assert scaling.saved_activation_bytes(lambda: torch.tanh(layer(x)), layer) == 4 * (128 + 64)


def test_exercise_checks_accept_the_answers(capsys):
    checks.check_bert_base_parameters(109_482_240)
    ratio = scaling.forward_flops(scaling.BERT_BASE, batch_size=1, seq_len=256) / (
        scaling.forward_flops(scaling.BERT_BASE, batch_size=1, seq_len=128)
    )
    checks.check_flops_ratio(ratio)
    checks.check_training_memory_gib(16 * 109_482_240 / 2**30)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("Correct") for line in lines)


def test_exercise_checks_explain_common_mistakes(capsys):
    checks.check_bert_base_parameters(109_482_240 - (768 * 768 + 768))
    checks.check_flops_ratio(2)
    checks.check_training_memory_gib(4 * 109_482_240 / 2**30)
    checks.check_bert_base_parameters(None)
    checks.check_flops_ratio("many")
    out = capsys.readouterr().out
    assert "pooler" in out and "Q K^T" in out and "weights alone" in out
    assert "Not attempted" in out and "not a number" in out
