"""Benchmark: generating text with SmolLM2-135M-Instruct, with and without the KV cache.

Run from the repository root: ``python benchmarks/generation.py`` (``make bench`` runs it).
It loads the packaged model from its verified safetensors cache (building the cache first
if it is missing, outside the timing), formats one chat prompt with the model's chat
template, and generates 128 new tokens greedily with the hand-written loop of
``helpers.lessons.generation`` (the end token ignored, so both runs make all 128), once
reusing the key-value cache and once recomputing the whole sequence at every step, in one
process on one CPU thread (as notebook 04e runs). It fails if the two runs' tokens differ.
Figures (in the JSON object on the last line):

- ``gen_tokens_per_s_cached``, ``gen_tokens_per_s_uncached``: new tokens per second;
- ``kv_cache_speedup``: their ratio;
- ``smollm2_load_s``: wall time of ``llm_source()`` and ``load_llm()`` from the cache,
  including the SHA-256 check of its 0.5 GB of files (Python's one-time import of the
  Transformers modules they use is done before, and not counted).
"""

from __future__ import annotations

import json
import sys
import time

from helpers.assets import llm
from helpers.lessons import generation

NEW_TOKENS = 128
PROMPT = "Tell me a story about a robot who learns to paint."


def main() -> int:
    import torch
    import transformers

    torch.set_num_threads(1)
    llm.ensure_cache()  # a first run converts the GGUF here, before anything is timed
    # Import the modules loading uses (several seconds on a busy machine), so that the
    # timing below is the load itself: checking, reading and building the model.
    _ = (transformers.AutoTokenizer, transformers.AutoModelForCausalLM)
    _ = (transformers.LlamaForCausalLM, transformers.TokenizersBackend)
    start = time.perf_counter()
    tokenizer, model = llm.load_llm(llm.llm_source())
    load_s = time.perf_counter() - start
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    generation.generate_tokens(model, ids, 4)  # warm-up
    cached, cached_s = generation.time_generation(model, ids, NEW_TOKENS, use_cache=True)
    uncached, uncached_s = generation.time_generation(model, ids, NEW_TOKENS, use_cache=False)
    print(
        {
            "prompt_tokens": ids.shape[1],
            "new_tokens": NEW_TOKENS,
            "threads": torch.get_num_threads(),
            "start_of_the_text": tokenizer.decode(cached[0, :24], skip_special_tokens=True),
        }
    )
    same = torch.equal(cached, uncached)
    figures = {
        "gen_tokens_per_s_cached": round(NEW_TOKENS / cached_s, 2),
        "gen_tokens_per_s_uncached": round(NEW_TOKENS / uncached_s, 2),
        "kv_cache_speedup": round(uncached_s / cached_s, 2),
        "smollm2_load_s": round(load_s, 2),
    }
    if not same:
        print("error: the tokens generated with and without the cache differ", file=sys.stderr)
    print(json.dumps(figures))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
