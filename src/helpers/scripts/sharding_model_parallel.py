"""Model parallelism under torchrun: tensor parallelism with DTensor, pipelines with GPipe.

Usage: ``torchrun --nproc-per-node=2 -m helpers.scripts.sharding_model_parallel``

Tensor parallelism (``tp``) splits each weight matrix over the ranks:

1. ``distribute_tensor`` places a 4 x 6 matrix on the mesh as ``Shard(0)`` (rows),
   ``Shard(1)`` (columns) and ``Replicate()``, and every rank reports what it holds;
2. an MLP (``fc1``, GELU, ``fc2``) is split by ``parallelize_module``: ``fc1``
   column-wise (each rank computes some hidden units), ``fc2`` row-wise (each rank
   multiplies its hidden units by its rows and the partial outputs are summed), so a
   forward needs exactly one all-reduce. Output and gradients are compared with the
   unsharded MLP, and ``CommDebugMode`` counts the collectives.

Pipeline parallelism (``pp``) splits the layers: chapter 6's small decoder
(``sharding_train.make_model``) becomes one stage per rank, and ``ScheduleGPipe`` runs
the micro-batches through them; the loss and the gradients are compared with the whole
model in one process, and the start and end of every forward and backward are recorded.

CPU processes only (backend gloo), with a short timeout so that a hang fails fast. Rank 0 prints the
metrics as a JSON object on its last line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.lessons import sharding
from helpers.scripts import say, sharding_train

if TYPE_CHECKING:
    import torch

PARTS = ("tp", "pp")


def make_mlp(dim: int = 64, hidden: int = 256, seed: int = 0) -> torch.nn.Module:
    """Build the MLP ``dim -> hidden -> dim`` (GELU between) with weights drawn from ``seed``."""
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(nn.functional.gelu(self.fc1(x)))

    torch.manual_seed(seed)
    return MLP()


def placements_demo(mesh: Any) -> dict[str, Any]:
    """Distribute a 4 x 6 matrix three ways; return this rank's local piece of each."""
    import torch
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    matrix = torch.arange(24.0).reshape(4, 6)  # the same full matrix on every rank
    pieces = {}
    placements = {"Shard(0)": Shard(0), "Shard(1)": Shard(1), "Replicate()": Replicate()}
    for name, placement in placements.items():
        dtensor = distribute_tensor(matrix, mesh, [placement])
        if not torch.equal(dtensor.full_tensor(), matrix):  # gathering gives it back
            raise RuntimeError(f"{name}: full_tensor() is not the distributed matrix")
        pieces[name] = dtensor.to_local().tolist()
    return pieces


def tensor_parallel(
    mesh: Any, *, dim: int, hidden: int, seed: int, save_to: Path | None = None
) -> dict[str, Any]:
    """Split the MLP over the mesh; compare with the unsharded MLP; count the collectives.

    With ``save_to``, the input and the tensor-parallel output are saved there
    (``tp_input.npy``, ``tp_output.npy``) for a check in another process.
    """
    import torch
    from torch.distributed.tensor.debug import CommDebugMode
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    world = mesh.size()
    sharding.check_divisible(hidden, world, f"fc1's {hidden} output units (the hidden layer)")
    reference = make_mlp(dim, hidden, seed)
    mlp = parallelize_module(
        make_mlp(dim, hidden, seed), mesh, {"fc1": ColwiseParallel(), "fc2": RowwiseParallel()}
    )
    torch.manual_seed(seed + 1)
    # The same input on every rank, as ColwiseParallel expects; in a network it would come
    # from the layer before, so it needs a gradient too.
    x = torch.randn(8, dim, requires_grad=True)

    def count(fn: Any) -> dict[str, int]:
        with CommDebugMode() as mode:
            fn()
        return {str(op).split(".")[-1]: n for op, n in mode.get_comm_counts().items()}

    forward = count(lambda: mlp(x).sum())  # .sum() waits for the all-reduce's result
    outputs: list[torch.Tensor] = []
    total = count(lambda: outputs.append(mlp(x)) or outputs[0].square().sum().backward())
    out = outputs[0]
    expected = reference(x)
    expected.square().sum().backward()
    grad_diff = max(
        float((p.grad.full_tensor() - q.grad).abs().max())
        for p, q in zip(mlp.parameters(), reference.parameters(), strict=True)
    )
    activations = sharding.saved_activation_bytes(lambda: mlp(x).sum(), mlp)
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        np.save(save_to / "tp_input.npy", x.detach().numpy())
        np.save(save_to / "tp_output.npy", out.detach().numpy())
    return {
        "tp_local_shapes": {name: list(p.to_local().shape) for name, p in mlp.named_parameters()},
        "tp_placements": {name: str(p.placements[0]) for name, p in mlp.named_parameters()},
        "tp_max_output_diff": float((out - expected).detach().abs().max()),
        "tp_max_grad_diff": grad_diff,
        "tp_forward_collectives": forward,
        "tp_backward_collectives": {op: total[op] - forward.get(op, 0) for op in total},
        "tp_parameter_bytes": sharding.rank_state_bytes(mlp).parameters,
        "unsharded_parameter_bytes": sharding.rank_state_bytes(reference).parameters,
        "tp_activation_bytes": activations,
        "unsharded_activation_bytes": sharding.saved_activation_bytes(
            lambda: reference(x), reference
        ),
    }


def pipeline_parallel(rank: int, world: int, *, microbatches: int, seed: int) -> dict[str, Any]:
    """Run the decoder as ``world`` pipeline stages with GPipe; compare with one process."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    model = sharding_train.make_model(seed)
    layers = len(model.blocks)
    per_stage = sharding.check_divisible(layers, world, f"the {layers} blocks into stages")
    tokens = sharding_train.make_batches(1, 2 * microbatches, seed=seed)[0]
    # Contiguous: torch 2.11's pipelining checks the micro-batches' strides against its plan.
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))

    # The whole model in one process, on the whole batch: the reference.
    full_loss = loss_fn(model(inputs), targets)
    full_loss.backward()

    class Stage(nn.Module):
        """Blocks ``first`` to ``last - 1`` of the model, with the embeddings or the head.

        The parts keep the names they have in the whole model (``blocks.2.fc1.weight``),
        so that each parameter can be compared with the same one of the whole model.
        """

        def __init__(self, first: int, last: int) -> None:
            super().__init__()
            source = sharding_train.make_model(seed)
            self.first, self.last = first, last
            self.blocks = nn.ModuleDict({str(i): source.blocks[i] for i in range(first, last)})
            if first == 0:
                self.tokens, self.positions = source.tokens, source.positions
            if last == layers:
                self.norm, self.head = source.norm, source.head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.first == 0:  # the first stage receives token ids
                x = self.tokens(x) + self.positions(torch.arange(x.shape[1]))
            for block in self.blocks.values():
                x = block(x)
            return self.head(self.norm(x)) if self.last == layers else x

    first = rank * per_stage
    stage_module = Stage(first, first + per_stage)
    # Record when each forward and backward of this stage starts and ends: the forward by
    # hooks on the stage, the backward from its last block's start to its first block's end.
    events: dict[str, list[list[float]]] = {"F": [], "B": []}
    clock = time.monotonic  # one clock for every process on this machine
    blocks = list(stage_module.blocks.values())
    stage_module.register_forward_pre_hook(lambda *_: events["F"].append([clock()]))
    stage_module.register_forward_hook(lambda *_: events["F"][-1].append(clock()))
    blocks[-1].register_full_backward_pre_hook(lambda *_: events["B"].append([clock()]))
    blocks[0].register_full_backward_hook(lambda *_: events["B"][-1].append(clock()))
    stage = PipelineStage(stage_module, rank, world, torch.device("cpu"))
    schedule = ScheduleGPipe(stage, n_microbatches=microbatches, loss_fn=loss_fn)
    losses: list[torch.Tensor] = []
    torch.distributed.barrier()
    began = clock()
    if rank == 0:
        schedule.step(inputs)  # the first stage feeds the micro-batches in
    elif rank == world - 1:
        schedule.step(target=targets, losses=losses)  # the last computes the loss
    else:
        schedule.step()
    ended = clock()
    full = dict(model.named_parameters())
    grad_diff = max(
        float((p.grad - full[name].grad).abs().max()) for name, p in stage_module.named_parameters()
    )
    return {
        "pp_stage_blocks": [first, first + per_stage],
        "pp_microbatch_losses": [loss.item() for loss in losses],
        "pp_full_batch_loss": full_loss.item(),
        "pp_max_grad_diff": grad_diff,
        "pp_events": [  # the last ones: a first forward infers the shapes to send
            [kind, start, end] for kind in ("F", "B") for start, end in events[kind][-microbatches:]
        ],
        "pp_began": began,  # on the shared clock: the ranks leave the barrier at different times
        "pp_step_seconds": ended - began,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Run the parts under torchrun; rank 0 prints the metrics as JSON.

    Args:
        argv: The command line; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="tp,pp", help="comma-separated: tp, pp")
    parser.add_argument("--dim", type=int, default=64, help="the MLP's input and output width")
    parser.add_argument("--hidden", type=int, default=256, help="the MLP's hidden width")
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mesh-device", default="cpu", help="cpu: the tensors stay there")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per collective")
    parser.add_argument("--output-dir", type=Path, default=None, help="rank 0 saves tp arrays")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(set(parts) - set(PARTS))}; choose from {PARTS}")
    # Clear errors before any process waits for its peers: torchrun sets WORLD_SIZE.
    backend = sharding.backend_for_mesh(args.mesh_device, supported=("cpu",))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if "tp" in parts:
        sharding.check_divisible(args.hidden, world_size, f"fc1's {args.hidden} output units")
    if "pp" in parts:
        layers = sharding_train.LAYERS
        sharding.check_divisible(layers, world_size, f"the {layers} blocks into stages")
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    start = time.perf_counter()
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    mesh = init_device_mesh(args.mesh_device, (world,))
    metrics: dict[str, Any] = {"world_size": world, "backend": backend}

    def everyone(value: Any) -> list[Any]:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, value)
        return gathered

    if "tp" in parts:
        metrics["placements"] = everyone(placements_demo(mesh))
        save_to = args.output_dir if rank == 0 else None
        result = tensor_parallel(
            mesh, dim=args.dim, hidden=args.hidden, seed=args.seed, save_to=save_to
        )
        metrics.update(result)
        metrics["tp_max_output_diff"] = max(everyone(result["tp_max_output_diff"]))
        metrics["tp_max_grad_diff"] = max(everyone(result["tp_max_grad_diff"]))
        say(f"[rank {rank}] tp: fc1 {result['tp_local_shapes']['fc1.weight']} on this rank")
    if "pp" in parts:
        result = pipeline_parallel(rank, world, microbatches=args.microbatches, seed=args.seed)
        gathered = everyone(result)
        metrics["pp_microbatches"] = args.microbatches
        metrics["pp_microbatch_losses"] = gathered[-1]["pp_microbatch_losses"]
        metrics["pp_full_batch_loss"] = result["pp_full_batch_loss"]
        metrics["pp_max_grad_diff"] = max(g["pp_max_grad_diff"] for g in gathered)
        metrics["pp_stage_blocks"] = [g["pp_stage_blocks"] for g in gathered]
        origin = min(g["pp_began"] for g in gathered)  # one origin for every stage
        metrics["pp_events"] = [
            [[kind, start - origin, end - origin] for kind, start, end in g["pp_events"]]
            for g in gathered
        ]
        metrics["pp_step_seconds"] = max(g["pp_step_seconds"] for g in gathered)
        say(f"[rank {rank}] pp: stage {rank} ran blocks {result['pp_stage_blocks']}")
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    if rank == 0:
        say(json.dumps(metrics))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
