"""Child processes run side by side, their output streamed, and none of them left behind.

Belongs here: the general process supervisor (``run_processes``), what it returns
(``LaunchResult``, with the child's traceback and its JSON metrics line), free loopback
ports, and terminating whole process trees. Nothing here knows about distributed training:
``helpers.runtime.distributed`` builds the ``torchrun``/``accelerate``/TensorFlow commands on
top of it. POSIX only (process groups).
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TIMED_OUT = 124  # the exit status reported after a timeout, as coreutils' `timeout` does


_TERMINATE_GRACE_S = 5.0  # how long processes get between SIGTERM and SIGKILL


_FAIL_FAST_GRACE_S = 2.0  # how long the others may run on after one process failed


# What TensorFlow prints at start-up on CPUs where oneDNN's custom operations are on,
# before its logging starts, so that TF_CPP_MIN_LOG_LEVEL cannot hide it.
TF_STARTUP_NOTICES = ("absl::InitializeLog() is called", "oneDNN custom operations are on")
_PR_SET_PDEATHSIG = 1  # prctl option from <linux/prctl.h>
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


def _die_with_parent() -> None:
    """In the child, before it runs: ask Linux to send SIGTERM when the parent dies.

    A notebook kernel that is restarted or killed cannot run its clean-up, and the children
    live in their own sessions; with this, ``torchrun`` gets SIGTERM and stops its workers.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
    unechoed: Sequence[str] = (),
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
        unechoed: Lines containing any of these are kept in the result but not printed
            (start-up notices that no setting silences, such as ``TF_STARTUP_NOTICES``).

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
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
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
                    if echo and not any(notice in text for notice in unechoed):
                        print(f"[{labels[index]}] {text}" if labels[index] else text, flush=True)
            now = time.monotonic()
            if now - last_scan > 0.5:
                _descendants(processes, known)
                last_scan = now
            # One poll per process and pass: a process that exits between a failure scan
            # and a "finished" test must not end the loop unrecorded (its status lost).
            statuses = [process.poll() for process in processes]
            for process, status in zip(processes, statuses, strict=True):
                if status not in (None, 0) and process.pid not in failures:
                    failures.append(process.pid)
                    failed_at = failed_at or now
            finished = all(status is not None for status in statuses)
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
            if echo and not any(notice in text for notice in unechoed):
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
