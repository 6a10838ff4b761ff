"""Data-parallel training with PyTorch DistributedDataParallel (DDP), run under torchrun.

Usage: ``torchrun --nproc-per-node=2 -m helpers.scripts.ddp_train --output-dir DIR``

Every process (a rank) builds the same small MLP and trains it on its own shard of a
synthetic regression set; DDP averages the gradients over the ranks in every backward
pass, so all replicas take identical steps. Backend gloo on CPUs, NCCL on GPUs (one GPU
per process). Each rank saves its final parameters to ``DIR/params_rank{R}.npy``; rank 0
prints the metrics as a JSON object on its last line. The lines that make it distributed
carry a ``# DDP:`` comment; the rest is ordinary PyTorch, in functions that a notebook can
also call in one process, to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from helpers.scripts import FEATURES, regression_data, say, training_parser

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, TensorDataset


def make_data(examples: int = 2048, seed: int = 0) -> TensorDataset:
    """Make a synthetic regression set: ``y = tanh(x A) b + noise``, the same on every rank.

    Args:
        examples: Number of examples.
        seed: Seed of the generator (independent of the global seeds).

    Returns:
        A ``TensorDataset`` of inputs (examples, 16) and targets (examples, 1), float32.
    """
    import torch
    from torch.utils.data import TensorDataset

    x, y = regression_data(examples, seed)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def make_model(seed: int = 0, hidden: int = 64) -> torch.nn.Module:
    """Build the MLP 16 -> hidden -> hidden -> 1 with weights drawn from ``seed``.

    Args:
        seed: Seed for the initial weights (every rank uses the same).
        hidden: Width of the hidden layers.

    Returns:
        The model, on the CPU.
    """
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )


def make_loader(
    dataset: TensorDataset, batch_size: int, *, rank: int, world_size: int, seed: int = 0
) -> DataLoader:
    """Give one rank its shard of the data, in batches of ``batch_size``.

    All ranks shuffle with the same seed, then rank ``r`` takes positions ``r``,
    ``r + world_size``, ... of that order, so together the ranks' batches of one step are
    one global batch of ``batch_size * world_size`` examples, and no two ranks share one.

    Args:
        dataset: The full dataset (the same on every rank).
        batch_size: Examples per rank per step.
        rank: This process's rank.
        world_size: Number of processes.
        seed: Shuffling seed, shared by all ranks.

    Returns:
        The ``DataLoader``; its ``sampler`` needs ``set_epoch`` before each epoch.
    """
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(  # DDP: deal each rank a disjoint shard of the data
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)


def train(
    model: torch.nn.Module,
    loader: DataLoader,
    *,
    steps: int,
    lr: float,
    device: torch.device,
    global_loss: Callable[[torch.Tensor], float] = float,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train with SGD for ``steps`` steps, going through as many epochs as needed.

    Args:
        model: The model, or its DDP wrapper, on ``device``.
        loader: Batches from ``make_loader``.
        steps: Optimizer steps.
        lr: Learning rate.
        device: Where the batches go.
        global_loss: Turns this rank's batch loss into the loss over all ranks.
        on_step: Called with (step, global loss) after every step.

    Returns:
        The global loss of every step.
    """
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses: list[float] = []
    epoch = 0
    while len(losses) < steps:
        loader.sampler.set_epoch(epoch)  # DDP: a new shuffle each epoch, the same on all ranks
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()  # under DDP, the gradients are averaged over the ranks here
            optimizer.step()
            losses.append(global_loss(loss.detach()))
            if on_step is not None:
                on_step(len(losses), losses[-1])
            if len(losses) == steps:
                break
        epoch += 1
    return losses


def flat_parameters(model: torch.nn.Module) -> np.ndarray:
    """Return all parameters of a model as one float32 NumPy vector.

    Args:
        model: The model.

    Returns:
        The concatenated parameters, copied to the CPU.
    """
    import torch

    with torch.no_grad():
        return torch.cat([p.detach().flatten().cpu() for p in model.parameters()]).numpy()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.
    """
    parser = training_parser(
        __doc__.splitlines()[0], steps=40, batch_help="examples per rank per step"
    )
    parser.add_argument("--crash-at-step", type=int, default=0, help="simulate a failure")
    parser.add_argument("--crash-rank", type=int, default=1, help="the rank that fails")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Train under torchrun: one process per rank, gradients averaged by DDP.

    Args:
        argv: The command line; ``sys.argv[1:]`` when None.
    """
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    args = parse_args(argv)
    start = time.perf_counter()
    # torchrun sets RANK, LOCAL_RANK (the rank on this machine), WORLD_SIZE and the address
    # where the ranks meet (MASTER_ADDR, MASTER_PORT); init_process_group reads them.
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # DDP: first pin this process to its own GPU,
        dist.init_process_group("nccl")  # DDP: then join the group (NCCL between GPUs)
        device = torch.device("cuda", local_rank)
    else:
        dist.init_process_group("gloo")  # DDP: join the group (gloo between CPU processes)
        device = torch.device("cpu")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    data = make_data(seed=args.seed)  # every rank makes the full set; the sampler shards it
    loader = make_loader(data, args.batch_size, rank=rank, world_size=world, seed=args.seed)
    model = make_model(args.seed).to(device)
    ddp = DistributedDataParallel(  # DDP: copy rank 0's weights to all, average gradients
        model, device_ids=[local_rank] if device.type == "cuda" else None
    )
    say(
        f"[rank {rank}/{world}] backend {dist.get_backend()}, device {device}, "
        f"{len(loader.sampler)} examples in this rank's shard"
    )

    def global_loss(loss: torch.Tensor) -> float:
        total = loss.clone()
        dist.all_reduce(total)  # for the log only: the sum over ranks, the same on every rank
        return total.item() / world

    def on_step(step: int, loss: float) -> None:
        if step == args.crash_at_step and rank == args.crash_rank:
            raise RuntimeError(f"simulated failure on rank {rank} at step {step}")
        if rank == 0 and (step == 1 or step % 10 == 0):
            say(f"[rank 0] step {step:3d}  loss {loss:.4f}")

    losses = train(
        ddp,
        loader,
        steps=args.steps,
        lr=args.lr,
        device=device,
        global_loss=global_loss,
        on_step=on_step,
    )

    # Report: every rank saves its parameters; rank 0 checks that all replicas agree.
    params = flat_parameters(model)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    np.save(args.output_dir / f"params_rank{rank}.npy", params)
    gathered = [torch.zeros(len(params), device=device) for _ in range(world)]
    dist.all_gather(gathered, torch.from_numpy(params).to(device))
    spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
    if rank == 0:
        metrics = {
            "world_size": world,
            "backend": dist.get_backend(),
            "device": device.type,
            "global_batch": args.batch_size * world,
            "steps": args.steps,
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "losses": [round(loss, 4) for loss in losses],
            "max_param_diff_across_ranks": spread,
            "seconds": round(time.perf_counter() - start, 2),
        }
        say(json.dumps(metrics))
    dist.destroy_process_group()  # DDP: leave the group, so that every process exits cleanly


if __name__ == "__main__":
    main()
