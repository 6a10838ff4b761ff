"""Timing code fairly on a shared machine: warm up, repeat, report the median.

Belongs here: the one timing loop every measurement in the book uses. On a GPU the timed
function must synchronise before it returns for the time to be real.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Time ``fn`` several times and return the median wall time in seconds.

    The warm-up calls are not timed (they pay for one-off costs such as memory allocation or
    compilation). On a GPU, ``fn`` must synchronise before returning for the time to be
    real; ``measure_training_step`` does.

    Args:
        fn: A function of no arguments.
        repeats: Timed calls; the median resists a slow outlier on a shared machine.
        warmup: Untimed calls first.

    Returns:
        The median in seconds.

    Raises:
        ValueError: ``repeats`` is smaller than 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
