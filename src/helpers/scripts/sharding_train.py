"""Sharded data parallelism under torchrun: DDP, ZeRO-1, FSDP2, checkpointing, a sharded checkpoint.

Usage: ``torchrun --nproc-per-node=2 -m helpers.scripts.sharding_train --output-dir DIR``

Every rank builds the same small decoder (a few Transformer blocks) from the same seed
and takes its slice of each global batch. The script then trains it several ways, each
from the same initial weights, and measures what every rank holds:

1. ``ddp``: DDP with Adam, the baseline in which every rank holds everything;
2. ``zero1``: DDP with ``ZeroRedundancyOptimizer`` (Adam), which keeps on each rank the
   optimizer state of its share of the parameters only;
3. ``fsdp``: FSDP2 (``fully_shard`` on each block, then on the root) with Adam, with
   the collectives of one step recorded in order;
4. ``sgd``: FSDP2 with plain SGD against one process on the whole global batch, once
   as FSDP2 reduces by default and once with ``set_force_sum_reduction_for_comms``;
5. ``ckpt``: FSDP2 with activation checkpointing on every block, against FSDP2 without;
6. ``dcp``: the FSDP2 model of step 3 saved with ``torch.distributed.checkpoint``.

CPU processes only (backend gloo), with a short timeout so that a hang fails fast. Rank 0 prints the
metrics as a JSON object on its last line; ``DIR`` receives the sharded checkpoint and
the full parameters of the single-process references (``.npz``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.lessons import sharding
from helpers.scripts import say

if TYPE_CHECKING:
    import torch

PHASES = ("ddp", "zero1", "fsdp", "sgd", "ckpt", "dcp")

LAYERS = 4  # blocks of the default model


def make_model(
    seed: int = 0,
    *,
    dim: int = 128,
    layers: int = LAYERS,
    heads: int = 4,
    vocab: int = 256,
    seq_len: int = 32,
) -> torch.nn.Module:
    """Build the small decoder: embeddings, ``layers`` pre-norm blocks, a norm and a head.

    Each block is causal self-attention (one ``qkv`` projection and one output projection)
    then an MLP of width ``4 * dim``, both with residual connections, as in GPT-2. A
    block's ``checkpointed`` attribute switches activation checkpointing on.

    Args:
        seed: Seed of the initial weights (every rank uses the same).
        dim: Model width; ``heads`` must divide it.
        layers: Number of blocks.
        heads: Attention heads.
        vocab: Vocabulary size.
        seq_len: Longest sequence (size of the position embeddings).

    Returns:
        The model, on the CPU.

    Raises:
        ValueError: ``heads`` does not divide ``dim``.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.checkpoint import checkpoint

    sharding.check_divisible(dim, heads, f"the width {dim} by {heads} attention heads")

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
            self.checkpointed = False

        def body(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = (
                self.qkv(self.norm1(x)).view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            )
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(attended.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.checkpointed:  # keep only x; recompute the rest during backward
                return checkpoint(self.body, x, use_reentrant=False)
            return self.body(x)

    class TinyDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(seq_len, dim)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    torch.manual_seed(seed)
    return TinyDecoder()


def make_batches(
    steps: int, global_batch: int, *, seq_len: int = 32, vocab: int = 256, seed: int = 0
) -> list[torch.Tensor]:
    """Make ``steps`` global batches of token sequences that a decoder can learn to continue.

    Each sequence counts up from a random start with a random stride (modulo ``vocab``),
    so the next token follows from the previous two.

    Args:
        steps: Number of batches.
        global_batch: Sequences per batch, all ranks together.
        seq_len: Tokens per sequence, plus one for the last target.
        vocab: Vocabulary size.
        seed: Seed of the generator (independent of the global seeds).

    Returns:
        ``steps`` tensors of shape ``(global_batch, seq_len + 1)``, int64.
    """
    import torch

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        start = rng.integers(0, vocab, size=(global_batch, 1))
        stride = rng.integers(1, 8, size=(global_batch, 1))
        batches.append(torch.tensor((start + stride * np.arange(seq_len + 1)) % vocab))
    return batches


def local_slice(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Return rank ``rank``'s contiguous share of a global batch (``world`` must divide it)."""
    size = sharding.check_divisible(len(batch), world, f"the global batch of {len(batch)}")
    return batch[rank * size : (rank + 1) * size]


def next_token_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Return the mean cross-entropy of predicting each token from the ones before it."""
    import torch.nn.functional as F

    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[torch.Tensor],
    *,
    rank: int = 0,
    world: int = 1,
    on_step: Callable[[int], None] | None = None,
) -> list[float]:
    """Take one optimizer step per global batch on this rank's slice; return the local losses.

    Args:
        model: The model (plain, DDP-wrapped or sharded).
        optimizer: Its optimizer.
        batches: Global batches from ``make_batches``.
        rank: This process's rank.
        world: Number of processes (1: the whole batch, as a single process).
        on_step: Called with the step number after each step (the crash simulation).

    Returns:
        The loss of this rank's slice at every step.
    """
    losses = []
    for step, batch in enumerate(batches, start=1):
        loss = next_token_loss(model, local_slice(batch, rank, world))
        optimizer.zero_grad()
        loss.backward()  # DDP all-reduces gradients here; FSDP2 reduce-scatters them
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step)
    return losses


def shard(model: torch.nn.Module, mesh: Any, *, force_sum: bool = False) -> torch.nn.Module:
    """Apply FSDP2: ``fully_shard`` on every block, then on the root (embeddings, norm, head).

    Each ``fully_shard`` call makes one group whose parameters are all-gathered together
    before its forward (and again before its backward) and whose gradients are
    reduce-scattered together after its backward.

    Args:
        model: The decoder from ``make_model``.
        mesh: A one-dimensional ``DeviceMesh`` over all ranks.
        force_sum: Reduce with ``SUM`` and divide afterwards, the workaround for a backend
            whose ``AVG`` reduction is wrong (PyTorch issue #162338).

    Returns:
        The same model, its parameters now DTensors sharded on dimension 0.
    """
    from torch.distributed.fsdp import FSDPModule, fully_shard

    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    if force_sum:
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_force_sum_reduction_for_comms(True)
    return model


def full_parameters(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Return every parameter in full as NumPy arrays (a sharded one is all-gathered first)."""
    out = {}
    for name, p in model.named_parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name.removeprefix("module.")] = full.detach().numpy().copy()
    return out


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Return the largest absolute difference between two sets of parameters with the same names."""
    return max(float(np.abs(a[name] - b[name]).max()) for name in a)


def collective_timeline(model: torch.nn.Module, tokens: torch.Tensor) -> list[list[Any]]:
    """Run one forward and backward and list its collectives in order, with the module and pass.

    ``CommDebugMode`` counts collectives per module; this records their order as well.

    Returns:
        ``[pass, module, collective, elements]`` per collective, ``pass`` being
        ``"forward"`` or ``"backward"`` and ``elements`` the size of the gathered or
        reduced buffer.
    """
    from torch.distributed.tensor.debug import CommDebugMode

    class Timeline(CommDebugMode):
        def __init__(self) -> None:
            super().__init__()
            self.events: list[list[Any]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            before = sum(self.comm_counts.values())
            out = super().__torch_dispatch__(func, types, args, kwargs)
            if sum(self.comm_counts.values()) > before:
                tracker = self.advanced_module_tracker
                size = max((a.numel() for a in args if hasattr(a, "numel")), default=0)
                name = func._overloadpacket.__name__.strip("_")
                kind = "backward" if tracker.is_bw else "forward"
                self.events.append([kind, tracker.name, name, size])
            return out

    timeline = Timeline()
    with timeline, warnings.catch_warnings():
        # Its module tracker hooks the backward of the root, whose input (token ids) needs
        # no gradient; PyTorch warns about that, harmlessly.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        next_token_loss(model, tokens).backward()
    model.zero_grad()
    return timeline.events


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated, in order")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per rank per step")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--lr", type=float, default=0.05, help="SGD's; Adam uses lr / 50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mesh-device", default="cpu", help="cpu: the tensors stay there")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per collective")
    parser.add_argument("--crash-at-step", type=int, default=0, help="simulate a failure (sgd)")
    parser.add_argument("--crash-rank", type=int, default=1, help="the rank that fails")
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {list(PHASES)}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the phases under torchrun; rank 0 prints the metrics as JSON.

    Args:
        argv: The command line; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    backend = sharding.backend_for_mesh(
        args.mesh_device, supported=("cpu",)
    )  # a clear error before any wait
    # FSDP2 warns that the model returns a view (an in-place change of it would skip a
    # hook); nothing here changes the output in place.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view")
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    start = time.perf_counter()
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    mesh = init_device_mesh(args.mesh_device, (world,))
    phases = args.phases.split(",")
    sizes = {"dim": args.dim, "layers": args.layers}
    batches = make_batches(args.steps, args.batch_size * world, seed=args.seed)
    adam_lr = args.lr / 50
    metrics: dict[str, Any] = {"world_size": world, "backend": backend, "phases": phases}
    args.output_dir.mkdir(parents=True, exist_ok=True)

    def everyone(value: Any) -> list[Any]:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, value)
        return gathered

    def record(name: str, state: sharding.ModelStateBytes) -> None:
        kinds = ("parameters", "gradients", "optimizer")
        metrics[name] = everyone({kind: getattr(state, kind) for kind in kinds})

    metrics["parameters"] = sum(p.numel() for p in make_model(args.seed, **sizes).parameters())
    reference_adam = None
    if {"ddp", "zero1", "fsdp"} & set(phases):
        model = make_model(args.seed, **sizes)
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.Adam(ddp.parameters(), lr=adam_lr)
        metrics["ddp_losses"] = train(ddp, optimizer, batches, rank=rank, world=world)
        record("ddp_bytes", sharding.rank_state_bytes(model, optimizer))
        reference_adam = full_parameters(model)
        say(f"[rank {rank}] ddp: done, {metrics['parameters']:,} parameters on every rank")
    if "zero1" in phases:
        model = make_model(args.seed, **sizes)
        ddp = DistributedDataParallel(model)
        optimizer = ZeroRedundancyOptimizer(
            ddp.parameters(), optimizer_class=torch.optim.Adam, lr=adam_lr
        )
        train(ddp, optimizer, batches, rank=rank, world=world)
        record("zero1_bytes", sharding.rank_state_bytes(model, optimizer))
        metrics["zero1_vs_ddp_max_diff"] = max_difference(full_parameters(model), reference_adam)
        say(f"[rank {rank}] zero1: done")
    if "fsdp" in phases or "dcp" in phases:
        model = shard(make_model(args.seed, **sizes), mesh)
        first = model.blocks[0].fc1.weight
        metrics["fsdp_placement"] = f"{type(first).__name__} {list(first.placements)}"
        metrics["fsdp_local_shape"] = everyone(list(first.to_local().shape))
        metrics["fsdp_full_shape"] = list(first.shape)
        metrics["fsdp_timeline"] = collective_timeline(model, local_slice(batches[0], rank, world))
        optimizer = torch.optim.Adam(model.parameters(), lr=adam_lr)
        train(model, optimizer, batches, rank=rank, world=world)
        record("fsdp_bytes", sharding.rank_state_bytes(model, optimizer))
        if reference_adam is not None:
            metrics["fsdp_vs_ddp_max_diff"] = max_difference(full_parameters(model), reference_adam)
        if "dcp" in phases:
            folder = args.output_dir / "checkpoint"
            dcp.save(model.state_dict(), checkpoint_id=str(folder))  # each rank writes its shards
            full = full_parameters(model)
            if rank == 0:
                np.savez(args.output_dir / "fsdp_adam_params.npz", **full)
            metrics["dcp_files"] = sorted(p.name for p in folder.iterdir())
        say(f"[rank {rank}] fsdp: done, this rank holds {list(first.to_local().shape)} of fc1")
    if "sgd" in phases:

        def on_step(step: int) -> None:
            if step == args.crash_at_step and rank == args.crash_rank:
                raise RuntimeError(f"simulated failure on rank {rank} at step {step}")

        single = make_model(args.seed, **sizes)  # one process, the whole global batch
        train(single, torch.optim.SGD(single.parameters(), lr=args.lr), batches)
        summed = make_model(args.seed, **sizes)  # what a summing reduction would do
        train(summed, torch.optim.SGD(summed.parameters(), lr=args.lr * world), batches)
        results = {}
        for name, force_sum in (("fsdp_sgd", False), ("fsdp_sgd_force_sum", True)):
            model = shard(make_model(args.seed, **sizes), mesh, force_sum=force_sum)
            probe = make_model(args.seed, **sizes)  # the gradient's scale after one backward
            next_token_loss(model, local_slice(batches[0], rank, world)).backward()
            next_token_loss(probe, batches[0]).backward()
            sharded_grad = model.blocks[0].fc1.weight.grad.full_tensor()
            metrics[f"{name}_grad_ratio"] = float(
                sharded_grad.norm() / probe.blocks[0].fc1.weight.grad.norm()
            )
            model.zero_grad()
            sgd = torch.optim.SGD(model.parameters(), lr=args.lr)
            train(model, sgd, batches, rank=rank, world=world, on_step=on_step)
            results[name] = full_parameters(model)
        reference = full_parameters(single)
        metrics["fsdp_sgd_max_diff"] = max_difference(results["fsdp_sgd"], reference)
        metrics["fsdp_sgd_force_sum_max_diff"] = max_difference(
            results["fsdp_sgd_force_sum"], reference
        )
        metrics["summed_vs_single_max_diff"] = max_difference(full_parameters(summed), reference)
        if rank == 0:
            np.savez(args.output_dir / "fsdp_sgd_params.npz", **results["fsdp_sgd"])
        say(f"[rank {rank}] sgd: done")
    if "ckpt" in phases:
        big = make_batches(4, 8 * world, seed=args.seed + 1)  # more tokens: activations show
        for name, checkpointed in (("fsdp", False), ("fsdp_ckpt", True)):
            model = make_model(args.seed, **sizes)
            for block in model.blocks:
                block.checkpointed = checkpointed
            model = shard(model, mesh)
            optimizer = torch.optim.Adam(model.parameters(), lr=adam_lr)
            tokens = local_slice(big[0], rank, world)
            losses: list[torch.Tensor] = []  # the forward is measured, then its backward run
            saved = sharding.saved_activation_bytes(
                lambda: losses.append(next_token_loss(model, tokens)),  # noqa: B023
                model,
            )
            metrics[f"{name}_activation_bytes"] = everyone(saved)
            losses[0].backward()
            optimizer.zero_grad()
            times = []
            for batch in big:
                dist.barrier()
                tick = time.perf_counter()
                train(model, optimizer, [batch], rank=rank, world=world)
                times.append(time.perf_counter() - tick)
            metrics[f"{name}_step_ms"] = max(everyone(statistics.median(times[1:]) * 1000))
            metrics[f"{name}_final_params"] = full_parameters(model)
        metrics["ckpt_max_param_diff"] = max_difference(
            metrics.pop("fsdp_final_params"), metrics.pop("fsdp_ckpt_final_params")
        )
        say(f"[rank {rank}] ckpt: done")
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    if rank == 0:
        say(json.dumps(metrics))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
