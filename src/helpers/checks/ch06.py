"""Checks of chapter 6's exercises: GPUs (06a), tf.distribute (06b), DDP (06c), Trainer (06d),
sharding (06e).

Belongs here: one ``check_...`` function per exercise of chapter 6's notebooks. Each prints
a verdict through ``helpers.checks.report`` and never raises. No framework is imported.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

import numpy as np

from helpers.checks.report import report_correct, report_not_attempted, report_not_yet


def check_per_replica_batch(answer: int | None) -> None:
    """Check the per-replica batch of a global batch of 96 on 3 GPUs.

    Args:
        answer: The learner's number, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if answer == 32:
        return report_correct("the strategy splits each global batch of 96 into 3 slices of 32.")
    if answer in (96, 288):
        return report_not_yet(
            f"{answer} treats 96 as the batch of each GPU",
            "under a strategy, the dataset's batch is the global batch of all replicas",
        )
    report_not_yet(
        f"{answer!r} is not the per-replica batch", "divide the global batch by the GPUs"
    )


def check_replica_loss(answer: Callable[[np.ndarray, int], float] | None) -> None:
    """Check ``replica_loss(per_example, global_batch)``: one replica's share of the mean loss.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function replica_loss(per_example, global_batch)")
    per_example = np.array([0.5, 1.0, 2.5, 4.0])  # one replica's 4 of a global batch of 8
    try:
        got = float(answer(per_example, 8))
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(f"your function raised {type(error).__name__}: {error}", "use NumPy")
    if np.isclose(got, per_example.sum() / 8):
        return report_correct(
            "summed over the replicas, these give the mean over the global batch."
        )
    if np.isclose(got, per_example.mean()):
        return report_not_yet(
            "you divided by this replica's batch, so the summed gradients are too large by "
            "the number of replicas",
            "divide the sum by the global batch size instead",
        )
    if np.isclose(got, per_example.sum()):
        return report_not_yet("the sum alone grows with the batch", "divide by the global batch")
    report_not_yet(f"{got} is not the replica's loss", "sum the per-example losses, divide by 8")


def check_global_batch(answer: int | None) -> None:
    """Check the global batch of 2 nodes with 4 GPUs each and 32 examples per process.

    Args:
        answer: The learner's number, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if answer == 256:
        return report_correct("8 processes take 32 examples each per step: 256 per optimizer step.")
    if answer in (32, 64, 128):
        return report_not_yet(
            f"{answer} counts too few processes",
            "every process (2 nodes x 4 GPUs) takes its own batch of 32 in each step",
        )
    report_not_yet(f"{answer!r} is not the global batch", "multiply the world size by 32")


def check_rank_indices(answer: Sequence[int] | None) -> None:
    """Check the indices that rank 1 of 2 gets from ``DistributedSampler(shuffle=False)``.

    The dataset has 10 examples.

    Args:
        answer: The learner's list of indices, or None.
    """
    if answer is None:
        return report_not_attempted("a list of indices")
    try:
        got = [int(index) for index in answer]
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a list of integers", "write a list like [0, 2]")
    if got == [1, 3, 5, 7, 9]:
        return report_correct("ranks take every world_size-th example, starting at their rank.")
    if got == [5, 6, 7, 8, 9]:
        return report_not_yet(
            "the sampler does not cut the data into contiguous halves",
            "it deals the examples out like cards: rank r takes r, r + 2, r + 4, ...",
        )
    if got == [0, 2, 4, 6, 8]:
        return report_not_yet("those are rank 0's", "rank 1 starts at index 1")
    report_not_yet(f"{got} is not rank 1's share", "rank r takes indices r, r + 2, r + 4, ...")


def check_trainer_mode(answer: str | None) -> None:
    """Check which parallel mode ``Trainer`` uses for ``python train.py`` on a 4-GPU machine.

    Args:
        answer: The learner's ``ParallelMode`` name, such as ``"distributed"``, or None.
    """
    if answer is None:
        return report_not_attempted('a mode name as a string, such as "not_parallel"')
    mode = str(answer).lower().removeprefix("parallelmode.")
    if mode == "not_distributed":
        return report_correct(
            "one process sees 4 GPUs, so Trainer falls back to DataParallel. Launch with "
            "torchrun or accelerate launch to get DistributedDataParallel."
        )
    if mode == "distributed":
        return report_not_yet(
            "DDP needs one process per GPU, and nothing started them",
            "Trainer checks args.n_gpu when it was not launched by torchrun",
        )
    if mode == "not_parallel":
        return report_not_yet("Trainer does use the 4 GPUs", "in which single-process way?")
    report_not_yet(
        f"{answer!r} is not a ParallelMode", "see transformers.training_args.ParallelMode"
    )


def check_effective_batch(answer: int | None) -> None:
    """Check examples per optimizer step: batch 16, accumulation 2, 2 nodes of 4 GPUs.

    Args:
        answer: The learner's number, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if answer == 256:
        return report_correct("16 examples x 2 accumulated batches x 8 processes = 256 per step.")
    if answer in (32, 128):
        return report_not_yet(
            f"{answer} leaves out the processes or the accumulation",
            "multiply the per-device batch, the accumulation steps and the world size",
        )
    report_not_yet(f"{answer!r} is not the effective batch", "the world size here is 2 x 4 = 8")


def check_node_command(answer: str | None) -> None:
    """Check a torchrun command for one node of a 2-node job, 8 GPUs each, at 10.0.0.1:29500.

    Args:
        answer: The learner's command line as a string (``train.py`` as the script), or None.
    """
    if answer is None:
        return report_not_attempted('a command line string, "torchrun ... train.py"')
    if not isinstance(answer, str):
        return report_not_yet(
            f"{answer!r} is not a string", 'write the command in quotes: "torchrun ..."'
        )
    from torch.distributed.run import get_args_parser

    try:
        words = shlex.split(answer)
        if words and words[0] == "torchrun":
            words = words[1:]
        parsed = get_args_parser().parse_args(words)
    except (SystemExit, ValueError) as error:
        return report_not_yet(
            f"torchrun cannot parse it ({type(error).__name__})",
            "write it as torchrun --nnodes=... --nproc-per-node=... ... train.py",
        )
    problems = []
    if str(parsed.nnodes) != "2":
        problems.append(f"--nnodes is {parsed.nnodes}, but the job has 2 nodes")
    if str(parsed.nproc_per_node) != "8":
        problems.append(f"--nproc-per-node is {parsed.nproc_per_node}: one process per GPU")
    if parsed.rdzv_backend != "c10d" or parsed.rdzv_endpoint != "10.0.0.1:29500":
        problems.append("the rendezvous must be --rdzv-backend=c10d --rdzv-endpoint=10.0.0.1:29500")
    if parsed.standalone:
        problems.append("--standalone is for a single node")
    if parsed.training_script != "train.py":
        problems.append(f"the script is {parsed.training_script!r}, not train.py")
    if problems:
        return report_not_yet("; ".join(problems), "both nodes run the same command")
    report_correct("run the same line on both machines; the rendezvous assigns the node ranks.")


def check_visible_count(answer: int | None) -> None:
    """Check how many GPUs ``CUDA_VISIBLE_DEVICES="1,5,2"`` shows on a 4-GPU machine.

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if answer == 1:
        return report_correct(
            "GPU 1 is kept; 5 does not exist, so CUDA drops it and everything after."
        )
    if answer == 2:
        return report_not_yet(
            "CUDA does not skip the bad entry and carry on",
            "an invalid entry hides itself and every entry after it",
        )
    if answer in (3, 4):
        return report_not_yet(
            f"{answer} is too many", "the machine has GPUs 0 to 3; is 5 one of them?"
        )
    report_not_yet(f"{answer!r} is not the count", "read the entries left to right and stop at 5")


def check_framework_index(answer: int | None) -> None:
    """Check which ``cuda:N`` is physical GPU 3 when ``CUDA_VISIBLE_DEVICES="3,1"``.

    Args:
        answer: The learner's N, or None.
    """
    if answer is None:
        return report_not_attempted("an integer N for cuda:N")
    if answer == 0:
        return report_correct("frameworks number the visible GPUs 0, 1, ... in the order listed.")
    if answer == 3:
        return report_not_yet(
            "inside the process, GPUs are renumbered",
            "the first entry of CUDA_VISIBLE_DEVICES becomes cuda:0",
        )
    if answer == 1:
        return report_not_yet(
            "that is physical GPU 1", "the order of the list, not the values, counts"
        )
    report_not_yet(
        f"cuda:{answer} does not exist here", "only two GPUs are visible: cuda:0 and cuda:1"
    )


# 06e: sharding


def check_fsdp_gpus(answer: int | None) -> None:
    """Check the fewest GPUs whose FSDP shards of a 70B model's training state fit in 80 GiB each.

    Mixed-precision Adam (16 bytes per parameter), model states only.

    Args:
        answer: The learner's number of GPUs, or None.
    """
    from helpers.lessons.sharding import GIB, per_rank_bytes

    if answer is None:
        return report_not_attempted("an integer number of GPUs")
    if isinstance(answer, bool) or not isinstance(answer, int) or answer < 1:
        return report_not_yet(f"{answer!r} is not a number of GPUs", "give a positive integer")

    def gib(gpus: int) -> float:
        return per_rank_bytes(70_000_000_000, "fsdp", gpus, mixed_precision=True).total / GIB

    if answer == 14:
        return report_correct(
            f"14 GPUs hold {gib(14):.1f} GiB each; 13 would need {gib(13):.1f} GiB, over 80."
        )
    if answer < 14:
        return report_not_yet(
            f"with {answer} GPUs each holds {gib(answer):.1f} GiB, more than 80",
            "16 bytes per parameter, divided by the number of GPUs, must be at most 80 GiB",
        )
    report_not_yet(
        f"{answer} GPUs fit ({gib(answer):.1f} GiB each), but fewer do too",
        "find the smallest N with per_rank_bytes(70e9, 'fsdp', N, ...) at most 80 GiB",
    )


def check_microbatches(answer: int | None) -> None:
    """Check the fewest micro-batches that bring a 4-stage pipeline's bubble down to 10 %.

    Args:
        answer: The learner's number of micro-batches, or None.
    """
    from helpers.lessons.sharding import pipeline_bubble_fraction

    if answer is None:
        return report_not_attempted("an integer number of micro-batches")
    if isinstance(answer, bool) or not isinstance(answer, int) or answer < 1:
        return report_not_yet(f"{answer!r} is not a number of micro-batches", "a positive integer")
    if answer == 27:
        return report_correct("3 / (27 + 3) = 10 %; with 26 the bubble is 3/29, 10.3 %.")
    if answer == 36:
        return report_not_yet(
            "that solves 4 / (m + 4) = 0.1", "the bubble is (p - 1) idle slots of m + p - 1"
        )
    bubble = pipeline_bubble_fraction(4, answer)
    if bubble > 0.1:
        return report_not_yet(
            f"with {answer} micro-batches the bubble is {bubble:.1%}",
            "solve (p - 1) / (m + p - 1) <= 0.1 for m, with p = 4",
        )
    report_not_yet(
        f"{answer} micro-batches give {bubble:.1%}, but fewer are enough",
        "solve (p - 1) / (m + p - 1) <= 0.1 for the smallest m",
    )


def check_fsdp_shards(answer: Sequence[Sequence[int]] | None) -> None:
    """Check the shapes of rank 3's FSDP2 shards of fc1.weight (512, 128) and fc2.weight (128, 512).

    Four ranks.

    Args:
        answer: The learner's two shapes, ``(fc1 shard, fc2 shard)``, or None.
    """
    if answer is None:
        return report_not_attempted("two shapes, such as ((1, 2), (3, 4))")
    try:
        fc1, fc2 = (tuple(int(n) for n in shape) for shape in answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not two shapes", "write ((rows, cols), (rows, cols))")
    if (fc1, fc2) == ((128, 128), (32, 512)):
        return report_correct(
            "fully_shard splits every parameter along dimension 0 (Shard(0)), 1/4 of the rows."
        )
    if fc2 == (128, 128):
        return report_not_yet(
            "fc2's shard keeps all 128 rows",
            "FSDP2 shards dimension 0 of every parameter, whatever the layer does",
        )
    if (fc1, fc2) == ((256, 128), (64, 512)):
        return report_not_yet("those are the shards of 2 ranks", "divide the rows by 4")
    report_not_yet(
        f"{(fc1, fc2)} are not the shards", "split the first dimension of each weight into 4"
    )
