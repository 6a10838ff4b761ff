"""How every exercise check speaks to the learner: one style for the whole book.

Belongs here: the verdicts a ``check_...`` function prints ("Not attempted yet", "Correct",
"Not yet ... Hint", and "Cannot check here ... Fix" when the check itself lacks what it
needs). A check never raises; it prints one of these. Nothing else lives here.
"""

from __future__ import annotations


def report_not_attempted(what: str) -> None:
    """Tell the learner the answer is still None and what to replace it with."""
    print(f"Not attempted yet: replace None with {what}, then run this cell again.")


def report_correct(message: str) -> None:
    """Tell the learner the answer is right, with what it shows."""
    print(f"Correct: {message}")


def report_not_yet(problem: str, hint: str) -> None:
    """Tell the learner what is wrong with the answer, and give a hint."""
    print(f"Not yet: {problem}. Hint: {hint}")


def report_cannot_check(problem: str, fix: str) -> None:
    """Tell the learner the check itself cannot run here (a missing model, say), and the fix."""
    print(f"Cannot check here: {problem}. Fix: {fix}")
