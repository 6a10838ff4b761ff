"""Tests of helpers.runtime.distributed: launchers, clean-up, and the DDP and TensorFlow demos.

The demos really run, with 2 processes on the CPU: DDP (gloo) under torchrun on one and
on two simulated nodes, and TensorFlow's MultiWorkerMirroredStrategy with 2 workers set
up by TF_CONFIG. Every launch takes free loopback ports, so these tests run in parallel
(pytest -n 2), and every test checks that no process it started is left behind.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from helpers.checks import ch06 as checks
from helpers.runtime import distributed, processes
from helpers.runtime.processes import LaunchResult, run_processes
from helpers.scripts import ddp_train

DDP = "helpers.scripts.ddp_train"
TF_DEMO = "helpers.scripts.tf_multiworker"


pytestmark = pytest.mark.usefixtures("no_process_left_behind")


def _script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def _assert_gone(pids: list[int]) -> None:
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid


def test_free_port_can_be_bound():
    import socket

    port = processes.free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_run_processes_streams_labelled_output(tmp_path, capsys):
    script = _script(tmp_path, "hello.py", "import sys\nprint('hello from', sys.argv[1])\n")
    commands = [[sys.executable, str(script), str(i)] for i in range(2)]
    result = run_processes(commands, labels=["a", "b"], timeout=60)
    assert result.ok and result.returncode == 0 and not result.timed_out
    assert sorted(result.lines) == [("a", "hello from 0"), ("b", "hello from 1")]
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == ["[a] hello from 0", "[b] hello from 1"]


def test_start_up_notices_are_kept_but_not_echoed(capsys):
    code = "print('oneDNN custom operations are on. You may see ...'); print('trained')"
    result = run_processes(
        [[sys.executable, "-c", code]], unechoed=processes.TF_STARTUP_NOTICES
    ).check()
    assert capsys.readouterr().out == "trained\n"
    assert [text for _, text in result.lines][0].startswith("oneDNN custom operations")


def test_run_processes_rejects_mismatched_arguments():
    with pytest.raises(ValueError, match="No commands"):
        run_processes([])
    with pytest.raises(ValueError, match="2 commands need as many envs and labels; got 1 envs"):
        run_processes([["true"], ["true"]], envs=[{}])


def test_crashing_child_shows_traceback_and_leaves_no_orphan(tmp_path, capsys):
    # The child starts a grandchild in its own session (as torchrun does with its
    # workers), then crashes: the grandchild must not outlive the launch.
    script = _script(
        tmp_path,
        "crash.py",
        """
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                      start_new_session=True)
        print("grandchild", grandchild.pid, flush=True)
        time.sleep(1)
        1 / 0
        """,
    )
    result = run_processes([[sys.executable, str(script)]], timeout=60)
    assert result.returncode == 1 and not result.ok
    assert result.traceback.startswith("Traceback (most recent call last):")
    assert result.traceback.endswith("ZeroDivisionError: division by zero")
    assert "Launch failed: exit status 1 (the traceback above shows where)" in (
        capsys.readouterr().out
    )
    grandchild = int(next(t for _, t in result.lines if t.startswith("grandchild")).split()[1])
    _assert_gone([grandchild])
    with pytest.raises(processes.LaunchError, match="ZeroDivisionError: division by zero"):
        result.check()


def test_torchrun_workers_die_with_a_killed_kernel(tmp_path):
    # A notebook kernel that is restarted dies without running its clean-up. Its torchrun,
    # and torchrun's workers, must not live on.
    worker = _script(
        tmp_path,
        "sleeper.py",
        """
        import os, time
        from helpers.scripts import say  # one write per line: the two workers share a pipe
        say(f"worker {os.getpid()}")
        time.sleep(120)
        """,
    )
    kernel = _script(
        tmp_path,
        "kernel.py",
        f"""
        from helpers.runtime.distributed import launch_torchrun
        launch_torchrun({str(worker)!r}, nproc=2, timeout=300)
        """,
    )
    parent = subprocess.Popen(
        [sys.executable, str(kernel)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(parent.stdout), daemon=True)
    reader.start()
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and parent.poll() is None:
            found = (re.fullmatch(r"worker (\d+)\s*", line) for line in list(lines))
            workers = [int(match.group(1)) for match in found if match]
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the workers did not start:\n" + "".join(lines)
        family = psutil.Process(parent.pid).children(recursive=True)
        assert {p.pid for p in family} >= set(workers)
    finally:
        parent.kill()  # as a kernel restart does: no clean-up runs in the parent
        parent.wait()
    reader.join(timeout=30)
    _, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], [p.cmdline()[:3] for p in alive]


def test_hanging_child_is_killed_at_the_timeout(tmp_path):
    # A child that ignores SIGTERM, with a grandchild in another session doing the same:
    # both must be killed (SIGKILL after the grace period) once the timeout passes.
    script = _script(
        tmp_path,
        "hang.py",
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
        grandchild = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        print("pids", grandchild.pid, flush=True)
        time.sleep(300)
        """,
    )
    start = time.monotonic()
    result = run_processes([[sys.executable, str(script)]], timeout=3, echo=False)
    assert result.timed_out and result.returncode == processes.TIMED_OUT
    assert time.monotonic() - start < 3 + 2 * processes._TERMINATE_GRACE_S + 5
    _assert_gone([int(next(t for _, t in result.lines if t.startswith("pids")).split()[1])])


def test_peers_of_a_failed_process_are_stopped(tmp_path):
    fail = _script(tmp_path, "fail.py", "import sys\nsys.exit(3)\n")
    wait = _script(tmp_path, "wait.py", "import time\ntime.sleep(300)\n")
    start = time.monotonic()
    result = run_processes(
        [[sys.executable, str(wait)], [sys.executable, str(fail)]], timeout=120, echo=False
    )
    assert result.returncode == 3  # the first failure's status, not the stopped peer's
    assert time.monotonic() - start < 60


def test_launch_result_metrics_and_traceback_parsing():
    lines = (
        ("", '{"loss": 1.0}'),
        ("", "[rank1]: Traceback (most recent call last):"),
        ("", "[rank0]: unrelated"),
        ("", '[rank1]:   File "x.py", line 1, in <module>'),
        ("", "[rank1]: ValueError: bad"),
        ("", "Traceback (most recent call last):"),
        ("", "ChildFailedError"),
        ("", '{"loss": 0.5}'),
        ("", "torchrun says goodbye"),
    )
    result = LaunchResult((("torchrun",),), 1, lines, 1.0, False)
    assert result.metrics() == {"loss": 0.5}
    assert result.traceback.splitlines() == [lines[1][1], lines[3][1], lines[4][1]]
    with pytest.raises(processes.LaunchError, match="No JSON metrics line"):
        LaunchResult((("x",),), 0, (("", "no json"),), 1.0, False).metrics()


def test_bad_launch_arguments(tmp_path, monkeypatch, two_gpu_driver):
    with pytest.raises(ValueError, match="nproc must be at least 1 process; got 0"):
        distributed.launch_torchrun(DDP, nproc=0)
    with pytest.raises(FileNotFoundError, match="No script at .*missing.py"):
        distributed.launch_torchrun(tmp_path / "missing.py", nproc=1)
    with pytest.raises(FileNotFoundError, match="No script"):
        distributed.launch_tf_workers("no/such/script.py")
    with pytest.raises(ModuleNotFoundError, match="No module named 'helpers.scripts.nothing'"):
        distributed.launch_accelerate("helpers.scripts.nothing", nproc=1)
    with pytest.raises(ValueError, match="workers must be at least 1 process; got 0"):
        distributed.launch_tf_workers(TF_DEMO, workers=0)
    with pytest.raises(ValueError, match="nnodes and nproc_per_node must be at least 1; got 0"):
        distributed.launch_torchrun_nodes(DDP, nnodes=0)
    with pytest.raises(ValueError, match=r"Worker index 2 is outside 0..1"):
        distributed.tf_config([1, 2], 2)
    # With one GPU visible, a second process has no GPU of its own.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with pytest.raises(ValueError) as error:
        distributed.launch_torchrun(DDP, nproc=2)
    assert str(error.value) == (
        "Asked for 2 processes, one per GPU, but only 1 GPU(s) are visible "
        "(CUDA_VISIBLE_DEVICES='1'). Use nproc=1 or fewer."
    )
    with pytest.raises(ValueError, match="Asked for 3 processes, one per GPU, but only 1 GPU"):
        distributed.launch_accelerate(DDP, nproc=3)


def test_cpu_fallback_hides_the_gpus_even_from_a_callers_environment(tmp_path, two_gpu_driver):
    # One GPU left visible by the caller, two processes asked for: the run goes to the CPU,
    # and the caller's CUDA_VISIBLE_DEVICES must not undo the plan's "-1" (two ranks on one
    # GPU would crash on cuda:1).
    script = _script(
        tmp_path,
        "show_devices.py",
        """
        import json, os
        from helpers.scripts import say  # one write per line: the two ranks share a pipe
        say(json.dumps({"rank": os.environ["RANK"], "cvd": os.environ["CUDA_VISIBLE_DEVICES"]}))
        """,
    )
    result = distributed.launch_torchrun(
        script, env={"CUDA_VISIBLE_DEVICES": "0"}, timeout=120, echo=False
    ).check()
    seen = [json.loads(text) for _, text in result.lines if text.startswith('{"rank"')]
    assert sorted(entry["rank"] for entry in seen) == ["0", "1"]
    assert {entry["cvd"] for entry in seen} == {"-1"}


def test_device_plans(two_gpu_driver, monkeypatch):
    # Two GPUs: the default 2 processes get one each, and so do 2 simulated nodes.
    assert distributed._process_count(None, {}) == (2, {})
    assert distributed._split_gpus(2, 1) == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]
    # One GPU: the default 2 processes, or 2 nodes, run on the CPU with the GPU hidden.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert distributed._process_count(None, {}) == (2, {"CUDA_VISIBLE_DEVICES": "-1"})
    assert distributed._process_count(1, {}) == (1, {})
    assert distributed._split_gpus(2, 1) == [{"CUDA_VISIBLE_DEVICES": "-1"}] * 2


def test_command_lines(tmp_path):
    script = _script(tmp_path, "train.py", "")
    command = distributed.torchrun_command(
        script, ["--lr", "0.1"], nproc_per_node=8, nnodes=2, endpoint="10.0.0.1:29500"
    )
    assert command[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=8",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=10.0.0.1:29500",
        "--rdzv-id=book",
        str(script),
        "--lr",
        "0.1",
    ]
    assert distributed.torchrun_command(DDP, nproc_per_node=1, endpoint="h:1")[-2:] == ["-m", DDP]
    accelerate = distributed.accelerate_command(DDP, nproc=2, port=1234)
    assert accelerate[3:6] == ["--multi_gpu", "--num_processes=2", "--num_machines=1"]
    assert "--main_process_port=1234" in accelerate and accelerate[-2:] == ["--module", DDP]
    config = json.loads(distributed.tf_config([5000, 5001], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:5000", "127.0.0.1:5001"]},
        "task": {"type": "worker", "index": 1},
    }


def _ddp_params(folder: Path, world: int) -> list[np.ndarray]:
    return [np.load(folder / f"params_rank{rank}.npy") for rank in range(world)]


def _loss_fell(losses: list[float]) -> bool:
    return np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_ddp_on_two_processes_matches_one_process_with_the_global_batch(tmp_path):
    result = distributed.launch_torchrun(
        DDP, "--output-dir", str(tmp_path), nproc=2, echo=False
    ).check()
    metrics = result.metrics()
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    assert metrics["global_batch"] == 64
    assert _loss_fell(metrics["losses"])
    first, second = _ddp_params(tmp_path, 2)
    assert np.array_equal(first, second)  # the replicas are identical, bit for bit
    assert metrics["max_param_diff_across_ranks"] == 0.0
    # DDP with 2 ranks of 32 takes the same steps as one process with batches of 64.
    import torch

    model = ddp_train.make_model(seed=0)
    loader = ddp_train.make_loader(ddp_train.make_data(seed=0), 64, rank=0, world_size=1)
    losses = ddp_train.train(model, loader, steps=40, lr=0.05, device=torch.device("cpu"))
    np.testing.assert_allclose(metrics["losses"], losses, atol=1e-3)
    np.testing.assert_allclose(first, ddp_train.flat_parameters(model), atol=1e-5)


def test_crash_on_one_of_two_simulated_nodes_is_reported_and_cleaned_up(tmp_path):
    # Two torchrun agents on loopback, one process each: rank 1 fails at step 2, its
    # peer loses the connection, both agents exit non-zero, and nothing is left running.
    result = distributed.launch_torchrun_nodes(
        DDP, "--output-dir", str(tmp_path), "--crash-at-step", "2", nnodes=2, echo=False
    )
    assert {label for label, _ in result.lines} == {"node0", "node1"}
    assert result.returncode != 0 and not result.timed_out
    assert result.traceback.startswith("[rank1]: Traceback (most recent call last):")
    assert result.traceback.endswith("RuntimeError: simulated failure on rank 1 at step 2")


def test_tf_multiworker_custom_loop_works_and_keras_fit_still_fails(tmp_path):
    result = distributed.launch_tf_workers(
        TF_DEMO, "--output-dir", str(tmp_path), "--try-keras-fit", echo=False
    ).check()
    metrics = result.metrics()
    assert metrics["workers"] == 2 and metrics["replicas"] == 2
    assert metrics["global_batch"] == 64
    assert _loss_fell(metrics["losses"])
    weights = [np.load(tmp_path / f"weights_worker{i}.npy") for i in range(2)]
    assert np.array_equal(*weights)
    # Keras 3 fit under MultiWorkerMirroredStrategy fails upstream (keras-team/keras#20585).
    # If this line fails because fit now works, update chapter 6 and notebook 06b.
    assert metrics["keras_fit_error"].startswith(
        "ValueError: Attempt to convert a value (PerReplica:{"
    )


@pytest.mark.parametrize(
    ("check", "right", "wrong"),
    [
        (checks.check_per_replica_batch, 32, 96),
        (checks.check_replica_loss, lambda losses, batch: np.sum(losses) / batch, np.mean),
        (checks.check_global_batch, 256, 32),
        (checks.check_rank_indices, [1, 3, 5, 7, 9], [5, 6, 7, 8, 9]),
        (
            checks.check_node_command,
            "torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d "
            "--rdzv-endpoint=10.0.0.1:29500 train.py",
            "torchrun --standalone --nproc-per-node=8 train.py",
        ),
        (checks.check_trainer_mode, "not_distributed", "distributed"),
        (checks.check_effective_batch, 256, 128),
    ],
)
def test_exercise_checks(check, right, wrong, capsys):
    check(right)
    assert capsys.readouterr().out.startswith("Correct")
    for answer in (wrong, None, "x", 99):
        check(answer)
        assert capsys.readouterr().out.startswith(("Not yet", "Not attempted"))
