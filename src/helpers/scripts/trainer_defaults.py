"""Two steps of ``Trainer`` on CPU processes, to see what two of its settings do under a launcher.

Usage: ``torchrun --nproc-per-node=2 -m helpers.scripts.trainer_defaults --output-dir DIR
[--use-cpu] [--no-average-tokens]``

A small BERT classifier with random weights (nothing is downloaded) takes two steps on
random token ids. ``TrainingArguments`` keeps its defaults except for the two flags:
``--use-cpu`` passes ``use_cpu=True``, and ``--no-average-tokens`` passes
``average_tokens_across_devices=False``. Every process prints one JSON line: its rank,
the world size and parallel mode that ``Trainer`` chose, and the training loss it
reports. A fresh two-class head predicts about 50/50, so that loss should be close to
ln 2 = 0.693.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from helpers.scripts import say


def main(argv: Sequence[str] | None = None) -> None:
    """Train two steps with the chosen settings and print what ``Trainer`` did.

    Args:
        argv: The command line; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--use-cpu", action="store_true", help="use_cpu=True")
    parser.add_argument(
        "--no-average-tokens", action="store_true", help="average_tokens_across_devices=False"
    )
    args = parser.parse_args(argv)
    import torch
    import transformers

    from helpers.lessons.scaling import tiny_bert_config

    transformers.set_seed(0)
    model = transformers.BertForSequenceClassification(tiny_bert_config(32, 1, vocab_size=500))
    ids = torch.randint(5, 500, (64, 16), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": row, "labels": int(row[0] % 2)} for row in ids]
    training = transformers.TrainingArguments(
        output_dir=str(args.output_dir),
        use_cpu=args.use_cpu,
        average_tokens_across_devices=not args.no_average_tokens,
        per_device_train_batch_size=8,
        max_steps=2,
        learning_rate=1e-4,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = transformers.Trainer(model=model, args=training, train_dataset=data)
    result = trainer.train()
    report = {
        "rank": int(os.environ.get("RANK", "0")),
        "world_size": training.world_size,
        "parallel_mode": training.parallel_mode.value,
        "train_loss": round(result.training_loss, 4),
    }
    say(json.dumps(report))


if __name__ == "__main__":
    main()
