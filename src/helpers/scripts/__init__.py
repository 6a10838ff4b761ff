"""Runnable scripts that child processes start: training under launchers, and command lines.

Belongs here: scripts run as ``python -m helpers.scripts.NAME`` or under ``torchrun``,
``accelerate launch`` or ``TF_CONFIG`` workers, and the little they share. They live in
the package (not in a notebook cell, which a child process cannot import) so that they
are installed with the helpers, on Colab too. Each prints a JSON object of metrics as its
last line.
"""

import sys


def say(text: str) -> None:
    """Print one line in a single write, so that lines of concurrent processes stay whole.

    Args:
        text: The line, without its newline.
    """
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
