"""Multi-process and multi-device training demos: launchers, their results, TF strategies.

Belongs here: running training scripts in child processes and streaming their output
into the notebook (``torchrun``, ``accelerate launch``, TensorFlow workers configured by
``TF_CONFIG``), with free loopback ports, timeouts and clean-up of every process started;
the ``LaunchResult`` that tells what happened; building a ``tf.distribute`` strategy over
real GPUs or simulated CPU devices; and the checks of chapter 6's exercises on them. The
scripts that the launchers run live in ``helpers.demos``. POSIX only (process groups).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.env import describe_cuda_visible_devices, usable_cpus
from helpers.exercises import report_correct, report_not_attempted, report_not_yet
from helpers.gpu import nvidia_gpus, tf_logical_cpus, visible_gpus

if TYPE_CHECKING:
    import tensorflow as tf

TIMED_OUT = 124  # the exit status reported after a timeout, as coreutils' `timeout` does
_TERMINATE_GRACE_S = 5.0  # how long processes get between SIGTERM and SIGKILL
_FAIL_FAST_GRACE_S = 2.0  # how long the others may run on after one process failed
_TRACEBACK_START = "Traceback (most recent call last):"
_ERROR_PREFIX = re.compile(r"(\[\w+\]: ?)?")  # torchrun's workers print "[rank1]: Traceback"


class LaunchError(RuntimeError):
    """Raised by ``LaunchResult.check`` when the launched processes did not succeed."""


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did: the commands, the exit status, every output line, the time taken.

    ``lines`` holds ``(label, text)`` pairs in arrival order; the label names the process
    (empty when only one was launched).
    """

    commands: tuple[tuple[str, ...], ...]
    returncode: int
    lines: tuple[tuple[str, str], ...]
    seconds: float
    timed_out: bool

    @property
    def ok(self) -> bool:
        """Whether every process exited with status 0 in time."""
        return self.returncode == 0 and not self.timed_out

    @property
    def output(self) -> str:
        """All output lines, each prefixed with its process's label."""
        return "\n".join(f"[{label}] {text}" if label else text for label, text in self.lines)

    @property
    def traceback(self) -> str:
        """The first Python traceback in the output, with its exception line, or ``""``.

        The first one is normally the root cause: the processes that fail after it are
        usually peers that lost their connection to the failed one. A prefix such as
        ``[rank1]:``, which torchrun's workers put on their error lines, is kept.
        """
        for i, (label, text) in enumerate(self.lines):
            prefix = _ERROR_PREFIX.match(text).group(0)
            if not text[len(prefix) :].startswith(_TRACEBACK_START):
                continue
            block = [text]
            for line_label, line in self.lines[i + 1 :]:
                if line_label != label or not line.startswith(prefix):
                    continue
                block.append(line)
                body = line[len(prefix) :]
                if body and not body[0].isspace():
                    break  # the exception line ends the traceback
            return "\n".join(block)
        return ""

    def metrics(self) -> dict[str, Any]:
        """Return the last output line that is a JSON object (the scripts' metrics line).

        Returns:
            The parsed object.

        Raises:
            LaunchError: No line of the output is a JSON object.
        """
        for _, text in reversed(self.lines):
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return value
        raise LaunchError(f"No JSON metrics line in the output of {self._describe()}.")

    def check(self) -> LaunchResult:
        """Return this result if the launch succeeded.

        Returns:
            This result.

        Raises:
            LaunchError: A process failed or the launch timed out; the message ends with
                the child's traceback when there is one.
        """
        if self.ok:
            return self
        what = "timed out" if self.timed_out else f"failed with exit status {self.returncode}"
        detail = f"\n{self.traceback}" if self.traceback else ""
        raise LaunchError(f"{self._describe()} {what} after {self.seconds:.1f} s.{detail}")

    def _describe(self) -> str:
        return " ".join(self.commands[0][:4]) + (" ..." if len(self.commands[0]) > 4 else "")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` now (the OS picks it).

    Another process could take it before it is used; in practice the OS spreads the ports
    it hands out, so launches running in parallel get different ones.

    Args:
        host: The address to bind.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _pump(stream: Any, index: int, lines: queue.Queue) -> None:
    """Copy a child's output into the queue line by line; put ``None`` at its end."""
    for raw in iter(stream.readline, b""):
        lines.put((index, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    stream.close()
    lines.put((index, None))


def _descendants(processes: Sequence[subprocess.Popen], known: dict[int, Any]) -> None:
    """Add the live descendants of ``processes`` to ``known`` (pid to ``psutil.Process``)."""
    import psutil

    for process in processes:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            known.setdefault(child.pid, child)


def _terminate(processes: Sequence[subprocess.Popen], known: dict[int, Any]) -> None:
    """Stop every launched process and every descendant seen: SIGTERM, then SIGKILL.

    Each launched process leads its own process group; ``torchrun`` also starts each
    worker in a new session, so descendants are signalled one by one as well.
    """
    import psutil

    _descendants(processes, known)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            if process.poll() is None:
                process.send_signal(sig)
            try:
                os.killpg(process.pid, sig)  # its group, which outlives it while members remain
            except (ProcessLookupError, PermissionError):
                pass
        alive = []
        for child in known.values():
            try:
                if child.is_running():  # is_running also checks that the pid was not reused
                    child.send_signal(sig)
                    alive.append(child)
            except psutil.NoSuchProcess:
                continue
        deadline = time.monotonic() + _TERMINATE_GRACE_S
        _, survivors = psutil.wait_procs(alive, timeout=_TERMINATE_GRACE_S)
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue
        if not survivors and all(process.poll() is not None for process in processes):
            break


def run_processes(
    commands: Sequence[Sequence[str]],
    *,
    envs: Sequence[Mapping[str, str]] | None = None,
    labels: Sequence[str] | None = None,
    timeout: float = 300.0,
    echo: bool = True,
) -> LaunchResult:
    """Run processes side by side, stream their output, and leave none of them behind.

    Each command runs in its own process group with unbuffered Python output; stdout and
    stderr are merged and printed line by line as they arrive (prefixed with the label).
    When one process fails, the others are stopped shortly after (a peer waiting for it
    would hang). On a timeout, or at the end, every process started and every descendant
    ever seen is terminated, then killed if it does not stop.

    Args:
        commands: One argument list per process.
        envs: Extra environment variables per process, on top of this one's.
        labels: A short name per process for the output prefix; none for one process.
        timeout: Seconds before everything is stopped.
        echo: Print the output while it arrives.

    Returns:
        The ``LaunchResult``: status 0 if all succeeded, else the first failure's status,
        or ``TIMED_OUT`` (124) after a timeout.

    Raises:
        ValueError: No commands, or ``envs``/``labels`` of the wrong length.
    """
    if not commands:
        raise ValueError("No commands to run.")
    envs = envs or [{} for _ in commands]
    if labels is None:
        labels = [""] if len(commands) == 1 else [f"p{i}" for i in range(len(commands))]
    if len(envs) != len(commands) or len(labels) != len(commands):
        raise ValueError(
            f"{len(commands)} commands need as many envs and labels; got {len(envs)} envs "
            f"and {len(labels)} labels."
        )
    lines: queue.Queue = queue.Queue()
    collected: list[tuple[str, str]] = []
    processes: list[subprocess.Popen] = []
    known: dict[int, Any] = {}
    start = time.monotonic()
    try:
        for command, extra in zip(commands, envs, strict=True):
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            processes.append(process)
            threading.Thread(
                target=_pump, args=(process.stdout, len(processes) - 1, lines), daemon=True
            ).start()
        failures: list[int] = []  # pids, in the order in which they failed
        failed_at = stopped_at = None
        open_streams = len(processes)
        timed_out = False
        last_scan = 0.0
        while True:
            try:
                index, text = lines.get(timeout=0.1)
            except queue.Empty:
                pass
            else:
                if text is None:
                    open_streams -= 1
                else:
                    collected.append((labels[index], text))
                    if echo:
                        print(f"[{labels[index]}] {text}" if labels[index] else text, flush=True)
            now = time.monotonic()
            if now - last_scan > 0.5:
                _descendants(processes, known)
                last_scan = now
            for process in processes:
                if process.poll() not in (None, 0) and process.pid not in failures:
                    failures.append(process.pid)
                    failed_at = failed_at or now
            finished = all(p.poll() is not None for p in processes)
            if finished and not open_streams:
                break
            if stopped_at is None and (
                finished or (failed_at and now - failed_at > _FAIL_FAST_GRACE_S)
            ):
                _terminate(processes, known)  # stop the peers, and descendants holding pipes
                stopped_at = time.monotonic()
            if stopped_at is not None and time.monotonic() - stopped_at > _TERMINATE_GRACE_S:
                break  # only an unseen process still holds a pipe: stop reading
            if now - start > timeout:
                timed_out = True
                break
    finally:
        _terminate(processes, known)
    while not lines.empty():
        index, text = lines.get()
        if text is not None:
            collected.append((labels[index], text))
            if echo:
                print(f"[{labels[index]}] {text}" if labels[index] else text, flush=True)
    codes = {p.pid: p.returncode for p in processes}
    returncode = TIMED_OUT if timed_out else (codes[failures[0]] if failures else 0)
    result = LaunchResult(
        commands=tuple(tuple(command) for command in commands),
        returncode=returncode,
        lines=tuple(collected),
        seconds=time.monotonic() - start,
        timed_out=timed_out,
    )
    if echo and not result.ok:
        what = f"timed out after {timeout:g} s" if timed_out else f"exit status {returncode}"
        where = " (the traceback above shows where)" if result.traceback else ""
        print(f"Launch failed: {what}{where}; every process it started is stopped.", flush=True)
    return result


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
        target: A script path or a module name, such as ``"helpers.demos.ddp_train"``.
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
    environment = _thread_env(count, {**devices, **extra})
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
        target: A script path or a module name, such as ``"helpers.finetune"``.
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
        target: A script path or a module name, such as ``"helpers.demos.tf_multiworker"``.
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
