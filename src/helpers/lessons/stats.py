"""How sure a measured accuracy is: the interval a single run's test count allows.

Belongs here: small statistics that the chapters print beside a measured figure, such as
the 95% interval of an accuracy measured once, on a finite test set. NumPy-free and
framework-free.
"""

from __future__ import annotations

import math


def accuracy_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval (95% by default) of an accuracy ``correct / total``.

    The interval says which true accuracies are consistent with the count, for one trained
    model scored on ``total`` independent examples; it does not cover the spread between
    training runs with other seeds.

    Args:
        correct: How many examples were right.
        total: How many examples were scored.
        z: The standard normal quantile of the confidence level (1.96 for 95%).

    Returns:
        ``(low, high)``, within [0, 1].

    Raises:
        ValueError: ``total`` is not positive, ``correct`` is outside 0..total, or ``z`` is
            not positive.
    """
    if int(total) != total or int(correct) != correct:
        raise ValueError(f"correct and total must be whole counts (got {correct}/{total}).")
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1 (got {correct}/{total}).")
    if not z > 0:
        raise ValueError(f"z must be positive (got {z}).")
    p = correct / total
    scale = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / scale
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def format_accuracy(correct: int, total: int) -> str:
    """Return an accuracy with its 95% interval as text, e.g. ``0.912 (95% CI 0.884-0.934)``.

    Args:
        correct: How many examples were right.
        total: How many examples were scored.

    Returns:
        The text.
    """
    low, high = accuracy_interval(correct, total)
    return f"{correct / total:.3f} (95% CI {low:.3f}-{high:.3f})"
