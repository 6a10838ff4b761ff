"""Fine-tuning a pretrained BERT-family model for sentiment with Transformers' ``Trainer``.

Belongs here: the one fine-tuning recipe that chapter 4 teaches and chapters 5 and 6 reuse
(tokenising the sentiment sentences, ``TrainingArguments`` and ``Trainer`` in the
Transformers 5 API, accuracy and F1 on held-out sentences, saving the model and tokenizer as
safetensors), its command line, classifying new sentences with a saved model, and the
checks of notebook 04c's exercises. The command line runs unchanged in one process, under
``torchrun --nproc-per-node N`` and under ``accelerate launch --multi_gpu --num_processes N``:
``Trainer`` handles the distribution, over GPUs or (without one) CPU processes with gloo.
(In Accelerate 1.15, ``accelerate launch --cpu --num_processes N`` starts one process.)

Usage: python -m helpers.scripts.finetune_sentiment --output-dir DIR [--max-steps N]
[--train-size N] [--model M] [--seed S] [--no-eval]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.assets.data import SENTIMENT_LABELS, TextSplit, load_sentiment
from helpers.assets.models import ModelSource, load_text_model, text_model_source

if TYPE_CHECKING:
    import transformers

# The recipe of chapter 4: 60 steps of 16 sentences, about 40 s of training on one CPU core.
MAX_LENGTH = 64
TRAIN_SIZE = 960
MAX_STEPS = 60
EPOCHS = 1.0
BATCH_SIZE = 16
LEARNING_RATE = 1e-4
EVAL_BATCH_SIZE = 64


def binary_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """Return the accuracy and the F1 score of the positive class (label 1).

    Args:
        labels: True labels, 0 or 1.
        predictions: Predicted labels, 0 or 1, as many as ``labels``.

    Returns:
        ``{"accuracy": ..., "f1": ...}``; F1 is 0 when there is no true or predicted positive.

    Raises:
        ValueError: The two have different lengths or are empty.
    """
    y, p = np.asarray(labels), np.asarray(predictions)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} must match, non-empty.")
    true_positives = int(np.sum((p == 1) & (y == 1)))
    denominator = int(np.sum(p == 1) + np.sum(y == 1))
    f1 = 2 * true_positives / denominator if denominator else 0.0
    return {"accuracy": float(np.mean(y == p)), "f1": float(f1)}


class SentenceDataset:
    """A map-style dataset of tokenised sentences and their labels, as ``Trainer`` wants it."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: np.ndarray) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = int(self.labels[index])
        return item


def encode(
    tokenizer: Any, split: TextSplit, max_length: int, limit: int | None = None
) -> SentenceDataset:
    """Tokenise the first ``limit`` sentences of a split, cut to ``max_length`` tokens.

    Padding is left to the data collator, which pads each batch to its longest sentence.

    Args:
        tokenizer: The model's tokenizer.
        split: Sentences and labels from ``helpers.assets.data.load_sentiment``.
        max_length: Longest tokenised sentence kept, special tokens included.
        limit: How many sentences to use; None for all.

    Returns:
        The ``SentenceDataset``.
    """
    texts, labels = split.texts[:limit], split.labels[:limit]
    return SentenceDataset(dict(tokenizer(texts, truncation=True, max_length=max_length)), labels)


def model_source(model: str | None = None) -> ModelSource:
    """Return where the model comes from: the packaged one, or a Hub name.

    Args:
        model: None for the packaged all-MiniLM-L6-v2 (``helpers.text_model_source()``),
            or a Hugging Face Hub name such as ``"bert-base-uncased"`` (downloaded on first
            use, then read from the local cache).

    Returns:
        The ``ModelSource``; prints one line naming it.
    """
    if model is None:
        return text_model_source()
    print(f"Text model: {model} from the Hugging Face Hub (or its local cache)")
    return ModelSource(location=model, origin="Hugging Face Hub", verified=False)


def training_arguments(
    output_dir: str | Path,
    *,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    max_steps: int = MAX_STEPS,
    epochs: float = EPOCHS,
    seed: int = 0,
    eval: bool = True,
) -> transformers.TrainingArguments:
    """Return the ``TrainingArguments`` of chapter 4's recipe (notebook 04c writes them out).

    Args:
        output_dir: Where Trainer's files go.
        batch_size: Sentences per step on each process.
        learning_rate: AdamW's peak learning rate.
        max_steps: Optimizer steps; -1 to train for ``epochs`` instead.
        epochs: Passes over the training sentences when ``max_steps`` is -1.
        seed: Seed of the head's initialisation and of the data order.
        eval: Evaluate halfway and at the end.

    Returns:
        The arguments.
    """
    import torch
    import transformers

    return transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        learning_rate=learning_rate,
        weight_decay=0.01,
        warmup_steps=0.1,
        num_train_epochs=epochs,
        max_steps=max_steps,
        eval_strategy="steps" if eval else "no",
        eval_steps=0.5,
        logging_strategy="steps",
        logging_steps=0.1,
        save_strategy="no",
        report_to="none",
        train_sampling_strategy="group_by_length",  # batches of similar lengths: less padding
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Under torchrun without a GPU, Trainer distributes over CPU processes only when told
        # to use the CPU (accelerate launch --cpu says so itself).
        use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        # BERT's classification loss is a plain mean over the process's batch. With the default
        # True, Trainer multiplies it by the number of processes (meant for token-count
        # losses), which doubles the gradients under 2 processes; DDP's averaging is right.
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,  # every parameter takes part in the forward pass
        push_to_hub=False,
    )


def finetune_sentiment(
    *,
    model: str | None = None,
    max_length: int = MAX_LENGTH,
    train_size: int | None = TRAIN_SIZE,
    max_steps: int = MAX_STEPS,
    epochs: float = EPOCHS,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    seed: int = 0,
    output_dir: str | Path,
    eval: bool = True,
    prepare_model: Callable[[Any], Any] | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Fine-tune a BERT-family model on the sentiment sentences with ``Trainer``.

    The sentences come from ``helpers.assets.data.load_sentiment()`` (split with seed 0, so every
    run sees the same held-out sentences); the first ``train_size`` training sentences are
    used. Sentences are cut to ``max_length`` tokens and padded per batch. Training runs
    ``max_steps`` optimizer steps (or ``epochs`` passes when ``max_steps`` is -1) with AdamW,
    linear decay and 10% warm-up, evaluating on the validation split halfway and at the end.
    The model and tokenizer are saved as safetensors in ``output_dir``. Under ``torchrun`` or
    ``accelerate launch`` each process trains on its share of every batch of
    ``batch_size`` per process.

    Args:
        model: A Hugging Face Hub name such as ``"bert-base-uncased"``, or None for the
            packaged all-MiniLM-L6-v2 (``helpers.text_model_source()``).
        max_length: Longest tokenised sentence kept, in tokens (the rest is cut).
        train_size: How many training sentences to use; None for all.
        max_steps: Optimizer steps; -1 to train for ``epochs`` instead.
        epochs: Passes over the training sentences when ``max_steps`` is -1.
        batch_size: Sentences per step on each process.
        learning_rate: AdamW's peak learning rate.
        seed: Seed of the new classification head and the data order.
        output_dir: Where the model, the tokenizer and Trainer's files go.
        eval: Evaluate on the validation and test splits (False measures training alone).
        prepare_model: Called with the loaded classifier before training; returns the model
            to train (chapter 5 adds LoRA adapters this way). None trains every weight.
        callbacks: ``transformers.TrainerCallback`` objects passed to ``Trainer``.

    Returns:
        ``model``, ``max_length``, ``train_size``, ``train_steps``, ``batch_size``,
        ``world_size``, ``seed``, ``train_seconds`` and ``train_loss``; with ``eval``,
        also ``validation_accuracy``, ``validation_f1``, ``test_accuracy``, ``test_f1`` and
        ``test_size``.

    Raises:
        ValueError: A size or step count is not positive.
    """
    if max_length < 2 or batch_size < 1 or (train_size is not None and train_size < 1):
        raise ValueError(
            f"max_length={max_length}, batch_size={batch_size} and train_size={train_size} "
            "must be positive (max_length at least 2, for the special tokens)."
        )
    if max_steps == 0 or max_steps < -1:
        raise ValueError(f"max_steps={max_steps} must be positive, or -1 to use epochs.")
    import transformers

    transformers.set_seed(seed)
    data = load_sentiment(seed=0)
    source = model_source(model)
    tokenizer, classifier = load_text_model(
        source,
        task="sequence-classification",
        num_labels=2,
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id={name: i for i, name in enumerate(SENTIMENT_LABELS)},
    )
    if prepare_model is not None:
        classifier = prepare_model(classifier)
    train = encode(tokenizer, data.train, max_length, train_size)
    validation = encode(tokenizer, data.validation, max_length)
    args = training_arguments(
        output_dir,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_steps=max_steps,
        epochs=epochs,
        seed=seed,
        eval=eval,
    )

    def compute_metrics(prediction: transformers.EvalPrediction) -> dict[str, float]:
        return binary_metrics(prediction.label_ids, np.argmax(prediction.predictions, axis=-1))

    trainer = transformers.Trainer(
        model=classifier,
        args=args,
        train_dataset=train,
        eval_dataset=validation if eval else None,
        processing_class=tokenizer,
        data_collator=transformers.DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=list(callbacks),
    )
    start = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {
        "model": model or source.location,
        "max_length": max_length,
        "train_size": len(train),
        "train_steps": result.global_step,
        "batch_size": batch_size,
        "world_size": args.world_size,
        "seed": seed,
        "train_seconds": round(train_seconds, 2),
        "train_loss": round(result.training_loss, 4),
    }
    if eval:
        scores = [entry for entry in trainer.state.log_history if "eval_accuracy" in entry][-1]
        test = encode(tokenizer, data.test, max_length)
        test_scores = trainer.evaluate(test, metric_key_prefix="test")
        metrics |= {
            "validation_accuracy": round(scores["eval_accuracy"], 4),
            "validation_f1": round(scores["eval_f1"], 4),
            "test_accuracy": round(test_scores["test_accuracy"], 4),
            "test_f1": round(test_scores["test_f1"], 4),
            "test_size": len(test),
        }
    trainer.save_model(str(output_dir))
    return metrics


def classify(model_dir: str | Path, sentences: Sequence[str]) -> list[tuple[str, float]]:
    """Classify sentences with a fine-tuned model saved by ``finetune_sentiment``.

    Args:
        model_dir: The ``output_dir`` of a run.
        sentences: The sentences.

    Returns:
        ``(label, probability of that label)`` for each sentence.
    """
    import torch
    import transformers

    options = {"local_files_only": True, "trust_remote_code": False}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), **options)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), **options
    ).eval()
    batch = tokenizer(list(sentences), padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(model(**batch).logits, dim=-1)
    best = probabilities.argmax(dim=-1)
    return [
        (model.config.id2label[int(i)], float(probabilities[row, i])) for row, i in enumerate(best)
    ]


# Checks for the exercises of notebook 04c (wording as in helpers.checks.ch03).
