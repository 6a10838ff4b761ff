"""What one training step of chapter 4's MLP costs: FLOPs counted and seconds measured.

Belongs here: the exact FLOP count of a dense network's training step, the measured time of
a bare PyTorch step and of an Adam update, and this machine's dense matrix-multiply speed,
which notebook 04d combines into the fraction of peak that a small MLP reaches. torch is
imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from helpers.lessons.mlp import BATCH_SIZE, LAYER_SIZES, LEARNING_RATE, build_torch_mlp


def step_flops(batch_size: int, sizes: Sequence[int] = LAYER_SIZES) -> int:
    """Return the multiply-add FLOPs of one training step of a dense network.

    Forward, each weight costs 2 FLOPs per example (a multiply and an add). Backward, the
    gradient with respect to each weight costs 2 more, and the gradient with respect to
    each layer's input 2 more, except for the first layer, whose input is the data and
    needs no gradient. Biases, activations, the loss and the optimizer add a few percent
    and are not counted.

    Args:
        batch_size: Examples per step (B).
        sizes: Layer widths, input first.

    Returns:
        ``6 * B * P - 2 * B * sizes[0] * sizes[1]``, with P the number of weights.
    """
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 6 * batch_size * weights - 2 * batch_size * sizes[0] * sizes[1]


def torch_step_seconds(
    batch_size: int, steps: int = 200, repeats: int = 5, sizes: Sequence[int] = LAYER_SIZES
) -> float:
    """Time one bare PyTorch training step of an MLP (Adam, one fixed batch, no data loading).

    Args:
        batch_size: Examples per step.
        steps: Steps per timed run.
        repeats: Timed runs; the median is returned.
        sizes: Layer widths, input first; the chapter's MLP by default.

    Returns:
        Seconds per step (median over the runs).
    """
    import torch

    torch.manual_seed(0)
    model = build_torch_mlp(dropout=0.0, sizes=sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    x, y = torch.rand(batch_size, sizes[0]), torch.randint(0, sizes[-1], (batch_size,))

    def run(count: int) -> None:
        for _ in range(count):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    run(10)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - start) / steps)
    return float(np.median(times))


def torch_adam_update_seconds(fused: bool = False, repeats: int = 200) -> float:
    """Time Adam's update of the MLP's parameters alone, after one backward pass.

    Args:
        fused: Use PyTorch's fused implementation (one pass over all parameters) instead of
            the default one (several small operations per parameter tensor).
        repeats: Updates timed; the mean is returned.

    Returns:
        Seconds per update.
    """
    import torch

    torch.manual_seed(0)
    model = build_torch_mlp(dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=fused)
    x, y = torch.rand(BATCH_SIZE, 28, 28), torch.randint(0, 10, (BATCH_SIZE,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # warm-up: creates Adam's running averages
    start = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    return (time.perf_counter() - start) / repeats


def matmul_flops_per_s(size: int = 1024, repeats: int = 10) -> float:
    """Measure this machine's dense float32 matrix-multiply speed with PyTorch.

    Args:
        size: The matrices are size x size.
        repeats: Timed products; the median time is used.

    Returns:
        FLOP/s, counting ``2 * size**3`` FLOPs per product.
    """
    import torch

    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times))
