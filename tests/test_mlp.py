"""Tests of helpers.lessons.mlp: one MLP in two frameworks, identical given the same weights."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import torch

from helpers.assets.data import MnistData
from helpers.checks import ch04 as checks
from helpers.lessons import mlp, step_cost


@pytest.fixture(scope="module")
def tiny() -> MnistData:
    """400 random 'images' with learnable labels: the brightest of ten bands of two rows."""
    rng = np.random.default_rng(0)
    x = rng.random((400, 28, 28), dtype=np.float32)
    y = x[:, :20].reshape(400, 10, -1).sum(axis=2).argmax(axis=1).astype(np.int64)
    return MnistData(x[:300], y[:300], x[300:350], y[300:350], x[350:], y[350:], "random", False)


def test_both_models_have_the_same_layers():
    keras_model, torch_model = mlp.build_keras_mlp(), mlp.build_torch_mlp()
    assert keras_model.count_params() == 109_386
    assert sum(p.numel() for p in torch_model.parameters()) == 109_386
    assert keras_model.output_shape == (None, 10)
    assert torch_model(torch.zeros(3, 28, 28)).shape == (3, 10)


def test_copied_weights_give_the_same_logits():
    keras.utils.set_random_seed(0)
    keras_model, torch_model = mlp.build_keras_mlp(0.0), mlp.build_torch_mlp(0.0)
    x = np.random.default_rng(1).random((8, 28, 28), dtype=np.float32)
    mlp.copy_keras_to_torch(keras_model, torch_model)
    with torch.no_grad():
        ours = torch_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, keras_model.predict(x, verbose=0), atol=1e-5)


def test_copy_rejects_a_different_architecture():
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with pytest.raises(ValueError, match="3 Dense layers but 1 nn.Linear"):
        mlp.copy_keras_to_torch(mlp.build_keras_mlp(), other)
    wide = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.Linear(256, 64), torch.nn.Linear(64, 10)
    )
    with pytest.raises(ValueError, match=r"layer 0: Keras kernel \(784, 128\)"):
        mlp.copy_keras_to_torch(mlp.build_keras_mlp(), wide)


def test_sgd_steps_agree_between_frameworks(tiny):
    parity = mlp.sgd_parity(tiny.x_train, tiny.y_train, steps=8)
    assert parity.max_abs_diff < 1e-4
    assert parity.keras_losses[-1] < parity.keras_losses[0]  # it does learn
    np.testing.assert_allclose(parity.keras_losses, parity.torch_losses, atol=1e-5)


def test_parity_needs_enough_images(tiny):
    with pytest.raises(ValueError, match="50 images are fewer than 20 steps x 32"):
        mlp.sgd_parity(tiny.x_val, tiny.y_val)


def test_torch_training_is_reproducible_and_records_history(tiny):
    first = mlp.train_torch(tiny, epochs=2, seed=1)
    again = mlp.train_torch(tiny, epochs=2, seed=1)
    assert first.history == again.history
    assert sorted(first.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(values) == 2 for values in first.history.values())
    assert first.history["loss"][-1] < first.history["loss"][0]
    assert len(first.epoch_seconds) == 2 and first.test_predictions.shape == (50,)
    assert first.test_accuracy == np.mean(first.test_predictions == tiny.y_test)


def test_keras_training_is_reproducible_and_records_history(tiny):
    first = mlp.train_keras(tiny, epochs=2, seed=1)
    again = mlp.train_keras(tiny, epochs=2, seed=1)
    assert first.history == again.history
    assert sorted(first.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert first.history["loss"][-1] < first.history["loss"][0]
    assert len(first.epoch_seconds) == 2 and first.test_predictions.shape == (50,)


def test_step_flops_skips_the_input_gradient_of_the_first_layer():
    assert step_cost.step_flops(1, (3, 2)) == 4 * 3 * 2
    assert (
        step_cost.step_flops(32) == 6 * 32 * (784 * 128 + 128 * 64 + 64 * 10) - 2 * 32 * 784 * 128
    )


def test_timings_are_per_step_and_in_seconds():
    # The per-step time, times the steps run (5 per repeat, 2 repeats plus a warm-up), fits
    # inside the wall time of the call: a time in ms, or per run instead of per step, would not.
    start = time.perf_counter()
    step = step_cost.torch_step_seconds(8, steps=5, repeats=2)
    elapsed = time.perf_counter() - start
    assert 0 < 10 * step < elapsed
    start = time.perf_counter()
    flops = step_cost.matmul_flops_per_s(256, repeats=3)
    elapsed = time.perf_counter() - start
    # Three products of 2 * 256**3 FLOPs took at most the call's time, and no 2-core CPU
    # reaches 10 TFLOP/s in float32.
    assert 3 * 2 * 256**3 / elapsed < flops < 1e13


def _softmax_model(from_logits: bool = False, flatten: bool = True):
    layers = [keras.Input(shape=(28, 28))] + ([keras.layers.Flatten()] if flatten else [])
    layers += [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, "softmax")]
    model = keras.Sequential(layers)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    return model


def _accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())


def _accuracy_in_train_mode(model, x, y):
    return float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())


def _step(model, optimizer, x, y, softmax=False, zero=True):
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(torch.softmax(logits, 1) if softmax else logits, y)
    if zero:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _copy_torch_to_keras(torch_model, keras_model, transpose=True):
    linear = [m for m in torch_model.modules() if isinstance(m, torch.nn.Linear)]
    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    for source, target in zip(linear, dense, strict=True):
        weight = source.weight.detach().numpy()
        target.set_weights([weight.T if transpose else weight, source.bias.detach().numpy()])


CASES = [
    (checks.check_softmax_model, None, "Not attempted yet", "keras model"),
    (checks.check_softmax_model, _softmax_model, "Correct", "from_logits=False"),
    (checks.check_softmax_model, lambda: _softmax_model(from_logits=True), "Not yet", "twice"),
    (checks.check_softmax_model, lambda: _softmax_model(flatten=False), "Not yet", "Flatten"),
    (checks.check_parameter_count, None, "Not attempted yet", "integer"),
    (checks.check_parameter_count, 109_386, "Correct", "109,386"),
    (checks.check_parameter_count, 109_184, "Not yet", "biases"),
    (checks.check_unflattened_shape, (32, 28, 10), "Correct", "last axis"),
    (checks.check_unflattened_shape, (32, 10), "Not yet", "after Flatten"),
    (checks.check_accuracy_function, _accuracy, "Correct", "eval()"),
    (checks.check_accuracy_function, _accuracy_in_train_mode, "Not yet", "dropout"),
    (checks.check_train_step, _step, "Correct", "zero_grad"),
    (checks.check_train_step, lambda *a: _step(*a, softmax=True), "Not yet", "no softmax"),
    (checks.check_train_step, lambda *a: _step(*a, zero=False), "Not yet", "zero_grad()"),
    (checks.check_softmax_loss_floor, float(np.log(1 + 9 / np.e)), "Correct", "log(1 + 9/e)"),
    (checks.check_softmax_loss_floor, 0.0, "Not yet", "on logits"),
    (checks.check_torch_to_keras, _copy_torch_to_keras, "Correct", "agree"),
    (
        checks.check_torch_to_keras,
        lambda t, k: _copy_torch_to_keras(t, k, False),
        "Not yet",
        "raised",
    ),
    (checks.check_step_flops, 6 * 128 * 109_184 - 2 * 128 * 784 * 128, "Correct", "58,163,200"),
    (checks.check_step_flops, 6 * 128 * 109_184, "Not yet", "first layer"),
    (checks.check_step_flops, 2 * 128 * 109_184, "Not yet", "forward pass only"),
]


@pytest.mark.parametrize(("check", "answer", "start", "phrase"), CASES)
def test_exercise_checks(check, answer, start, phrase, capsys):
    check(answer() if check is checks.check_softmax_model and answer else answer)
    out = capsys.readouterr().out
    assert out.startswith(start), out
    assert phrase in out, out
