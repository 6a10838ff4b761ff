"""Fine-tune the packaged MiniLM for sentiment from a shell, in one process or under a launcher.

Usage: ``python -m helpers.scripts.finetune_sentiment --output-dir DIR [--max-steps N]``

The recipe is chapter 4's ``helpers.lessons.finetune.finetune_sentiment``. It runs
unchanged under ``torchrun --nproc-per-node N`` and ``accelerate launch --num_processes N``:
``Trainer`` handles the distribution. Rank 0 prints the metrics as a JSON object on its
last line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

from helpers.lessons.finetune import MAX_LENGTH, MAX_STEPS, TRAIN_SIZE, finetune_sentiment
from helpers.scripts import say


def main(argv: list[str] | None = None) -> int:
    """Run ``finetune_sentiment`` from the command line; rank 0 prints the metrics as JSON.

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.

    Returns:
        The exit status, 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--model", default=None, help="a Hub name; default: the packaged model")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS)
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH)
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-eval", dest="eval", action="store_false", help="train only")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    # Only rank 0 writes to stdout, so the JSON line is the last line whatever the launcher.
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
    with quiet:
        metrics = finetune_sentiment(
            model=args.model,
            max_length=args.max_length,
            train_size=args.train_size,
            max_steps=args.max_steps,
            seed=args.seed,
            output_dir=args.output_dir,
            eval=args.eval,
        )
    if rank == 0:
        say(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
