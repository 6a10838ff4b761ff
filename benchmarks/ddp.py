"""Benchmark: how DistributedDataParallel scales over 2 CPU processes, and what it costs.

Run from the repository root: ``python benchmarks/ddp.py`` (``make bench`` runs it). The
script launches itself under torchrun twice: 1 process, then 2 processes (gloo). Every
process uses one thread and trains the same MLP (1024 -> 1024 -> 1024 -> 10, 2.1 M
parameters) on its own batch of 256 random examples per step, big enough for the compute
to dominate the gradient all-reduce. Rounds alternate the measurements so that a change
in the machine's load hits them alike. Figures (medians over the timed steps, in the JSON
object on the last line):

- ``ddp_cpu_scaling_efficiency``: throughput with 2 DDP processes divided by twice the
  throughput with 1 process (1.0 is perfect scaling);
- ``ddp_step_overhead_ms``: step time with 2 DDP processes minus with 1 process;
- ``ddp_step_1proc_ms``, ``ddp_step_2proc_ms``: those two step times;
- ``ddp_step_2proc_nocomm_ms``: 2 processes stepping at once without DDP (sharing the
  cores, no communication);
- ``ddp_allreduce_ms``: one all-reduce of the gradients' size between the 2 processes;
- ``ddp_step_1proc_2threads_ms``: 1 process using 2 threads (what one process gets from
  both cores without DDP);
- ``ddp_load_average``: the machine's 1-minute load average before the runs (other
  programs compete for the same cores when it is above 0).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

BATCH = 256
FEATURES = 1024
HIDDEN = 1024
CLASSES = 10
WARMUP_STEPS = 3


def build() -> tuple[object, Callable[[object], None]]:
    """Build the model and return it with a function that runs one SGD step of a model."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, CLASSES),
    )
    x, y = torch.randn(BATCH, FEATURES), torch.randint(0, CLASSES, (BATCH,))
    optimizers: dict[int, torch.optim.Optimizer] = {}

    def step(net: torch.nn.Module) -> None:
        optimizer = optimizers.setdefault(id(net), torch.optim.SGD(net.parameters(), lr=1e-3))
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model, step


def timed(fn: Callable[[], None], steps: int, sync: Callable[[], None]) -> list[float]:
    """Time ``steps`` calls of ``fn`` in milliseconds, starting together after ``sync``."""
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def worker(rounds: int, steps: int) -> None:
    """Measure inside torchrun: 1 process (1 and 2 threads) or 2 processes (DDP and not)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    torch.set_num_threads(1)
    model, step = build()
    samples: dict[str, list[float]] = {}
    if world == 1:
        for _ in range(rounds):
            for threads, name in ((1, "1proc"), (2, "1proc_2threads")):
                torch.set_num_threads(threads)
                timed(lambda: step(model), WARMUP_STEPS, lambda: None)
                times = timed(lambda: step(model), steps, lambda: None)
                samples.setdefault(name, []).extend(times)
    else:
        plain = copy.deepcopy(model)  # the same network, trained without DDP
        ddp = DistributedDataParallel(model)
        grads = torch.zeros(sum(p.numel() for p in model.parameters()))
        for _ in range(rounds):
            timed(lambda: step(ddp), WARMUP_STEPS, dist.barrier)
            samples.setdefault("2proc", []).extend(timed(lambda: step(ddp), steps, dist.barrier))
            samples.setdefault("2proc_nocomm", []).extend(
                timed(lambda: step(plain), steps, dist.barrier)
            )
            samples.setdefault("allreduce", []).extend(
                timed(lambda: dist.all_reduce(grads), steps, dist.barrier)
            )
    medians = {name: statistics.median(values) for name, values in samples.items()}
    everyone: list[dict[str, float]] = [{} for _ in range(world)]
    dist.all_gather_object(everyone, medians)
    if rank == 0:
        # A step of the job takes as long as its slowest process.
        print(json.dumps({name: max(m[name] for m in everyone) for name in medians}))
    dist.destroy_process_group()


def main() -> int:
    """Launch the measurements under torchrun and print the figures as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="(internal) run under torchrun")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    args = parser.parse_args()
    if args.worker:
        worker(args.rounds, args.steps)
        return 0
    from helpers.runtime.distributed import launch_torchrun

    load = os.getloadavg()[0]
    options = ("--worker", "--rounds", str(args.rounds), "--steps", str(args.steps))
    env = {"OMP_NUM_THREADS": "1"}
    medians = {}
    for nproc in (1, 2):
        result = launch_torchrun(__file__, *options, nproc=nproc, env=env, echo=False).check()
        medians.update(result.metrics())
    one, two = medians["1proc"], medians["2proc"]
    figures = {
        "ddp_cpu_scaling_efficiency": round(one / two, 3),
        "ddp_step_overhead_ms": round(two - one, 1),
        "ddp_step_1proc_ms": round(one, 1),
        "ddp_step_2proc_ms": round(two, 1),
        "ddp_step_2proc_nocomm_ms": round(medians["2proc_nocomm"], 1),
        "ddp_allreduce_ms": round(medians["allreduce"], 1),
        "ddp_step_1proc_2threads_ms": round(medians["1proc_2threads"], 1),
        "ddp_load_average": round(load, 2),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
