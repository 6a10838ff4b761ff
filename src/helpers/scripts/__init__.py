"""Runnable scripts that child processes start: training under launchers, and command lines.

Belongs here: scripts run as ``python -m helpers.scripts.NAME`` or under ``torchrun``,
``accelerate launch`` or ``TF_CONFIG`` workers, and the little they share. They live in
the package (not in a notebook cell, which a child process cannot import) so that they
are installed with the helpers, on Colab too. Each prints a JSON object of metrics as its
last line.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

FEATURES = 16  # inputs of the demos' synthetic regression task


def say(text: str) -> None:
    """Print one line in a single write, so that lines of concurrent processes stay whole.

    Args:
        text: The line, without its newline.
    """
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def regression_data(examples: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Make the demos' synthetic regression set ``y = tanh(x A) b + noise``, the same anywhere.

    Args:
        examples: Number of examples.
        seed: Seed of the generator (independent of the global seeds).

    Returns:
        Inputs (examples, 16) and targets (examples, 1), float32.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, FEATURES))
    a, b = rng.normal(size=(FEATURES, 8)) / 2, rng.normal(size=(8, 1))
    y = np.tanh(x @ a) @ b + 0.1 * rng.normal(size=(examples, 1))
    return x.astype(np.float32), y.astype(np.float32)


def training_parser(description: str, *, steps: int, batch_help: str) -> argparse.ArgumentParser:
    """Return a parser with the options every training demo takes.

    Args:
        description: The script's one-line description.
        steps: The default number of optimizer steps.
        batch_help: What ``--batch-size`` counts (per rank, per replica ...).

    Returns:
        The parser: ``--output-dir``, ``--steps``, ``--batch-size``, ``--lr`` and ``--seed``;
        a script adds its own options.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=32, help=batch_help)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    return parser
