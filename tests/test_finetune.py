"""Tests of helpers.lessons.finetune: metrics, real Trainer steps, saving and reloading, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.checks import ch04 as checks
from helpers.lessons import finetune
from helpers.scripts import finetune_sentiment


def test_binary_metrics_counts_the_positive_class():
    scores = finetune.binary_metrics([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert scores == {"accuracy": 0.6, "f1": pytest.approx(2 * 2 / (2 * 2 + 1 + 1))}
    assert finetune.binary_metrics([0, 0], [0, 0])["f1"] == 0.0


def test_binary_metrics_rejects_mismatched_input():
    with pytest.raises(ValueError, match=r"\(2,\) and predictions \(3,\)"):
        finetune.binary_metrics([0, 1], [0, 1, 1])


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> tuple[dict, Path]:
    """Two real optimizer steps on 32 sentences, evaluated on the held-out splits."""
    output = tmp_path_factory.mktemp("finetuned")
    metrics = finetune.finetune_sentiment(
        output_dir=output, max_steps=2, train_size=32, max_length=16, batch_size=16
    )
    return metrics, output


def test_a_short_run_reports_its_metrics(short_run):
    metrics, _ = short_run
    assert metrics["train_steps"] == 2 and metrics["train_size"] == 32
    assert metrics["world_size"] == 1 and metrics["train_seconds"] > 0
    assert metrics["test_size"] == 596
    for key in ("validation_accuracy", "validation_f1", "test_accuracy", "test_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    json.dumps(metrics)  # the command line prints it as JSON


def test_the_model_is_saved_as_safetensors_and_reloads(short_run):
    _, output = short_run
    names = {path.name for path in output.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names
    assert "pytorch_model.bin" not in names  # the weights are not pickled
    first = finetune.classify(output, ["What a lovely film.", "Terrible service."])
    assert finetune.classify(output, ["What a lovely film.", "Terrible service."]) == first
    assert all(label in ("negative", "positive") and 0.5 <= p <= 1 for label, p in first)


def test_the_command_line_prints_json_last(tmp_path, capsys):
    argv = ["--output-dir", str(tmp_path), "--max-steps", "1", "--train-size", "16"]
    assert finetune_sentiment.main([*argv, "--max-length", "16", "--no-eval", "--seed", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["train_steps"] == 1 and metrics["seed"] == 1
    assert "test_accuracy" not in metrics
    assert (tmp_path / "model.safetensors").is_file()


def test_invalid_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_steps=0"):
        finetune.finetune_sentiment(output_dir=tmp_path, max_steps=0)
    with pytest.raises(ValueError, match="max_length=1"):
        finetune.finetune_sentiment(output_dir=tmp_path, max_length=1)


def f1(labels, predictions):
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    tp = np.sum((labels == 1) & (predictions == 1))
    return 2 * tp / (np.sum(labels == 1) + np.sum(predictions == 1))


@pytest.mark.parametrize(
    ("answer", "start", "phrase"),
    [
        (None, "Not attempted yet", "a function"),
        (f1, "Correct", "harmonic mean"),
        (lambda y, p: np.mean(np.asarray(y) == np.asarray(p)), "Not yet", "accuracy"),
        (lambda y, p: f1(1 - np.asarray(y), 1 - np.asarray(p)), "Not yet", "negative class"),
        (lambda y, p: 1 / 0, "Not yet", "ZeroDivisionError"),
    ],
)
def test_check_f1(answer, start, phrase, capsys):
    checks.check_f1(answer)
    out = capsys.readouterr().out
    assert out.startswith(start) and phrase in out


@pytest.mark.parametrize(
    ("answer", "start", "phrase"),
    [(None, "Not attempted yet", "integer"), (8, "Correct", "[CLS]"), (6, "Not yet", "special")],
)
def test_check_token_count(answer, start, phrase, capsys):
    checks.check_token_count(answer)
    out = capsys.readouterr().out
    assert out.startswith(start) and phrase in out


def test_check_token_count_never_raises_without_the_packaged_model(monkeypatch, capsys):
    # Without the package (as on Colab), the check gets the Hub name; offline, the
    # tokenizer cannot be loaded, and the check must say so instead of raising.
    from helpers.assets.models import HUB_NAME, ModelSource
    from helpers.checks import ch04

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(ch04, "text_model_source", lambda: ModelSource(HUB_NAME, "Hub", False))
    checks.check_token_count(8)
    assert capsys.readouterr().out.startswith("Cannot check here: the tokenizer of")
