"""Benchmark: fine-tuning the packaged BERT-family model on the sentiment sentences.

Run from the repository root: ``python benchmarks/finetune.py`` (``make bench`` runs it).
It runs ``helpers.lessons.finetune.finetune_sentiment()`` with the recipe of notebook 04c: the
packaged all-MiniLM-L6-v2, sentences cut at 64 tokens and batched by length, 60 steps of
16 sentences (960 training sentences, one pass), AdamW at 1e-4, seed 0, in one process on
one CPU thread (a GPU when there is one). The model is saved to a temporary folder and
deleted. Figures (in the JSON object on the last line):

- ``finetune_test_acc``, ``finetune_test_f1``: accuracy and F1 (positive class) on the 596
  held-out test sentences;
- ``finetune_validation_acc``: accuracy on the 298 validation sentences;
- ``finetune_train_s``: wall time of ``Trainer.train()``, including the two validation
  passes (halfway and at the end).
"""

from __future__ import annotations

import json
import tempfile

from helpers.lessons import finetune


def main() -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as output_dir:
        metrics = finetune.finetune_sentiment(output_dir=output_dir)
    print({key: metrics[key] for key in ("train_steps", "train_size", "max_length", "seed")})
    figures = {
        "finetune_test_acc": metrics["test_accuracy"],
        "finetune_test_f1": metrics["test_f1"],
        "finetune_validation_acc": metrics["validation_accuracy"],
        "finetune_train_s": metrics["train_seconds"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
