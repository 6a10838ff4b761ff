"""Generating text with a causal language model, by hand: decoding, the KV cache, perplexity.

Belongs here: the reference code of notebook 04e. The logits processors (temperature,
top-k, top-p) as functions of a ``(batch, vocabulary)`` tensor of logits, choosing the next
token (greedy or sampled with a seeded generator), the decoding loop with and without the
key-value cache (``cache`` in Transformers 5.24, ``past_key_values`` in 5.15), the size of
that cache from a model's configuration and from its tensors, the next-token loss and
perplexity, and the timings the notebook and the benchmark report. Each function checks
its input and raises a ``ValueError`` naming the cause. torch is imported inside the
functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from helpers.runtime.timing import median_seconds

if TYPE_CHECKING:
    import torch


def check_decoding_options(
    do_sample: bool, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> None:
    """Check the decoding knobs, the same way for greedy decoding and for sampling.

    Args:
        do_sample: Sample from the distribution (True) or take the most likely token.
        temperature: Divides the logits; must be > 0 when sampling.
        top_k: Keep the k most likely tokens; an integer >= 1, or None for all.
        top_p: Keep the smallest set of tokens with probability mass >= p, p in (0, 1].

    Raises:
        ValueError: Naming the knob that is out of range.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None for no limit), not {top_k!r}.")
    if top_p is not None and not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (or None for no limit), not {top_p!r}.")
    if not isinstance(temperature, int | float) or math.isnan(temperature):
        raise ValueError(f"temperature must be a number, not {temperature!r}.")
    if do_sample and temperature <= 0:
        raise ValueError(
            f"temperature must be > 0 when sampling, not {temperature!r}; as it goes to 0, "
            "sampling becomes greedy decoding: use do_sample=False for that."
        )


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by the temperature: below 1 sharpens the distribution, above 1 flattens.

    Args:
        logits: ``(..., vocabulary)`` scores.
        temperature: A number > 0.

    Returns:
        The scaled logits (a new tensor).

    Raises:
        ValueError: ``temperature`` <= 0.
    """
    check_decoding_options(True, temperature=temperature)
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row and set the others to minus infinity.

    Tokens tied with the k-th largest logit are all kept (as Transformers does); k larger
    than the vocabulary keeps everything.

    Args:
        logits: ``(..., vocabulary)`` scores.
        k: How many tokens to keep, >= 1.

    Returns:
        The filtered logits (a new tensor).

    Raises:
        ValueError: ``k`` is not an integer >= 1.
    """
    import torch

    check_decoding_options(False, top_k=k)
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least p.

    This is nucleus sampling's filter: tokens are taken from the most likely down, and a
    token is kept while the mass of the tokens before it is still below p, so the most
    likely token is always kept. The rest are set to minus infinity.

    Args:
        logits: ``(..., vocabulary)`` scores.
        p: The probability mass to cover, in (0, 1]; 1 keeps every token.

    Returns:
        The filtered logits (a new tensor).

    Raises:
        ValueError: ``p`` is outside (0, 1].
    """
    import torch

    check_decoding_options(False, top_p=p)
    if p == 1:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probabilities = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probabilities, dim=-1) - probabilities
    remove_sorted = mass_before >= p
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def process_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Apply temperature, then top-k, then top-p, in the order Transformers' ``generate`` does.

    Args:
        logits: ``(..., vocabulary)`` scores.
        temperature: > 0.
        top_k: Keep the k most likely, or None.
        top_p: Keep the nucleus of mass p, or None.

    Returns:
        The processed logits.

    Raises:
        ValueError: A knob is out of range.
    """
    check_decoding_options(True, temperature, top_k, top_p)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def choose_next_token(
    logits: torch.Tensor,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row: the argmax (greedy), or a sample from the processed softmax.

    Args:
        logits: ``(batch, vocabulary)`` scores of the next token.
        do_sample: Sample instead of taking the argmax.
        temperature: > 0 when sampling.
        top_k: Keep the k most likely tokens before sampling, or None.
        top_p: Keep the nucleus of mass p before sampling, or None.
        generator: A seeded ``torch.Generator`` that makes sampling reproducible.

    Returns:
        ``(batch,)`` token ids (int64).

    Raises:
        ValueError: A knob is out of range, or ``logits`` is not 2-dimensional.
    """
    import torch

    check_decoding_options(do_sample, temperature, top_k, top_p)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, vocabulary), not {tuple(logits.shape)}.")
    if not do_sample:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(process_logits(logits.float(), temperature, top_k, top_p), -1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


def cache_argument(model: Any) -> str:
    """Return the name of the model's key-value cache argument and output field.

    Transformers 5.24 calls it ``cache``; 5.15 (Colab's at the time of writing) calls it
    ``past_key_values``, which 5.24 still accepts with a deprecation warning.

    Args:
        model: A Transformers causal language model.

    Returns:
        ``"cache"`` or ``"past_key_values"``.
    """
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def context_length(model: Any) -> int:
    """Return how many positions the model was trained for (``max_position_embeddings``).

    Args:
        model: A Transformers causal language model.

    Returns:
        The context length in tokens.
    """
    return int(model.config.max_position_embeddings)


def check_prompt_fits(model: Any, prompt_length: int, max_new_tokens: int) -> None:
    """Check that the prompt and the tokens to generate fit in the model's context.

    Args:
        model: A Transformers causal language model.
        prompt_length: Tokens in the prompt.
        max_new_tokens: Tokens to generate, >= 0.

    Raises:
        ValueError: The prompt is empty, longer than the context, or leaves too little room.
    """
    context = context_length(model)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, not {max_new_tokens}.")
    if prompt_length < 1:
        raise ValueError("The prompt is empty: give the model at least one token.")
    if prompt_length > context:
        raise ValueError(
            f"The prompt has {prompt_length:,} tokens, more than the model's context of "
            f"{context:,}: shorten it (or keep only its last {context:,} tokens)."
        )
    if prompt_length + max_new_tokens > context:
        raise ValueError(
            f"The prompt ({prompt_length:,} tokens) plus max_new_tokens ({max_new_tokens:,}) "
            f"exceeds the model's context of {context:,}: ask for at most "
            f"{context - prompt_length:,} new tokens."
        )


def generate_tokens(
    model: Any,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    attention_mask: torch.Tensor | None = None,
    use_cache: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> torch.Tensor:
    """Generate tokens one at a time, with or without the key-value cache.

    Without the cache, every step runs the model on the whole sequence so far. With it, the
    first step runs on the prompt and returns the cache (each layer's keys and values;
    ``past_key_values`` in Transformers 5.15), and every later step runs on the one new
    token only. With an attention mask (left padding for a batch), positions are counted
    from each row's first real token, as ``generate`` does. A row that produced
    ``eos_token_id`` is finished: it receives ``pad_token_id`` from then on, and the loop
    stops when every row is finished.

    Args:
        model: A Transformers causal language model (eval mode).
        input_ids: ``(batch, prompt length)`` token ids.
        max_new_tokens: How many tokens to generate at most.
        attention_mask: ``(batch, prompt length)``, 1 for real tokens, 0 for (left) padding.
        use_cache: Reuse the keys and values of earlier positions.
        do_sample: Sample instead of greedy decoding.
        temperature: > 0 when sampling.
        top_k: Keep the k most likely tokens before sampling, or None.
        top_p: Keep the nucleus of mass p before sampling, or None.
        seed: Seeds the sampling generator (the same seed gives the same tokens).
        eos_token_id: The end-of-sequence token, or None to always generate
            ``max_new_tokens``.
        pad_token_id: Written after a row's end; ``eos_token_id`` when None.

    Returns:
        ``(batch, new tokens)`` int64 ids, the prompt not included.

    Raises:
        ValueError: A decoding knob is out of range, the prompt does not fit in the context,
            or the mask's shape differs from the ids'.
    """
    import torch

    check_decoding_options(do_sample, temperature, top_k, top_p)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length), not {tuple(input_ids.shape)}.")
    check_prompt_fits(model, input_ids.shape[1], max_new_tokens)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    elif attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} must have the shape of input_ids "
            f"{tuple(input_ids.shape)}."
        )
    generator = None
    if do_sample:
        generator = torch.Generator(device=input_ids.device)
        generator.manual_seed(0 if seed is None else seed)
    pad = eos_token_id if pad_token_id is None else pad_token_id
    device = input_ids.device
    ids, mask = input_ids, attention_mask.to(device)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)
    past, new_tokens, cache_name = None, [], cache_argument(model)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            if past is None:  # the whole sequence (every step without the cache)
                step_ids, step_positions = ids, positions
            else:  # only the newest token, its keys and values joining the cache
                step_ids, step_positions = ids[:, -1:], positions[:, -1:]
            output = model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_positions,
                use_cache=use_cache,
                **{cache_name: past},
            )
            if use_cache:
                past = getattr(output, cache_name)
            token = choose_next_token(
                output.logits[:, -1, :],
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            if eos_token_id is not None:
                token = torch.where(finished, torch.full_like(token, pad), token)
                finished |= token == eos_token_id
            new_tokens.append(token)
            ids = torch.cat([ids, token[:, None]], dim=-1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            if eos_token_id is not None and bool(finished.all()):
                break
    if not new_tokens:
        return torch.empty((ids.shape[0], 0), dtype=torch.long, device=device)
    return torch.stack(new_tokens, dim=1)


def kv_cache_bytes(config: Any, tokens: int, batch_size: int = 1, bytes_per_value: int = 4) -> int:
    """Return the size of the key-value cache from a model's configuration.

    Each layer keeps a key and a value vector per key-value head and per token:
    layers x KV heads x head size x tokens x 2 (keys and values) x batch x bytes. With
    grouped-query attention there are fewer key-value heads than query heads.

    Args:
        config: A Transformers config with ``num_hidden_layers``, ``hidden_size``,
            ``num_attention_heads`` and optionally ``num_key_value_heads``, ``head_dim``.
        tokens: Positions held in the cache, >= 0.
        batch_size: Sequences, >= 1.
        bytes_per_value: 4 for float32, 2 for bfloat16 or float16.

    Returns:
        Bytes.

    Raises:
        ValueError: A count is negative or zero where it must not be.
    """
    if tokens < 0 or batch_size < 1 or bytes_per_value < 1:
        raise ValueError(
            f"tokens must be >= 0 and batch_size, bytes_per_value >= 1; got {tokens}, "
            f"{batch_size}, {bytes_per_value}."
        )
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return (
        config.num_hidden_layers * kv_heads * head_dim * tokens * 2 * batch_size * bytes_per_value
    )


def cache_tensor_bytes(past_key_values: Any) -> int:
    """Return the bytes held by the key and value tensors of a Transformers cache.

    Args:
        past_key_values: A ``DynamicCache`` (Transformers 5: ``.layers``, each with ``.keys``
            and ``.values``) or the older tuple of ``(keys, values)`` per layer.

    Returns:
        Bytes.
    """
    layers = getattr(past_key_values, "layers", None)
    pairs = (
        [(layer.keys, layer.values) for layer in layers] if layers is not None else past_key_values
    )
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in pairs)


def token_losses(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Return the negative log-likelihood of each next token (the causal LM loss, per token).

    Position t predicts token t + 1: the logits drop their last position and the labels
    their first (the shift). Positions whose input or target is padding get NaN.

    Args:
        logits: ``(batch, length, vocabulary)``.
        input_ids: ``(batch, length)``.
        attention_mask: ``(batch, length)``, 1 for real tokens; None for all real.

    Returns:
        ``(batch, length - 1)`` losses in nats.

    Raises:
        ValueError: The shapes do not agree, or a sequence has fewer than 2 tokens.
    """
    import torch

    if logits.shape[:2] != input_ids.shape or input_ids.shape[1] < 2:
        raise ValueError(
            f"logits {tuple(logits.shape)} must be (batch, length, vocabulary) for input_ids "
            f"{tuple(input_ids.shape)}, with length >= 2."
        )
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    losses = -log_probs.gather(-1, targets[..., None]).squeeze(-1)
    if attention_mask is not None:  # a pad as the input or as the target: not scored
        padded = (attention_mask[:, :-1] == 0) | (attention_mask[:, 1:] == 0)
        losses = losses.masked_fill(padded, float("nan"))
    return losses


def perplexities(model: Any, tokenizer: Any, texts: Sequence[str]) -> list[float]:
    """Return each text's perplexity under the model: exp(mean next-token loss).

    The texts run as one padded batch; the attention mask hides the padding and positions
    are counted from each text's first token, so every text scores as it would alone. The
    first token of a text is given, every later token predicted.

    Args:
        model: A Transformers causal language model.
        tokenizer: Its tokenizer (with a padding token).
        texts: Texts of at least 2 tokens each.

    Returns:
        One perplexity per text.

    Raises:
        ValueError: No texts, a text of fewer than 2 tokens, or one that does not fit in
            the context.
    """
    import torch

    if isinstance(texts, str) or not texts:
        raise ValueError("texts must be a non-empty list of strings.")
    batch = tokenizer(list(texts), return_tensors="pt", padding=True).to(model.device)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for text, length in zip(texts, mask.sum(-1).tolist(), strict=True):
        if length < 2:
            raise ValueError(f"{text!r} has {length} token; perplexity needs 2 or more.")
        check_prompt_fits(model, length, 0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    losses = token_losses(logits, ids, mask)
    return [math.exp(float(row.nanmean())) for row in losses]


def entropy_bits(logits: torch.Tensor) -> torch.Tensor:
    """Return the entropy, in bits, of the softmax of each row of logits (-inf allowed).

    Args:
        logits: ``(..., vocabulary)``.

    Returns:
        ``(...)`` entropies.
    """
    import torch

    log_p = torch.log_softmax(logits.float(), dim=-1)
    p = log_p.exp()
    return -(torch.where(p > 0, p * log_p, torch.zeros_like(p))).sum(-1) / math.log(2)


def time_generation(
    model: Any, input_ids: torch.Tensor, max_new_tokens: int, *, use_cache: bool
) -> tuple[torch.Tensor, float]:
    """Generate greedily (ignoring the end token) and time it.

    Args:
        model: A causal language model.
        input_ids: ``(1, prompt length)``.
        max_new_tokens: Exactly this many tokens are generated.
        use_cache: With or without the key-value cache.

    Returns:
        ``(new token ids, seconds)``.
    """
    _synchronize(input_ids)
    start = time.perf_counter()
    tokens = generate_tokens(model, input_ids, max_new_tokens, use_cache=use_cache)
    _synchronize(tokens)
    return tokens, time.perf_counter() - start


def _synchronize(tensor: torch.Tensor) -> None:
    """Wait for the GPU's queued work (a no-op on a CPU), so that timings are true."""
    import torch

    if tensor.device.type == "cuda":
        torch.cuda.synchronize(tensor.device)


def step_seconds(model: Any, context: int, *, use_cache: bool, repeats: int = 3) -> float:
    """Time one decoding step at a given context length, with or without the cache.

    Without the cache, a step is a forward pass over all ``context`` tokens; with it, a
    forward pass over one token whose ``context - 1`` predecessors are cached (the cache is
    cropped back after each run). Random token ids are used: speed does not depend on
    which tokens. Timed with ``helpers.runtime.timing.median_seconds``.

    Args:
        model: A causal language model.
        context: Tokens in the sequence at this step, >= 2.
        use_cache: With or without the cache.
        repeats: Timed runs; the median is returned.

    Returns:
        Seconds per step.

    Raises:
        ValueError: ``context`` is below 2 or beyond the model's context.
    """
    import torch

    if context < 2:
        raise ValueError(f"context must be >= 2, not {context}.")
    check_prompt_fits(model, context, 0)
    ids = torch.randint(
        0, model.config.vocab_size, (1, context), generator=torch.Generator().manual_seed(0)
    ).to(model.device)
    name = cache_argument(model)
    with torch.no_grad():
        if not use_cache:
            return median_seconds(
                lambda: _synchronize(model(ids, use_cache=False).logits),
                repeats=repeats,
                warmup=0,  # a full forward pass costs as much as a timed one
            )
        cache = getattr(model(ids[:, :-1], use_cache=True), name)

        def cached_step() -> None:
            logits = model(ids[:, -1:], use_cache=True, **{name: cache}).logits
            cache.crop(-1)  # remove the position this step appended
            _synchronize(logits)

        return median_seconds(cached_step, repeats=repeats, warmup=1)
