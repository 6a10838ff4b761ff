"""Tests of helpers.lessons.lora: the LoRA layer, PEFT, adapters, SFT masking, Keras LoRA."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import torch
import transformers

from helpers.lessons import lora, mlp


class Net(torch.nn.Module):
    """Two linear layers with names, as PEFT and add_lora find them."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(16, 12)
        self.out = torch.nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.proj(x)))


def test_the_layer_starts_exactly_unchanged_and_only_a_and_b_train():
    torch.manual_seed(0)
    base = torch.nn.Linear(16, 12)
    layer = lora.LoRALinear(base, rank=4, alpha=8)
    x = torch.randn(5, 16)
    assert torch.equal(layer(x), base(x))
    assert torch.count_nonzero(layer.B) == 0 and torch.count_nonzero(layer.A) == 4 * 16
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"A", "B"}
    # B = 0 at the start: the first gradient reaches B only.
    layer(x).sum().backward()
    assert torch.count_nonzero(layer.A.grad) == 0 and torch.count_nonzero(layer.B.grad) > 0


@pytest.mark.parametrize(("n_in", "n_out", "rank"), [(16, 12, 1), (16, 12, 4), (384, 1536, 8)])
def test_parameter_count_is_r_times_in_plus_out(n_in, n_out, rank):
    layer = lora.LoRALinear(torch.nn.Linear(n_in, n_out), rank=rank)
    trainable, _ = lora.trainable_parameters(layer)
    assert trainable == lora.lora_parameter_count(n_in, n_out, rank) == rank * (n_in + n_out)


def test_merge_equals_unmerged_and_is_a_plain_linear():
    torch.manual_seed(1)
    layer = lora.LoRALinear(torch.nn.Linear(16, 12), rank=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_()
    x = torch.randn(7, 16)
    merged = layer.merged()
    assert type(merged) is torch.nn.Linear
    assert not torch.equal(layer(x), layer.base(x))  # the update is not zero any more
    torch.testing.assert_close(merged(x), layer(x), rtol=0, atol=1e-5)
    expected_weight = layer.base.weight + layer.alpha / layer.rank * layer.B @ layer.A
    torch.testing.assert_close(merged.weight, expected_weight)


def test_peft_with_the_same_a_and_b_gives_identical_outputs():
    torch.manual_seed(2)
    net = Net()
    mine = lora.LoRALinear(torch.nn.Linear(16, 12), rank=4, alpha=8)
    mine.base.load_state_dict(net.proj.state_dict())
    with torch.no_grad():
        mine.B.normal_()
    model = lora.peft_lora_model(net, rank=4, alpha=8, target_modules=["proj"])
    theirs = model.base_model.model.proj
    with torch.no_grad():
        theirs.lora_A["default"].weight.copy_(mine.A)
        theirs.lora_B["default"].weight.copy_(mine.B)
    x = torch.randn(5, 16)
    assert torch.equal(theirs(x), mine(x))
    assert torch.equal(model.merge_and_unload().proj.weight, mine.merged().weight)


def test_add_lora_replaces_the_targets_and_counts_by_the_formula():
    net = Net()
    expected = lora.expected_lora_parameters(net, ["proj", "out"], rank=2)
    assert expected == 2 * (16 + 12) + 2 * (12 + 3)
    lora.add_lora(net, ["proj", "out"], rank=2)
    assert lora.trainable_parameters(net)[0] == expected
    assert type(net.proj).__name__ == "LoRALinear"


@pytest.mark.parametrize("rank", [0, -1, 13, 2.5, True])
def test_a_rank_out_of_range_is_refused(rank):
    with pytest.raises(ValueError, match=r"rank r=.* must be an integer from 1 to .* = 12"):
        lora.LoRALinear(torch.nn.Linear(16, 12), rank=rank)
    with pytest.raises(ValueError, match=r"layer proj"):
        lora.peft_lora_model(Net(), rank=rank if rank != 13 else 13, target_modules=["proj"])


def test_a_target_that_matches_nothing_is_named():
    with pytest.raises(
        ValueError, match=r"\['qury'\] match no torch.nn.Linear in Net.*\['out', 'proj'\]"
    ):
        lora.add_lora(Net(), ["qury"])
    with pytest.raises(ValueError, match=r"\['qury'\] match no"):
        lora.peft_lora_model(Net(), target_modules=["proj", "qury"])
    with pytest.raises(ValueError, match=r"non-empty list"):
        lora.add_lora(Net(), "proj")


@pytest.fixture
def one_thread():
    """Run torch on one thread (a second one waits for the first on shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def minilm():
    """The packaged MiniLM with a fresh two-class head (seeded), and its tokenizer."""
    import helpers

    def load():
        transformers.set_seed(0)
        return helpers.load_text_model(task="sequence-classification", num_labels=2)

    return load


def test_peft_on_minilm_trains_the_formula_plus_the_head(minilm):
    _, model = minilm()
    assert lora.linear_layer_names(model)[:4] == ["classifier", "dense", "key", "query"]
    formula = lora.expected_lora_parameters(model, ["query", "value"], rank=8)
    assert formula == 6 * 2 * 8 * (384 + 384)
    wrapped = lora.peft_lora_model(model, rank=8, alpha=16, task_type="SEQ_CLS")
    trainable, total = wrapped.get_nb_trainable_parameters()
    assert trainable == formula + (384 * 2 + 2)  # LoRA on query and value, the head in full
    assert trainable / total < 0.005


def test_adapter_round_trip_and_wrong_base(minilm, tmp_path, one_thread):
    tokenizer, model = minilm()
    wrapped = lora.peft_lora_model(model, rank=4, alpha=8, task_type="SEQ_CLS")
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    batch = tokenizer(["A fine film.", "Cold food, rude staff."], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = wrapped(**batch).logits
    size = lora.save_adapter(wrapped, tmp_path)
    assert size < 1_000_000  # an adapter of ~37,000 numbers, not a 90 MB model
    assert json.loads((tmp_path / lora.FINGERPRINT_FILE).read_text())["sha256"]
    _, fresh = minilm()
    loaded = lora.load_adapter(fresh, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, rtol=0, atol=1e-6)
        merged = loaded.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, expected, rtol=0, atol=1e-5)
    # A model of another width: refused by shape, naming the layer.
    small = transformers.BertForSequenceClassification(
        transformers.BertConfig(hidden_size=64, num_hidden_layers=6, num_attention_heads=2)
    )
    with pytest.raises(
        ValueError, match=r"has 384 inputs; this BertForSequenceClassification has 64"
    ):
        lora.load_adapter(small, tmp_path)
    # The same architecture with other weights: refused by the fingerprint.
    random_same_shape = transformers.BertForSequenceClassification(fresh.config)
    with pytest.raises(ValueError, match=r"other base weights"):
        lora.load_adapter(random_same_shape, tmp_path)
    with pytest.raises(ValueError, match=r"holds no PEFT adapter"):
        lora.load_adapter(random_same_shape, tmp_path / "nothing")


def test_the_recipe_with_lora_trains_only_the_adapter(tmp_path, one_thread):
    from helpers.lessons import finetune

    recorder = lora.training_recorder()
    metrics = finetune.finetune_sentiment(
        output_dir=tmp_path,
        max_steps=2,
        train_size=32,
        max_length=16,
        eval=False,
        prepare_model=lambda m: lora.peft_lora_model(m, task_type="SEQ_CLS"),
        callbacks=[recorder],
    )
    result = recorder.result
    assert metrics["train_steps"] == 2 and len(result["step_seconds"]) == 2
    assert result["trainable_parameters"] == 6 * 2 * 8 * 768 + 770
    tensors = sum(1 for p in recorder.model.parameters() if p.requires_grad)
    # AdamW keeps two float32 moments per number and a float32 step count per tensor.
    assert result["optimizer_state_bytes"] == 8 * result["trainable_parameters"] + 4 * tensors
    assert (tmp_path / "adapter_model.safetensors").is_file()  # Trainer saved the adapter alone
    assert not (tmp_path / "model.safetensors").exists()


@pytest.fixture(scope="module")
def chat_tokenizer():
    """The packaged WordPiece tokenizer (a real one) with a small chat template attached."""
    import helpers

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        helpers.text_model_source().location, local_files_only=True
    )
    tokenizer.chat_template = (
        "{% for m in messages %}[CLS] {{ m['role'] }} : {{ m['content'] }} [SEP] "
        "{% endfor %}{% if add_generation_prompt %}[CLS] assistant : {% endif %}"
    )
    return tokenizer


def test_only_the_answer_tokens_carry_labels(chat_tokenizer):
    messages = lora.sentiment_messages("The soup was cold.")
    example = lora.chat_example(chat_tokenizer, messages, "negative")
    ids, labels = example["input_ids"], example["labels"]
    prompt = chat_tokenizer(
        chat_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
        add_special_tokens=False,
    )["input_ids"]
    assert ids[: len(prompt)] == prompt
    assert labels[: len(prompt)] == [-100] * len(prompt)
    answer = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    assert answer == ids[len(prompt) :] and labels[len(prompt) :] == answer
    assert chat_tokenizer.decode(answer).replace(" ", "").startswith("negative[SEP]")
    unmasked = lora.chat_example(chat_tokenizer, messages, "negative", mask_prompt=False)
    assert unmasked["labels"] == unmasked["input_ids"] == ids


def test_padding_keeps_the_answer_labels_even_when_pad_is_end_of_turn(chat_tokenizer):
    end = chat_tokenizer.convert_tokens_to_ids("[SEP]")
    short = lora.chat_example(chat_tokenizer, lora.sentiment_messages("Good."), "positive")
    long = lora.chat_example(
        chat_tokenizer, lora.sentiment_messages("Slow service and a dirty table."), "negative"
    )
    batch = lora.pad_batch([short, long], pad_token_id=end)
    n = len(short["input_ids"])
    assert batch["labels"].shape == batch["input_ids"].shape
    assert batch["labels"][0, :n].tolist() == short["labels"]
    assert (batch["labels"][0, n:] == -100).all() and (batch["attention_mask"][0, n:] == 0).all()
    assert end in batch["labels"][0].tolist()  # the end-of-turn token keeps its label
    left = lora.pad_batch([short, long], pad_token_id=end, padding_side="left")
    assert left["input_ids"][0, -n:].tolist() == short["input_ids"]
    with pytest.raises(ValueError, match="padding_side"):
        lora.pad_batch([short], pad_token_id=end, padding_side="middle")


def test_answers_are_parsed_and_bad_answers_refused():
    assert lora.parse_answer("Positive.") == "positive"
    assert lora.parse_answer("The review is negative") == "negative"
    assert lora.parse_answer("I'm sorry, I can't") is None
    assert lora.follows_format("Negative.") and not lora.follows_format("It is negative")
    with pytest.raises(ValueError, match="the answer to learn is empty"):
        lora.chat_example(None, [], " ")


def test_memory_budget_of_a_7b_model():
    n = lora.llama_parameter_count(**lora.LLAMA2_7B)
    assert n == 6_738_415_616  # Llama-2-7B's published count
    adapter = 32 * lora.lora_parameter_count(4096, 4096, 8) * 2
    full = lora.training_memory_bytes(n, n)
    with_lora = lora.training_memory_bytes(n, adapter, frozen_bytes_per_parameter=2)
    assert full["total"] == 16 * n
    assert with_lora["total"] == 2 * n + 16 * adapter
    assert full["optimizer_state"] / with_lora["optimizer_state"] == pytest.approx(n / adapter)


def test_keras_lora_counts_and_starts_unchanged():
    keras.utils.set_random_seed(0)
    model = mlp.build_keras_mlp(dropout=0.0)
    x = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    before = np.asarray(model(x))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer in dense:
        layer.enable_lora(4)
    assert np.array_equal(np.asarray(model(x)), before)
    assert all(not np.any(np.asarray(layer.lora_kernel_b)) for layer in dense)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    sizes = mlp.LAYER_SIZES
    formula = sum(
        lora.lora_parameter_count(a, b, 4) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    )
    assert trainable == formula + sum(sizes[1:])  # Keras leaves the biases trainable
    assert {w.name for w in model.trainable_weights} == {"bias", "lora_kernel_a", "lora_kernel_b"}


def test_sft_on_smollm2_trains_only_the_adapter_and_scores_replies(tmp_path, one_thread):
    from helpers.assets import llm

    tokenizer, model = llm.load_llm()
    texts, labels = ["The food was great.", "Awful, rude staff and cold soup."], [1, 0]
    one = lora.task_accuracy(model, tokenizer, texts, labels, batch_size=1, max_new_tokens=3)
    both = lora.task_accuracy(model, tokenizer, texts, labels, batch_size=2, max_new_tokens=3)
    assert one["replies"] == both["replies"]  # left padding changes nothing
    assert one["total"] == 2 and one["interval"][0] <= one["accuracy"] <= one["interval"][1]

    adapted = lora.peft_lora_model(model, task_type="CAUSAL_LM")
    examples = lora.sentiment_examples(tokenizer, texts, labels)
    trainer = lora.sft_trainer(
        adapted, tokenizer, examples, output_dir=tmp_path, max_steps=2, batch_size=2
    )
    batch = next(iter(trainer.get_train_dataloader()))
    labelled = (batch["labels"] != -100).sum(dim=1).tolist()
    assert labelled == [3, 3]  # the label word, <|im_end|> and the newline after it
    frozen = {n: p.detach().clone() for n, p in adapted.named_parameters() if "q_proj.base" in n}
    trainer.train()
    for name, p in adapted.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name])
        if "lora_B" in name:
            assert torch.count_nonzero(p) > 0


CHECK_CASES = [
    # (check, answer, extra arguments, start of the verdict, a phrase it must contain)
    ("check_lora_parameters", None, (), "Not attempted", "an integer"),
    ("check_lora_parameters", 6 * 3 * 16 * 768, (), "Correct", "221,184"),
    ("check_lora_parameters", 6 * 3 * 16 * 384, (), "Not yet", "A only"),
    ("check_lora_parameters", 6 * 2 * 16 * 768, (), "Not yet", "add the key"),
    ("check_lora_parameters", "many", (), "Not yet", "not a number"),
    ("check_lora_merge", lambda w, a, b, alpha, r: w + alpha / r * b @ a, (), "Correct", "B A"),
    ("check_lora_merge", lambda w, a, b, alpha, r: w + b @ a, (), "Not yet", "scale is missing"),
    ("check_lora_merge", lambda w, a, b, alpha, r: w + r / alpha * b @ a, (), "Not yet", "upside"),
    ("check_lora_merge", lambda w, a, b, alpha, r: w + a.T @ b.T, (), "Not yet", "shape"),
    ("check_lora_rank_budget", 20, (), "Correct", "r = 20"),
    ("check_lora_rank_budget", 21, (), "Not yet", "round down"),
    ("check_lora_rank_budget", 40, (), "Not yet", "A and B both count"),
    ("check_sft_labels", lambda p, f: [-100] * len(p) + f[len(p) :], (), "Correct", "answer"),
    ("check_sft_labels", lambda p, f: f, (), "Not yet", "every token is labelled"),
    ("check_sft_labels", lambda p, f: f[: len(p)] + [-100] * 3, (), "Not yet", "answer is masked"),
    ("check_normal_interval", (0.84 - 0.0719, 0.84 + 0.0719), (84, 100), "Correct", "Wilson"),
    ("check_normal_interval", (0.84 - 0.0026, 0.84 + 0.0026), (84, 100), "Not yet", "root"),
    ("check_normal_interval", None, (84, 100), "Not attempted", "(low, high)"),
]


@pytest.mark.parametrize(("name", "answer", "extra", "start", "phrase"), CHECK_CASES)
def test_exercise_checks_of_05d_and_05e(name, answer, extra, start, phrase, capsys):
    from helpers.checks import ch05

    getattr(ch05, name)(answer, *extra)
    out = capsys.readouterr().out
    assert out.startswith(start) and phrase in out, out
