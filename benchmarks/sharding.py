"""Benchmark: what sharding saves per rank, and whether it computes the same, on 2 CPU processes.

Run from the repository root: ``python benchmarks/sharding.py`` (``make bench`` runs it).
It launches chapter 6's sharding scripts under torchrun with 2 processes (gloo): the
small decoder of ``helpers.scripts.sharding_train`` (863,232 parameters, Adam) under
DDP, ZeRO-1 and FSDP2, FSDP2 with plain SGD against one process on the global batch, and
FSDP2 with activation checkpointing; then the tensor-parallel MLP of
``helpers.scripts.sharding_model_parallel``. Figures (JSON on the last line):

- ``fsdp_state_bytes_ratio``: parameters + gradients + Adam state held by one rank under
  FSDP2, divided by the same under DDP (the larger of the 2 ranks; 0.5 is ideal);
- ``zero1_optimizer_bytes_ratio``: Adam state per rank under ZeRO-1 over DDP's;
- ``fsdp_max_param_diff``: FSDP2 with SGD after 3 steps against one process on the
  whole global batch, largest absolute parameter difference;
- ``tp_max_output_diff``: the tensor-parallel MLP's output against the unsharded one;
- ``tp_allreduces_per_forward``: all-reduces that ``CommDebugMode`` counts in one forward;
- ``fsdp_ckpt_activation_ratio``: bytes saved for the backward pass with activation
  checkpointing over without (per rank);
- ``fsdp_ckpt_step_time_ratio``: step time with checkpointing over without (speed-derived:
  it varies with the machine's load);
- ``sharding_launch_s``: wall time of the two launches.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main() -> int:
    """Launch the scripts, derive the figures, print them as the last line."""
    from helpers.runtime.distributed import launch_torchrun

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sharding-bench-") as out:
        train = launch_torchrun(
            "helpers.scripts.sharding_train",
            "--output-dir",
            out,
            "--phases",
            "ddp,zero1,fsdp,sgd,ckpt",
            nproc=2,
            echo=False,
        ).check()
    parallel = launch_torchrun(
        "helpers.scripts.sharding_model_parallel", "--parts", "tp", nproc=2, echo=False
    ).check()
    m, tp = train.metrics(), parallel.metrics()
    ranks = range(m["world_size"])
    total = [sum(m["fsdp_bytes"][r].values()) / sum(m["ddp_bytes"][r].values()) for r in ranks]
    states = [m["zero1_bytes"][r]["optimizer"] / m["ddp_bytes"][r]["optimizer"] for r in ranks]
    kept = [m["fsdp_ckpt_activation_bytes"][r] / m["fsdp_activation_bytes"][r] for r in ranks]
    figures = {
        "fsdp_state_bytes_ratio": round(max(total), 4),
        "zero1_optimizer_bytes_ratio": round(max(states), 4),
        "fsdp_max_param_diff": m["fsdp_sgd_max_diff"],
        "tp_max_output_diff": tp["tp_max_output_diff"],
        "tp_allreduces_per_forward": tp["tp_forward_collectives"].get("all_reduce", 0),
        "fsdp_ckpt_activation_ratio": round(max(kept), 4),
        "fsdp_ckpt_step_time_ratio": round(m["fsdp_ckpt_step_ms"] / m["fsdp_step_ms"], 2),
        "sharding_launch_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(figures))
    targets = (
        figures["fsdp_state_bytes_ratio"] <= 0.55
        and figures["fsdp_max_param_diff"] <= 1e-5
        and figures["tp_max_output_diff"] <= 1e-5
        and figures["tp_allreduces_per_forward"] == 1
    )
    return 0 if targets else 1


if __name__ == "__main__":
    sys.exit(main())
