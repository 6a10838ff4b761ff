"""GPU set-up: choosing visible GPUs in time, TensorFlow's memory and devices, a GPU doctor.

Belongs here: what the NVIDIA driver reports (without any framework), which GPUs
``CUDA_VISIBLE_DEVICES`` leaves visible, selecting GPUs before a framework initialises
CUDA (and a clear error when it is too late), TensorFlow memory growth, logical CPU
devices that let TensorFlow simulate several devices on one CPU, the "GPU doctor" report
that explains common misconfigurations with their fixes, and the checks of chapter 6a's
exercises. Device choice itself (``torch_device``, ``tf_device``) lives in ``helpers.runtime.env``.
Frameworks are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from helpers.runtime.env import (
    GIB,
    MIB,
    EnvironmentInfo,
    describe_cuda_visible_devices,
    environment_info,
    parse_cuda_visible_devices,
)


class GpuSelectionError(RuntimeError):
    """Raised when GPUs are selected after a framework has already initialised CUDA."""


@dataclass(frozen=True)
class PhysicalGpu:
    """One GPU as the NVIDIA driver lists it (``nvidia-smi``), independent of any framework."""

    index: int
    name: str
    uuid: str
    memory_bytes: int | None
    driver: str

    def __str__(self) -> str:
        memory = "" if self.memory_bytes is None else f" ({self.memory_bytes / GIB:.0f} GiB)"
        return f"{self.index}: {self.name}{memory}"


def nvidia_gpus() -> tuple[PhysicalGpu, ...]:
    """List the GPUs that the NVIDIA driver reports, by asking ``nvidia-smi``.

    This imports no framework and does not initialise CUDA in this process, and it ignores
    ``CUDA_VISIBLE_DEVICES`` (the driver always lists every GPU, in PCI bus order).

    Returns:
        The GPUs, empty when ``nvidia-smi`` is missing or fails (no driver, no GPU).
    """
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return ()
    query = "--query-gpu=index,name,uuid,memory.total,driver_version"
    try:
        run = subprocess.run(
            [executable, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if run.returncode != 0:
        return ()
    gpus = []
    for line in run.stdout.splitlines():
        if not line.strip():
            continue
        try:
            gpus.append(_parse_nvidia_smi_line(line))
        except ValueError:  # a notice, or a driver that prints a field differently
            warnings.warn(
                f"Ignoring a line from nvidia-smi that is not a GPU's description: {line!r}",
                stacklevel=2,
            )
    return tuple(gpus)


def _parse_nvidia_smi_line(line: str) -> PhysicalGpu:
    """Parse one line of ``nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version``.

    Raises:
        ValueError: The line does not have those five fields, or its index is not a number.
    """
    parts = [part.strip() for part in line.split(",")]
    if len(parts) != 5 or not parts[0].isdigit():
        raise ValueError(f"Not a GPU line of nvidia-smi's query: {line!r}")
    index, name, uuid, memory, driver = parts
    memory_bytes = int(float(memory) * MIB) if memory.replace(".", "").isdigit() else None
    return PhysicalGpu(int(index), name, uuid, memory_bytes, driver)


def visible_gpus(gpus: Sequence[PhysicalGpu], value: str | None) -> list[str]:
    """Return the entries of ``CUDA_VISIBLE_DEVICES`` that CUDA accepts on these GPUs.

    On top of ``parse_cuda_visible_devices``: an ordinal beyond the GPU count, or a
    ``GPU-`` UUID that matches no GPU, is invalid and hides itself and every later entry.
    ``MIG-`` entries are kept as written (``nvidia-smi``'s GPU query does not list them).

    Args:
        gpus: The physical GPUs, from ``nvidia_gpus()``.
        value: The variable's value, or None when it is unset.

    Returns:
        The accepted entries, in the order in which frameworks number them.
    """
    entries = parse_cuda_visible_devices(value)
    if entries is None:
        return [str(gpu.index) for gpu in gpus]
    accepted = []
    for entry in entries:
        if entry.isdigit():
            valid = int(entry) < len(gpus)
        elif entry.startswith("GPU-"):
            valid = any(gpu.uuid.startswith(entry) for gpu in gpus)
        else:
            valid = True
        if not valid:
            break
        accepted.append(entry)
    return accepted


def visible_gpu_count(env: Mapping[str, str] | None = None) -> int:
    """Count the GPUs a new process would see, from the driver and ``CUDA_VISIBLE_DEVICES``.

    Args:
        env: The environment of that process; this process's environment when None.

    Returns:
        How many GPUs CUDA would show (0 on a machine without an NVIDIA driver).
    """
    environment = os.environ if env is None else env
    return len(visible_gpus(nvidia_gpus(), environment.get("CUDA_VISIBLE_DEVICES")))


def cuda_holders() -> list[str]:
    """Say what in this process has already initialised CUDA (or the framework's GPU setup).

    CUDA reads ``CUDA_VISIBLE_DEVICES`` once, when the driver starts in a process; after
    that, changing the variable changes nothing. TensorFlow counts as initialised once it
    has listed its physical devices (even a CPU-only build, so that code behaves the same
    on every machine); PyTorch once ``torch.cuda`` is initialised; and any process once the
    CUDA driver library is loaded.

    Returns:
        One phrase per holder, empty when selecting GPUs would still take effect.
    """
    holders = []
    if "tensorflow" in sys.modules:
        from tensorflow.python.eager import context

        if context.context()._physical_devices is not None:
            holders.append("TensorFlow has listed its devices")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        holders.append("PyTorch has initialised CUDA")
    maps = Path("/proc/self/maps")
    if maps.exists() and "libcuda.so" in maps.read_text():
        holders.append("the CUDA driver library (libcuda) is loaded")
    return holders


def select_gpus(gpus: Sequence[int] | str) -> str:
    """Make only some GPUs visible to this process, before any framework initialises CUDA.

    Sets ``CUDA_VISIBLE_DEVICES`` (and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless it is set, so
    that index N means ``nvidia-smi``'s GPU N). Frameworks then number the selected GPUs
    0, 1, ... in the order given. An empty sequence hides every GPU.

    Args:
        gpus: Indices as ``nvidia-smi`` numbers them, or a raw value such as ``"GPU-8a3c"``.

    Returns:
        The value now in ``CUDA_VISIBLE_DEVICES``.

    Raises:
        ValueError: An index is negative, repeated or beyond the GPUs the driver lists.
        GpuSelectionError: A framework in this process has already initialised CUDA, so the
            new value would be silently ignored (unless it equals the current one).
    """
    if isinstance(gpus, str):
        value = gpus.strip()
        entries = parse_cuda_visible_devices(value) or []
        if value not in ("", "-1") and len(entries) != len(value.split(",")):
            raise ValueError(
                f"{gpus!r} is not a list of GPUs: CUDA would hide every GPU from the first "
                "entry that is not an index or a GPU-/MIG- UUID on. Give indices such as "
                "[0, 1], a value such as '0,1' or 'GPU-8a3c', or '-1' to hide every GPU."
            )
    else:
        indices = list(gpus)
        if len(set(indices)) != len(indices) or any(index < 0 for index in indices):
            raise ValueError(f"GPU indices must be distinct and non-negative; got {indices}.")
        present = nvidia_gpus()
        missing = [index for index in indices if index >= len(present)]
        if missing:
            listed = "; ".join(str(gpu) for gpu in present) or "none (no NVIDIA driver found)"
            raise ValueError(
                f"Asked for GPU(s) {missing}, but the driver lists {len(present)} GPU(s): {listed}."
            )
        value = ",".join(str(index) for index in indices) if indices else "-1"
    holders = cuda_holders()
    if holders and os.environ.get("CUDA_VISIBLE_DEVICES") != value:
        raise GpuSelectionError(
            f"Too late to set CUDA_VISIBLE_DEVICES={value!r} in this process: "
            f"{' and '.join(holders)}, so CUDA has already read the variable "
            f"({describe_cuda_visible_devices()}) and will not read it again. Restart the "
            "kernel and call select_gpus before importing a framework, or start Python "
            f"with CUDA_VISIBLE_DEVICES={value} python ..."
        )
    os.environ["CUDA_VISIBLE_DEVICES"] = value
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return value


def tf_memory_growth(enabled: bool = True) -> list[str]:
    """Let TensorFlow allocate GPU memory as it needs it, instead of taking almost all of it.

    Must run before TensorFlow's first operation. ``TF_FORCE_GPU_ALLOW_GROWTH=true`` in the
    environment before starting Python does the same.

    Args:
        enabled: True for growth, False for TensorFlow's default (reserve most memory).

    Returns:
        The physical GPUs configured (empty without a GPU: nothing to configure).

    Raises:
        RuntimeError: TensorFlow's runtime already started, so the setting cannot change.
    """
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        if tf.config.experimental.get_memory_growth(device) == enabled:
            names.append(device.name)
            continue
        try:
            tf.config.experimental.set_memory_growth(device, enabled)
        except RuntimeError as error:
            raise RuntimeError(
                f"Cannot set memory growth of {device.name} to {enabled}: TensorFlow's runtime "
                "has already started (an operation ran). Call tf_memory_growth first thing "
                "after the setup cell, or set TF_FORCE_GPU_ALLOW_GROWTH=true before starting "
                "Python."
            ) from error
        names.append(device.name)
    return names


def tf_logical_cpus(count: int) -> list[str]:
    """Split TensorFlow's CPU into ``count`` logical devices, to simulate several devices.

    Each logical CPU device behaves like a separate device for ``tf.distribute``, so a
    ``MirroredStrategy`` over them runs the same code as over several GPUs. It must run
    before TensorFlow's first operation; afterwards the existing split is used when it has
    enough devices.

    Args:
        count: The number of logical CPU devices, at least 1.

    Returns:
        The names of the first ``count`` logical CPU devices.

    Raises:
        ValueError: ``count`` is below 1.
        RuntimeError: TensorFlow's runtime already started with fewer logical CPUs.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1; got {count}.")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) < count:
            raise RuntimeError(
                f"TensorFlow's runtime already started with {len(existing)} logical CPU "
                f"device(s), and {count} were asked for. Logical devices must be configured "
                "before TensorFlow's first operation: restart the kernel and call "
                "tf_logical_cpus right after the setup cell."
            ) from error
    return [device.name for device in tf.config.list_logical_devices("CPU")[:count]]


def tf_memory_growth_state() -> dict[str, bool]:
    """Report TensorFlow's memory-growth setting for each physical GPU.

    Returns:
        Device name to True (growth) or False (reserve most memory); empty without GPUs.
    """
    import tensorflow as tf

    forced = os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "").lower() == "true"
    return {
        device.name: forced or bool(tf.config.experimental.get_memory_growth(device))
        for device in tf.config.list_physical_devices("GPU")
    }


@dataclass(frozen=True)
class GpuFacts:
    """What the doctor looks at: the driver's GPUs and what each framework sees and holds.

    A framework's fields are None when it is not installed.
    """

    driver_gpus: tuple[PhysicalGpu, ...]
    cuda_visible_devices: str | None
    torch_cuda_build: bool | None = None
    torch_gpu_count: int | None = None
    tf_cuda_build: bool | None = None
    tf_gpu_count: int | None = None
    tf_memory_growth: dict[str, bool] = field(default_factory=dict)
    torch_imported: bool = False
    tf_imported: bool = False


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what is wrong (or fine) and how to fix it."""

    ok: bool
    message: str
    fix: str = ""

    def __str__(self) -> str:
        mark, label = ("ok", "Tip") if self.ok else ("PROBLEM", "Fix")
        return f"[{mark}] {self.message}" + (f"\n  {label}: {self.fix}" if self.fix else "")


def diagnose(facts: GpuFacts) -> list[Finding]:
    """Explain the GPU set-up described by ``facts``: each misconfiguration with its fix.

    Checks, in order: a driver and GPUs at all; ``CUDA_VISIBLE_DEVICES`` entries beyond the
    GPUs present; a CPU-only framework build on a GPU machine; a framework that sees a
    different number of GPUs than ``CUDA_VISIBLE_DEVICES`` allows (the variable was set or
    changed after CUDA started); TensorFlow reserving the GPU memory that PyTorch in the
    same process also needs.

    Args:
        facts: What was found, from ``gpu_facts()`` or written by hand.

    Returns:
        The findings, problems and confirmations alike.
    """
    findings = []
    gpus = facts.driver_gpus
    if not gpus:
        findings.append(
            Finding(
                True,
                "No NVIDIA GPU: the driver lists none (or nvidia-smi is missing). Everything "
                "runs on the CPU; the multi-device demos simulate devices with CPU processes.",
                "For a GPU on Colab: Runtime > Change runtime type > GPU.",
            )
        )
    entries = parse_cuda_visible_devices(facts.cuda_visible_devices)
    accepted = visible_gpus(gpus, facts.cuda_visible_devices)
    if gpus and entries is not None and len(accepted) < len(entries):
        rejected = entries[len(accepted)]
        findings.append(
            Finding(
                False,
                f"CUDA_VISIBLE_DEVICES={facts.cuda_visible_devices!r} names {rejected!r}, but "
                f"the driver lists GPUs 0 to {len(gpus) - 1}: CUDA drops that entry and "
                f"every entry after it, leaving {accepted}.",
                "Use indices from nvidia-smi (0 to "
                f"{len(gpus) - 1}) and set them before any framework starts.",
            )
        )
    frameworks = (
        ("PyTorch", facts.torch_cuda_build, facts.torch_gpu_count),
        ("TensorFlow", facts.tf_cuda_build, facts.tf_gpu_count),
    )
    for name, cuda_build, count in frameworks:
        if gpus and cuda_build is False:
            findings.append(
                Finding(
                    False,
                    f"The driver lists {len(gpus)} GPU(s), but this {name} is a CPU-only "
                    "build: it cannot use them.",
                    "Install the CUDA build (for TensorFlow `pip install tensorflow[and-cuda]`, "
                    "not tensorflow-cpu; for PyTorch the CUDA wheel from pytorch.org).",
                )
            )
        if gpus and cuda_build and count is not None and count != len(accepted):
            findings.append(
                Finding(
                    False,
                    f"{name} sees {count} GPU(s), but CUDA_VISIBLE_DEVICES now allows "
                    f"{len(accepted)}: the variable was set or changed after CUDA had started "
                    "in this process, and CUDA ignores such changes.",
                    "Set CUDA_VISIBLE_DEVICES before any framework starts (select_gpus in the "
                    "first cell, or in the shell), then restart the kernel.",
                )
            )
    held = [name for name, growth in facts.tf_memory_growth.items() if not growth]
    if facts.torch_imported and facts.tf_imported and held:
        findings.append(
            Finding(
                False,
                f"TensorFlow and PyTorch share this process, and TensorFlow's memory growth is "
                f"off on {', '.join(held)}: TensorFlow reserves almost all GPU memory at its "
                "first operation, and PyTorch then runs out of memory.",
                "Call tf_memory_growth() before TensorFlow's first operation, or set "
                "TF_FORCE_GPU_ALLOW_GROWTH=true before starting Python.",
            )
        )
    if gpus and all(finding.ok for finding in findings):
        findings.append(
            Finding(
                True, f"{len(accepted)} of {len(gpus)} GPU(s) visible; builds and counts agree."
            )
        )
    return findings


def gpu_facts(info: EnvironmentInfo | None = None) -> GpuFacts:
    """Collect the doctor's facts: the driver's GPUs, each framework's build and GPU count.

    Imports PyTorch and TensorFlow when installed and lists TensorFlow's physical devices,
    which fixes ``CUDA_VISIBLE_DEVICES`` for this process (select GPUs before calling this).

    Args:
        info: ``environment_info("torch", "tensorflow")`` if already collected.

    Returns:
        The ``GpuFacts``.
    """
    info = info or environment_info("torch", "tensorflow")
    torch_info, tf_info = info.framework("torch"), info.framework("tensorflow")
    installed = torch_info.version is not None, tf_info.version is not None
    return GpuFacts(
        driver_gpus=nvidia_gpus(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        torch_cuda_build=torch_info.build.startswith("CUDA") if installed[0] else None,
        torch_gpu_count=torch_info.gpu_count if installed[0] else None,
        tf_cuda_build=tf_info.build.startswith("CUDA") if installed[1] else None,
        tf_gpu_count=tf_info.gpu_count if installed[1] else None,
        tf_memory_growth=tf_memory_growth_state() if installed[1] else {},
        torch_imported="torch" in sys.modules,
        tf_imported="tensorflow" in sys.modules,
    )


@dataclass(frozen=True)
class GpuReport:
    """The GPU doctor's report: the facts, the frameworks' view and the findings."""

    facts: GpuFacts
    findings: tuple[Finding, ...]
    environment: str

    def __str__(self) -> str:
        gpus = self.facts.driver_gpus
        if gpus:
            driver = f"NVIDIA driver {gpus[0].driver}, {len(gpus)} GPU(s): " + "; ".join(
                str(gpu) for gpu in gpus
            )
        else:
            driver = "No NVIDIA driver or GPU found (nvidia-smi missing or listing none)"
        growth = self.facts.tf_memory_growth
        growth_text = (
            ", ".join(f"{name} {'on' if on else 'off'}" for name, on in growth.items())
            if growth
            else "no TensorFlow GPU"
        )
        lines = [
            "GPU doctor",
            driver,
            f"{describe_cuda_visible_devices()}; CUDA shows "
            f"{visible_gpus(gpus, self.facts.cuda_visible_devices)}",
            self.environment,
            f"TensorFlow memory growth: {growth_text}",
            *(str(finding) for finding in self.findings),
        ]
        return "\n".join(lines)


def doctor() -> GpuReport:
    """Examine this machine's GPU set-up and explain what is wrong, with fixes.

    Returns:
        The report; ``print(report)`` shows it.
    """
    info = environment_info("torch", "tensorflow")
    facts = gpu_facts(info)
    return GpuReport(facts, tuple(diagnose(facts)), info.as_text())


# Chapter 6a exercises
