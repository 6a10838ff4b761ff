"""Benchmark: LoRA fine-tuning of the packaged MiniLM, and LoRA SFT of SmolLM2 (chapter 5).

Run from the repository root: ``python benchmarks/lora.py`` (``make bench`` runs it). It
repeats what notebooks 05d and 05e measure, in one process:

- the MiniLM sentiment classifier fine-tuned with chapter 4's recipe
  (``finetune_sentiment``: 60 steps of 16 sentences of at most 64 tokens, seed 0), once in
  full at a learning rate of 1e-4 and once with PEFT's LoRA (rank 8, alpha 16, query and
  value; the new head trained in full) at 2e-3, on one CPU thread (a GPU when there is one);
- SmolLM2-135M-Instruct taught to answer "positive" or "negative" in one word: 8 steps of 8
  chat conversations with the prompt masked (labels -100), LoRA rank 8 on the query and
  value projections, scored on the first 100 test sentences before and after, on one thread.

Figures (in the JSON object on the last line):

- ``lora_test_acc``: LoRA's accuracy on the 596 test sentences, at most 64 tokens each
  (``lora_full_test_acc``: the full fine-tune's, same run);
- ``lora_trainable_fraction``: trainable parameters / all parameters of the LoRA model;
- ``lora_optimizer_state_ratio``: bytes of AdamW's state, full fine-tune / LoRA;
- ``lora_train_s``: wall time of LoRA's ``Trainer.train()`` (the recipe's validation
  passes are off; ``lora_full_train_s``: the full fine-tune's);
- ``sft_task_acc_before``, ``sft_task_acc_after``: share of the 100 held-out sentences whose
  reply names the right label, before and after (``..._low``/``..._high``: 95% Wilson
  interval);
- ``sft_train_s``: wall time of the SFT ``Trainer.train()``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path


def tokenizer_of(folder: Path) -> object:
    """Load the tokenizer that ``finetune_sentiment`` saved with the model."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def minilm(workdir: Path) -> dict[str, float]:
    """Fine-tune MiniLM in full and with LoRA; return the comparison's figures."""
    import torch

    from helpers.assets.data import load_sentiment
    from helpers.lessons import lora, quantization
    from helpers.lessons.finetune import finetune_sentiment

    torch.set_num_threads(1)
    test = load_sentiment(seed=0).test
    runs = {}
    for name, prepare, rate in (
        ("full", None, 1e-4),
        ("lora", lambda m: lora.peft_lora_model(m, task_type="SEQ_CLS"), 2e-3),
    ):
        recorder = lora.training_recorder()
        metrics = finetune_sentiment(
            output_dir=workdir / name,
            learning_rate=rate,
            prepare_model=prepare,
            callbacks=[recorder],
            eval=False,
        )
        accuracy = quantization.accuracy(
            recorder.model.eval(), tokenizer_of(workdir / name), test.texts, test.labels
        )
        runs[name] = (metrics | {"test_accuracy": round(accuracy, 4)}, recorder.result)
    (full, full_cost), (low, low_cost) = runs["full"], runs["lora"]
    return {
        "lora_test_acc": low["test_accuracy"],
        "lora_full_test_acc": full["test_accuracy"],
        "lora_trainable_fraction": round(
            low_cost["trainable_parameters"] / low_cost["total_parameters"], 5
        ),
        "lora_optimizer_state_ratio": round(
            full_cost["optimizer_state_bytes"] / low_cost["optimizer_state_bytes"], 1
        ),
        "lora_train_s": low["train_seconds"],
        "lora_full_train_s": full["train_seconds"],
    }


def sft(workdir: Path) -> dict[str, float]:
    """Teach SmolLM2 the one-word sentiment answer with LoRA; return before/after figures."""
    import time

    import torch
    import transformers

    from helpers.assets import llm
    from helpers.assets.data import load_sentiment
    from helpers.lessons import lora

    torch.set_num_threads(1)
    tokenizer, model = llm.load_llm()
    data = load_sentiment(seed=0)
    held_texts = data.test.texts[: lora.SFT_HELD_OUT]
    held_labels = data.test.labels[: lora.SFT_HELD_OUT]
    before = lora.task_accuracy(model, tokenizer, held_texts, held_labels)
    n_train = lora.SFT_STEPS * lora.SFT_BATCH_SIZE
    examples = lora.sentiment_examples(
        tokenizer, data.train.texts[:n_train], data.train.labels[:n_train]
    )
    transformers.set_seed(0)  # the adapter's random A, as in notebook 05e
    adapted = lora.peft_lora_model(model, task_type="CAUSAL_LM")
    trainer = lora.sft_trainer(adapted, tokenizer, examples, output_dir=workdir / "sft")
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    adapted.eval()
    after = lora.task_accuracy(adapted, tokenizer, held_texts, held_labels)
    return {
        "sft_task_acc_before": before["accuracy"],
        "sft_task_acc_before_low": round(before["interval"][0], 4),
        "sft_task_acc_before_high": round(before["interval"][1], 4),
        "sft_task_acc_after": after["accuracy"],
        "sft_task_acc_after_low": round(after["interval"][0], 4),
        "sft_task_acc_after_high": round(after["interval"][1], 4),
        "sft_train_s": round(train_seconds, 2),
    }


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated")
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as folder:
        figures = minilm(Path(folder)) | sft(Path(folder))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
