"""Tests of helpers.lessons.generation on tiny random-weight Llama models, and of 04e's checks.

Decoding does not depend on what the weights learned, so a 2-layer Llama with random
weights (grouped-query attention: 4 query heads share 2 key-value heads) stands in for
SmolLM2 here; tests/test_llm_model.py runs the real model.
"""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from helpers.checks import ch04 as checks
from helpers.lessons import generation as gen

VOCAB = 97


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=48,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return transformers.LlamaForCausalLM(config).eval()


def random_logits(rows: int = 64, vocab: int = VOCAB, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def prompt(length: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# The logits processors


def test_greedy_is_the_argmax():
    logits = random_logits()
    assert torch.equal(gen.choose_next_token(logits), logits.argmax(-1))


@pytest.mark.parametrize("k", [1, 5, 40])
def test_top_k_keeps_the_k_largest(k):
    logits = random_logits()
    kept = torch.isfinite(gen.top_k_filter(logits, k))
    assert (kept.sum(-1) == k).all()
    largest = torch.topk(logits, k, dim=-1).indices
    assert kept.gather(-1, largest).all()
    expected = transformers.TopKLogitsWarper(k)(None, logits.clone())
    assert torch.equal(torch.isfinite(expected), kept)


def test_top_k_larger_than_the_vocabulary_keeps_all():
    logits = random_logits()
    assert torch.equal(gen.top_k_filter(logits, VOCAB + 10), logits)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_with_mass_p(p):
    logits = random_logits()
    probabilities = torch.softmax(logits, -1)
    kept = torch.isfinite(gen.top_p_filter(logits, p))
    for row, keep in zip(probabilities, kept, strict=True):
        mass = row[keep].sum()
        assert mass >= p - 1e-6  # enough mass
        assert row[keep].min() >= row[~keep].max()  # the most likely ones
        assert mass - row[keep].min() < p  # dropping the least likely kept one is too little
    expected = transformers.TopPLogitsWarper(p)(None, logits.clone())
    assert torch.equal(torch.isfinite(expected), kept)


def test_top_p_edges():
    logits = random_logits()
    assert torch.isfinite(gen.top_p_filter(logits, 1.0)).all()
    tiny_p = torch.isfinite(gen.top_p_filter(logits, 1e-9))
    assert torch.equal(tiny_p.float().argmax(-1), logits.argmax(-1))
    assert (tiny_p.sum(-1) == 1).all()


def test_temperature_scales_and_low_temperature_sampling_is_greedy():
    logits = random_logits(rows=500)
    torch.testing.assert_close(gen.apply_temperature(logits, 0.5), logits * 2)
    generator = torch.Generator().manual_seed(0)
    sampled = gen.choose_next_token(logits, do_sample=True, temperature=1e-4, generator=generator)
    assert torch.equal(sampled, logits.argmax(-1))


def test_sampling_follows_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -3.0]]).repeat(20_000, 1)
    generator = torch.Generator().manual_seed(0)
    draws = gen.choose_next_token(logits, do_sample=True, generator=generator)
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    # 20,000 draws: the standard error of each frequency is below 0.0036; allow 4 of them.
    assert torch.allclose(frequencies, torch.softmax(logits[0], -1), atol=0.015)


def test_sampling_with_top_k_never_leaves_the_top_k():
    logits = random_logits(rows=400)
    generator = torch.Generator().manual_seed(0)
    draws = gen.choose_next_token(logits, do_sample=True, top_k=3, generator=generator)
    top3 = torch.topk(logits, 3, dim=-1).indices
    assert (top3 == draws[:, None]).any(-1).all()


def test_entropy_in_bits():
    uniform = torch.zeros(1, 8)
    assert gen.entropy_bits(uniform).item() == pytest.approx(3.0)
    one_hot = torch.full((1, 8), float("-inf"))
    one_hot[0, 3] = 0.0
    assert gen.entropy_bits(one_hot).item() == pytest.approx(0.0)


# Bad input


@pytest.mark.parametrize("top_p", [0, 0.0, -0.1, 1.5, float("nan"), "0.9"])
def test_top_p_outside_zero_one_is_refused(top_p):
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        gen.top_p_filter(random_logits(), top_p)
    with pytest.raises(ValueError, match="top_p"):
        gen.choose_next_token(random_logits(), do_sample=True, top_p=top_p)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True])
def test_top_k_below_one_is_refused(top_k):
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        gen.top_k_filter(random_logits(), top_k)


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0])
def test_temperature_at_or_below_zero_with_sampling_is_refused(temperature, tiny):
    with pytest.raises(ValueError, match="temperature must be > 0 when sampling"):
        gen.choose_next_token(random_logits(), do_sample=True, temperature=temperature)
    with pytest.raises(ValueError, match="temperature must be > 0 when sampling"):
        gen.generate_tokens(tiny, prompt(4), 3, do_sample=True, temperature=temperature)
    # Greedy decoding ignores the temperature, as generate(do_sample=False) does.
    assert gen.generate_tokens(tiny, prompt(4), 3, temperature=temperature).shape == (1, 3)


def test_prompt_longer_than_the_context_is_refused(tiny):
    with pytest.raises(ValueError, match="The prompt has 49 tokens, more than the model's context"):
        gen.generate_tokens(tiny, prompt(49), 1)
    with pytest.raises(ValueError, match="ask for at most 8 new tokens"):
        gen.generate_tokens(tiny, prompt(40), 9)
    with pytest.raises(ValueError, match="The prompt is empty"):
        gen.generate_tokens(tiny, prompt(1)[:, :0], 1)
    with pytest.raises(ValueError, match="attention_mask"):
        gen.generate_tokens(tiny, prompt(4), 1, attention_mask=torch.ones(1, 5, dtype=torch.long))


# The decoding loop


def test_greedy_loop_matches_generate_with_and_without_the_cache(tiny):
    ids = prompt(6)
    expected = tiny.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=None)[:, 6:]
    cached = gen.generate_tokens(tiny, ids, 20, use_cache=True)
    uncached = gen.generate_tokens(tiny, ids, 20, use_cache=False)
    assert torch.equal(cached, expected)
    assert torch.equal(uncached, expected)


def test_left_padded_batch_matches_generate_and_each_prompt_alone(tiny):
    prompts = [prompt(3, seed=5)[0], prompt(7, seed=6)[0], prompt(5, seed=7)[0]]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(3, width, dtype=torch.long)
    mask = torch.zeros(3, width, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], mask[row, width - len(p) :] = p, 1
    expected = tiny.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, eos_token_id=None
    )[:, width:]
    batched = gen.generate_tokens(tiny, ids, 10, attention_mask=mask)
    assert torch.equal(batched, expected)
    for row, p in enumerate(prompts):
        assert torch.equal(batched[row], gen.generate_tokens(tiny, p[None], 10)[0])


def test_end_token_stops_each_row_and_pads_after_it(tiny):
    ids = prompt(4, batch=2, seed=3)
    free = gen.generate_tokens(tiny, ids, 12)
    eos = int(free[0, 2])  # row 0 produces it at step 3
    tokens = gen.generate_tokens(tiny, ids, 12, eos_token_id=eos, pad_token_id=0)
    expected = tiny.generate(
        ids, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=0
    )[:, 4:]
    assert torch.equal(tokens, expected)
    assert tokens[0, 2] == eos and (tokens[0, 3:] == 0).all()


def test_sampling_is_reproducible_with_a_seed(tiny):
    ids = prompt(5)
    options = {"do_sample": True, "temperature": 1.5, "top_k": 50, "top_p": 0.95}
    first = gen.generate_tokens(tiny, ids, 16, seed=0, **options)
    again = gen.generate_tokens(tiny, ids, 16, seed=0, **options)
    other = gen.generate_tokens(tiny, ids, 16, seed=1, **options)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    uncached = gen.generate_tokens(tiny, ids, 16, seed=0, use_cache=False, **options)
    assert torch.equal(first, uncached)


# The KV cache and the loss


@pytest.mark.parametrize(("tokens", "batch"), [(1, 1), (9, 1), (6, 3)])
def test_cache_size_formula_matches_the_cache_tensors(tiny, tokens, batch):
    ids = prompt(tokens, batch=batch)
    with torch.no_grad():
        output = tiny(ids, use_cache=True)
    cache = getattr(output, gen.cache_argument(tiny))
    measured = gen.cache_tensor_bytes(cache)
    assert measured == gen.kv_cache_bytes(tiny.config, tokens, batch_size=batch)
    # layers x KV heads x head size x tokens x (keys, values) x batch x float32 bytes; with
    # 4 KV heads (no grouped-query attention) it would be twice as large.
    assert measured == 2 * 2 * 8 * tokens * 2 * batch * 4


def test_cache_size_of_smollm2_per_token():
    config = transformers.LlamaConfig(
        hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3
    )
    assert gen.kv_cache_bytes(config, 1) == 30 * 3 * 64 * 2 * 4 == 46_080
    assert gen.kv_cache_bytes(config, 8192, bytes_per_value=2) == 188_743_680
    with pytest.raises(ValueError):
        gen.kv_cache_bytes(config, -1)


def test_cache_argument_is_the_forward_parameter(tiny):
    import inspect

    name = gen.cache_argument(tiny)
    assert name in inspect.signature(tiny.forward).parameters


def test_loss_by_hand_matches_the_model_loss(tiny):
    ids = prompt(12, batch=2)
    with torch.no_grad():
        output = tiny(ids, labels=ids)
    losses = gen.token_losses(output.logits, ids)
    assert losses.shape == (2, 11)
    torch.testing.assert_close(losses.mean(), output.loss)


def test_padding_is_not_scored():
    logits = torch.zeros(1, 4, 5)
    ids = torch.tensor([[0, 3, 4, 0]])
    mask = torch.tensor([[0, 1, 1, 0]])
    losses = gen.token_losses(logits, ids, mask)
    assert torch.isnan(losses[0, 0]) and torch.isnan(losses[0, 2])
    assert losses[0, 1].item() == pytest.approx(math.log(5))
    with pytest.raises(ValueError, match="length >= 2"):
        gen.token_losses(logits[:, :1], ids[:, :1])


def test_step_seconds_refuses_short_or_long_contexts(tiny):
    assert gen.step_seconds(tiny, 8, use_cache=True, repeats=1) > 0
    assert gen.step_seconds(tiny, 8, use_cache=False, repeats=1) > 0
    with pytest.raises(ValueError, match="context must be >= 2"):
        gen.step_seconds(tiny, 1, use_cache=True)
    with pytest.raises(ValueError, match="more than the model's context"):
        gen.step_seconds(tiny, 49, use_cache=False)


# The exercise checks of notebook 04e


def min_p_filter(logits, min_p):
    probabilities = torch.softmax(logits, dim=-1)
    threshold = min_p * probabilities.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probabilities < threshold, float("-inf"))


def raises(*args):
    raise RuntimeError("boom")


CASES = [
    (checks.check_kv_cache_bytes, None, "Not attempted yet", "an integer"),
    (checks.check_kv_cache_bytes, 188_743_680, "Correct", "3 key-value heads"),
    (checks.check_kv_cache_bytes, 3 * 188_743_680, "Not yet", "9 query heads"),
    (checks.check_kv_cache_bytes, 2 * 188_743_680, "Not yet", "float32"),
    (checks.check_kv_cache_bytes, 188_743_680 // 2, "Not yet", "keys and values"),
    (checks.check_kv_cache_bytes, 5, "Not yet", "layers"),
    (checks.check_uniform_perplexity, None, "Not attempted yet", "a number"),
    (checks.check_uniform_perplexity, 49_152, "Correct", "vocabulary"),
    (checks.check_uniform_perplexity, math.log(49_152), "Not yet", "the loss"),
    (checks.check_uniform_perplexity, 1.0, "Not yet", "certain"),
    (checks.check_uniform_perplexity, "many", "Not yet", "not a number"),
    (checks.check_min_p_filter, None, "Not attempted yet", "a function"),
    (checks.check_min_p_filter, min_p_filter, "Correct", "min-p"),
    (checks.check_min_p_filter, lambda logits, min_p: logits, "Not yet", "keeps every token"),
    (
        checks.check_min_p_filter,
        lambda logits, min_p: logits.masked_fill(torch.softmax(logits, -1) < min_p, -math.inf),
        "Not yet",
        "largest probability",
    ),
    (checks.check_min_p_filter, raises, "Not yet", "RuntimeError: boom"),
]


@pytest.mark.parametrize(("check", "answer", "start", "phrase"), CASES)
def test_exercise_checks(check, answer, start, phrase, capsys):
    check(answer)
    out = capsys.readouterr().out
    assert out.startswith(start), out
    assert phrase in out, out
