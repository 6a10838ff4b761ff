"""Multi-process and multi-device training demos: launchers, their results, TF strategies.

Belongs here: running training scripts in child processes and streaming their output
into the notebook (``torchrun``, ``accelerate launch``, TensorFlow workers configured by
``TF_CONFIG``), with free loopback ports, timeouts and clean-up of every process started;
the ``LaunchResult`` that tells what happened; building a ``tf.distribute`` strategy over
real GPUs or simulated CPU devices; and the checks of chapter 6's exercises on them. The
scripts that the launchers run live in ``helpers.scripts``. POSIX only (process groups).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.runtime.env import describe_cuda_visible_devices, usable_cpus
from helpers.runtime.gpu import nvidia_gpus, tf_logical_cpus, visible_gpus
from helpers.runtime.processes import TF_STARTUP_NOTICES, LaunchResult, free_port, run_processes

if TYPE_CHECKING:
    import tensorflow as tf


def _entry(target: str | Path) -> tuple[list[str], str]:
    """Resolve a script path or a module name into ``(launcher flags, target)``.

    Raises:
        FileNotFoundError: A path (ending in ``.py`` or containing a slash) does not exist.
        ModuleNotFoundError: A module name cannot be found.
    """
    text = str(target)
    if isinstance(target, Path) or text.endswith(".py") or os.sep in text:
        path = Path(text).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"No script at {path} (given as {text!r}).")
        return [], str(path)
    if importlib.util.find_spec(text) is None:
        raise ModuleNotFoundError(f"No module named {text!r} to launch.")
    return ["-m"], text


def _visible_entries(env: Mapping[str, str]) -> list[str]:
    """Return the GPUs that processes started with ``env`` (on top of ours) would see."""
    value = {**os.environ, **env}.get("CUDA_VISIBLE_DEVICES")
    return visible_gpus(nvidia_gpus(), value)


def _process_count(nproc: int | None, env: Mapping[str, str]) -> tuple[int, dict[str, str]]:
    """Decide the processes of a one-machine launch and their devices.

    By default 2 processes: one per GPU when at least 2 GPUs are visible, otherwise on the
    CPU with any GPU hidden from them, so that a demo runs the same everywhere.

    Returns:
        ``(processes, extra environment)``; the environment hides the GPUs for CPU runs.

    Raises:
        ValueError: ``nproc`` is below 1, or more than the GPUs visible when there are some.
    """
    gpus = len(_visible_entries(env))
    count = 2 if nproc is None else nproc
    if count < 1:
        raise ValueError(f"nproc must be at least 1 process; got {count}.")
    if nproc is not None and gpus and count > gpus:
        raise ValueError(
            f"Asked for {count} processes, one per GPU, but only {gpus} GPU(s) are visible "
            f"({describe_cuda_visible_devices()}). Use nproc={gpus} or fewer."
        )
    return count, ({"CUDA_VISIBLE_DEVICES": "-1"} if count > gpus else {})


def _split_gpus(groups: int, per_group: int) -> list[dict[str, str]]:
    """Give each simulated machine its own ``per_group`` GPUs, or, short of them, the CPU."""
    entries = _visible_entries({})
    if len(entries) < groups * per_group:
        return [{"CUDA_VISIBLE_DEVICES": "-1"} for _ in range(groups)]
    return [
        {"CUDA_VISIBLE_DEVICES": ",".join(entries[i * per_group : (i + 1) * per_group])}
        for i in range(groups)
    ]


def _thread_env(processes: int, env: Mapping[str, str]) -> dict[str, str]:
    """Give each process a fair share of the CPU threads unless the caller chose."""
    if "OMP_NUM_THREADS" in env or "OMP_NUM_THREADS" in os.environ:
        return dict(env)
    return {**env, "OMP_NUM_THREADS": str(max(1, usable_cpus() // processes))}


def torchrun_command(
    target: str | Path,
    args: Sequence[str] = (),
    *,
    nproc_per_node: int,
    nnodes: int = 1,
    endpoint: str,
    run_id: str = "book",
) -> list[str]:
    """Build the ``torchrun`` command line (run by this Python, so the right torch is used).

    Args:
        target: A script path or a module name (the ``-m`` flag is added for a module).
        args: The script's own arguments.
        nproc_per_node: Processes on each node (one per GPU on a GPU machine).
        nnodes: Number of nodes (machines) taking part.
        endpoint: ``host:port`` of the c10d rendezvous, the same on every node.
        run_id: A job id, the same on every node.

    Returns:
        The argument list.
    """
    flags, entry = _entry(target)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={run_id}",
        *flags,
        entry,
        *map(str, args),
    ]


def launch_torchrun(
    target: str | Path,
    *args: str,
    nproc: int | None = None,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
    echo: bool = True,
) -> LaunchResult:
    """Run a script under ``torchrun`` on this machine with a free loopback port.

    Args:
        target: A script path or a module name, such as ``"helpers.scripts.ddp_train"``.
        *args: The script's own arguments.
        nproc: Processes to start, one per GPU when GPUs are visible; by default 2, on
            the CPU when fewer than 2 GPUs are visible.
        timeout: Seconds before every process is stopped.
        env: Extra environment variables for the processes.
        echo: Print the output while it arrives.

    Returns:
        The ``LaunchResult``.

    Raises:
        ValueError: ``nproc`` is below 1 or above the number of visible GPUs.
        FileNotFoundError: The script does not exist.
        ModuleNotFoundError: The module does not exist.
    """
    extra = dict(env or {})
    count, devices = _process_count(nproc, extra)
    command = torchrun_command(
        target, args, nproc_per_node=count, endpoint=f"127.0.0.1:{free_port()}"
    )
    # The device plan wins over the caller's variables: a CPU run must hide every GPU.
    environment = _thread_env(count, {**extra, **devices})
    return run_processes([command], envs=[environment], timeout=timeout, echo=echo)


def launch_torchrun_nodes(
    target: str | Path,
    *args: str,
    nnodes: int = 2,
    nproc_per_node: int = 1,
    timeout: float = 300.0,
    echo: bool = True,
) -> LaunchResult:
    """Run ``nnodes`` torchrun agents on this machine as if each were a separate node.

    Every agent gets the command line a real node would get: the same ``--nnodes``,
    rendezvous endpoint and job id; the c10d rendezvous assigns the node ranks. Here the
    endpoint is a free loopback port, and the node that binds it first hosts the store.
    With enough GPUs, each simulated node gets its own ``nproc_per_node`` of them; with
    fewer, all processes run on the CPU.

    Args:
        target: A script path or a module name.
        *args: The script's own arguments.
        nnodes: How many simulated nodes.
        nproc_per_node: Processes per node.
        timeout: Seconds before every process is stopped.
        echo: Print the output while it arrives, prefixed ``node0``, ``node1``, ...

    Returns:
        The ``LaunchResult`` of all agents together.

    Raises:
        ValueError: ``nnodes`` or ``nproc_per_node`` is below 1.
        FileNotFoundError: The script does not exist.
        ModuleNotFoundError: The module does not exist.
    """
    if nnodes < 1 or nproc_per_node < 1:
        raise ValueError(
            f"nnodes and nproc_per_node must be at least 1; got {nnodes} and {nproc_per_node}."
        )
    endpoint = f"127.0.0.1:{free_port()}"
    command = torchrun_command(
        target, args, nproc_per_node=nproc_per_node, nnodes=nnodes, endpoint=endpoint
    )
    envs = [_thread_env(nproc_per_node * nnodes, d) for d in _split_gpus(nnodes, nproc_per_node)]
    return run_processes(
        [command] * nnodes,
        envs=envs,
        labels=[f"node{i}" for i in range(nnodes)],
        timeout=timeout,
        echo=echo,
    )


def accelerate_command(
    target: str | Path, args: Sequence[str] = (), *, nproc: int, port: int
) -> list[str]:
    """Build the ``accelerate launch`` command line for one machine, every option explicit.

    Several processes use ``--multi_gpu``: accelerate's torchrun-based launcher, one process
    per device. (``--cpu`` would select its simple launcher, which starts one process
    unless MPI is set up.) Whether the processes use GPUs or CPUs is decided by the
    environment variable ``ACCELERATE_USE_CPU``, which ``launch_accelerate`` sets.

    Args:
        target: A script path or a module name.
        args: The script's own arguments.
        nproc: Processes to start.
        port: The main process's free port.

    Returns:
        The argument list.
    """
    flags, entry = _entry(target)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *(["--multi_gpu"] if nproc > 1 else []),
        f"--num_processes={nproc}",
        "--num_machines=1",
        f"--main_process_port={port}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        *(["--module"] if flags else []),
        entry,
        *map(str, args),
    ]


def launch_accelerate(
    target: str | Path,
    *args: str,
    nproc: int | None = None,
    cpu: bool | None = None,
    timeout: float = 300.0,
    echo: bool = True,
) -> LaunchResult:
    """Run a script under ``accelerate launch`` on this machine with a free port.

    Args:
        target: A script path or a module name, such as ``"helpers.scripts.finetune_sentiment"``.
        *args: The script's own arguments.
        nproc: Processes to start, one per GPU when GPUs are visible; by default 2, on
            the CPU when fewer than 2 GPUs are visible.
        cpu: Run CPU processes (``ACCELERATE_USE_CPU=true``); by default when there are
            fewer GPUs than processes.
        timeout: Seconds before every process is stopped.
        echo: Print the output while it arrives.

    Returns:
        The ``LaunchResult``.

    Raises:
        ValueError: ``nproc`` is below 1 or above the number of visible GPUs.
        FileNotFoundError: The script does not exist.
        ModuleNotFoundError: The module does not exist.
    """
    count, devices = _process_count(nproc, {})
    on_cpu = bool(devices) if cpu is None else cpu
    env = _thread_env(count, {**devices, "ACCELERATE_USE_CPU": "true"} if on_cpu else {})
    command = accelerate_command(target, args, nproc=count, port=free_port())
    return run_processes([command], envs=[env], timeout=timeout, echo=echo)


def tf_config(ports: Sequence[int], index: int) -> str:
    """Return the ``TF_CONFIG`` value of one worker of a cluster on this machine.

    Args:
        ports: One loopback port per worker.
        index: This worker's position in ``ports``; worker 0 is the chief.

    Returns:
        The JSON text.

    Raises:
        ValueError: ``index`` is not a position in ``ports``.
    """
    if not 0 <= index < len(ports):
        raise ValueError(f"Worker index {index} is outside 0..{len(ports) - 1}.")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def launch_tf_workers(
    target: str | Path,
    *args: str,
    workers: int = 2,
    timeout: float = 300.0,
    echo: bool = True,
) -> LaunchResult:
    """Run a TensorFlow script as ``workers`` processes of one cluster, set up by ``TF_CONFIG``.

    Each worker gets the same cluster (free loopback ports) and its own task index, as
    workers on separate machines would; ``MultiWorkerMirroredStrategy`` reads it. With at
    least one GPU per worker, the GPUs are shared out among the workers; with fewer, the
    workers run on the CPU.

    Args:
        target: A script path or a module name, such as ``"helpers.scripts.tf_multiworker"``.
        *args: The script's own arguments.
        workers: How many worker processes.
        timeout: Seconds before every process is stopped.
        echo: Print the output while it arrives, prefixed ``worker0``, ``worker1``, ...

    Returns:
        The ``LaunchResult`` of all workers.

    Raises:
        ValueError: ``workers`` is below 1.
        FileNotFoundError: The script does not exist.
        ModuleNotFoundError: The module does not exist.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 process; got {workers}.")
    flags, entry = _entry(target)
    command = [sys.executable, *flags, entry, *map(str, args)]
    ports = [free_port() for _ in range(workers)]
    devices = _split_gpus(workers, max(1, len(_visible_entries({})) // workers))
    return run_processes(
        [command] * workers,
        envs=[
            _thread_env(workers, {**devices[i], "TF_CONFIG": tf_config(ports, i)})
            for i in range(workers)
        ],
        labels=[f"worker{i}" for i in range(workers)],
        timeout=timeout,
        echo=echo,
        unechoed=TF_STARTUP_NOTICES,
    )


def tf_strategy(cpu_devices: int = 2) -> tf.distribute.MirroredStrategy:
    """Build a ``MirroredStrategy`` over every visible GPU, or over logical CPU devices.

    Without a GPU, the CPU is split into ``cpu_devices`` logical devices first, so this
    must run before TensorFlow's first operation; the same code then runs unchanged on a
    multi-GPU machine.

    Args:
        cpu_devices: How many logical CPU devices to simulate when there is no GPU.

    Returns:
        The strategy; ``strategy.extended.worker_devices`` lists its devices.

    Raises:
        ValueError: ``cpu_devices`` is below 1.
        RuntimeError: No GPU, and TensorFlow already started with fewer logical CPUs.
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(devices=tf_logical_cpus(cpu_devices))


# Chapter 6 exercises
