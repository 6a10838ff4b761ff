"""Environment and device discovery: what is installed, what is visible, which device to use.

Belongs here: framework versions and builds, the devices each framework sees, the
``CUDA_VISIBLE_DEVICES`` rules, and choosing a device for PyTorch or TensorFlow. Each
framework is imported inside the function that needs it, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Distributions that may provide each importable framework, most common first.
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "keras": ("keras",),
    "transformers": ("transformers",),
}
FRAMEWORKS: tuple[str, ...] = tuple(_DISTRIBUTIONS)
_DEFAULT_FRAMEWORKS = ("torch", "tensorflow")
MIB = 1024**2  # bytes in a mebibyte
GIB = 1024**3  # bytes in a gibibyte


def parse_cuda_visible_devices(value: str | None) -> list[str] | None:
    """Return the GPUs that a ``CUDA_VISIBLE_DEVICES`` value lets CUDA see, in CUDA's order.

    The rules follow CUDA (and PyTorch's ``torch.cuda._parse_visible_devices``): entries are
    separated by commas and stripped; an ordinal is read like C's ``strtoul`` (``"1gpu"`` is
    ``"1"``, leading zeros dropped); ``GPU-<uuid>`` and ``MIG-<uuid>`` entries are kept as
    written. The first entry fixes the kind (ordinals or one UUID prefix). The first entry
    that is invalid (``-1``, empty, or of another kind) hides itself and every entry after
    it, so ``"0,2,-1,1"`` shows ``["0", "2"]`` and ``"-1"`` shows nothing. A repeated entry
    makes CUDA show no device at all (as PyTorch's parser assumes). Ordinals beyond the
    physical GPU count are also invalid, but that count is not known here.

    Args:
        value: The variable's value, or None when it is unset.

    Returns:
        None when unset (every GPU visible), otherwise the visible entries (possibly empty).
    """
    if value is None:
        return None
    entries = [entry.strip() for entry in value.split(",")]
    prefix = entries[0][:4] if entries[0][:4] in ("GPU-", "MIG-") else None
    visible: list[str] = []
    for entry in entries:
        if prefix is not None:
            if not entry.startswith(prefix):
                break
            device = entry
        else:
            match = re.match(r"\+?(\d+)", entry)
            if match is None:
                break
            device = str(int(match.group(1)))
        if device in visible:
            return []
        visible.append(device)
    return visible


def describe_cuda_visible_devices() -> str:
    """Describe the current ``CUDA_VISIBLE_DEVICES`` setting in a few words for messages.

    Returns:
        For example ``"CUDA_VISIBLE_DEVICES is unset"`` or ``"CUDA_VISIBLE_DEVICES='0'"``,
        with CUDA's reading appended when it differs from the raw entries.
    """
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return "CUDA_VISIBLE_DEVICES is unset"
    visible = parse_cuda_visible_devices(value)
    raw = [entry.strip() for entry in value.split(",")]
    if visible == raw:
        return f"CUDA_VISIBLE_DEVICES={value!r}"
    return f"CUDA_VISIBLE_DEVICES={value!r}, which CUDA reads as {visible}"


def resolve_device_request(
    prefer: str,
    *,
    gpu_count: int,
    mps_available: bool = False,
    gpu_word: str = "CUDA device",
    note: str = "",
) -> tuple[str, int | None]:
    """Turn a device request into a device kind and index, given what is visible.

    Accepted requests (case-insensitive): ``"auto"``, ``"cpu"``, ``"cuda"``/``"gpu"``,
    ``"cuda:N"``/``"gpu:N"`` (also TensorFlow's ``"/GPU:N"`` and ``"/CPU:0"``) and ``"mps"``.
    ``"auto"`` picks GPU 0, else MPS, else the CPU.

    Args:
        prefer: The request.
        gpu_count: How many GPUs the framework can see.
        mps_available: Whether Apple's MPS device is available.
        gpu_word: What a GPU is called in error messages.
        note: A sentence appended to the error when a requested GPU is missing.

    Returns:
        ``("gpu", index)``, ``("mps", None)`` or ``("cpu", None)``.

    Raises:
        ValueError: The request is malformed or names a device that is not visible.
    """
    match = re.fullmatch(r"/?(auto|cpu|mps|cuda|gpu)(?::(\d+))?", prefer.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) in ("auto", "mps")):
        raise ValueError(
            f"Unknown device {prefer!r}; use 'auto', 'cpu', 'cuda', 'cuda:N', 'gpu:N' or 'mps'."
        )
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if gpu_count > 0:
            return "gpu", 0
        return ("mps", None) if mps_available else ("cpu", None)
    if kind in ("cpu", "mps"):
        if kind == "mps" and not mps_available:
            raise ValueError(f"{prefer!r} requested but the MPS device is not available.")
        return kind, None
    wanted = int(index or 0)
    if wanted >= gpu_count:
        seen = f"{'only ' if gpu_count else ''}{gpu_count} {gpu_word}"
        seen += " is" if gpu_count == 1 else "s are"
        raise ValueError(
            f"{prefer} requested but {seen} visible ({describe_cuda_visible_devices()}).{note}"
        )
    return "gpu", wanted


def torch_device(prefer: str = "auto") -> torch.device:
    """Choose a PyTorch device: ``"auto"`` is ``cuda:0`` if present, else ``mps``, else ``cpu``.

    Args:
        prefer: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns:
        The ``torch.device``.

    Raises:
        ValueError: The request is malformed or the device is not visible.
    """
    import torch

    cpu_only = torch.version.cuda is None and torch.version.hip is None
    kind, index = resolve_device_request(
        prefer,
        gpu_count=torch.cuda.device_count(),
        mps_available=torch.backends.mps.is_available(),
        note=f" This torch {torch.__version__} is a CPU-only build." if cpu_only else "",
    )
    return torch.device("cuda", index) if kind == "gpu" else torch.device(kind)


def tf_device(prefer: str = "auto") -> str:
    """Choose a TensorFlow device string: ``"/GPU:0"`` if a GPU is visible, else ``"/CPU:0"``.

    This lists TensorFlow's logical devices, which initialises its runtime: configure memory
    growth or logical devices before calling it.

    Args:
        prefer: ``"auto"``, ``"cpu"``, ``"gpu"``, ``"gpu:N"`` (or ``"cuda:N"``, ``"/GPU:N"``).

    Returns:
        A device string for ``tf.device(...)``.

    Raises:
        ValueError: The request is malformed or names a GPU that is not visible.
    """
    import tensorflow as tf

    kind, index = resolve_device_request(
        prefer,
        gpu_count=len(tf.config.list_logical_devices("GPU")),
        gpu_word="TensorFlow GPU",
    )
    return f"/GPU:{index}" if kind == "gpu" else "/CPU:0"


@dataclass(frozen=True)
class DeviceInfo:
    """One device that a framework can see."""

    name: str
    kind: str  # "CPU", "GPU" or "MPS"
    memory_bytes: int | None = None

    def __str__(self) -> str:
        if self.memory_bytes is None:
            return self.name
        return f"{self.name} ({self.memory_bytes / GIB:.1f} GiB)"


@dataclass(frozen=True)
class FrameworkInfo:
    """Version, build and visible devices of one framework."""

    name: str
    version: str | None  # None when not installed
    build: str
    devices: tuple[DeviceInfo, ...] = ()

    @property
    def gpu_count(self) -> int:
        """The number of GPUs this framework sees."""
        return sum(device.kind == "GPU" for device in self.devices)


@dataclass(frozen=True)
class EnvironmentInfo:
    """What runs this notebook: Python, platform, CPUs and each framework's view."""

    python: str
    platform: str
    cpu_count: int
    cuda_visible_devices: str | None
    frameworks: tuple[FrameworkInfo, ...]

    def framework(self, name: str) -> FrameworkInfo:
        """Return the entry for one framework.

        Args:
            name: A framework name given to ``environment_info``.

        Returns:
            Its ``FrameworkInfo``.

        Raises:
            KeyError: The framework was not queried.
        """
        for info in self.frameworks:
            if info.name == name:
                return info
        raise KeyError(f"{name!r} was not queried; have {[f.name for f in self.frameworks]}")

    def as_text(self) -> str:
        """Format the information as one summary line and an aligned table of frameworks.

        Returns:
            Several lines of text, without a trailing newline.
        """
        visible = "unset" if self.cuda_visible_devices is None else repr(self.cuda_visible_devices)
        rows = [("framework", "version", "build", "devices")]
        for info in self.frameworks:
            devices = ", ".join(str(device) for device in info.devices) or "-"
            rows.append((info.name, info.version or "not installed", info.build, devices))
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        lines = [
            f"Python {self.python}, {self.cpu_count} CPUs, CUDA_VISIBLE_DEVICES {visible}",
            f"Platform {self.platform}",
        ]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
            lines.append("  ".join([*cells, row[3]]))
        return "\n".join(lines)


def _version(framework: str) -> str | None:
    """Return the installed version of a framework, read from its distribution metadata."""
    for distribution in _DISTRIBUTIONS[framework]:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _torch_info() -> FrameworkInfo:
    """Describe PyTorch: its build (CUDA, ROCm, MPS or CPU-only) and its devices."""
    import torch

    if torch.version.cuda is not None:
        build = f"CUDA {torch.version.cuda}"
        if torch.backends.cudnn.is_available():
            build += f", cuDNN {torch.backends.cudnn.version()}"
    elif torch.version.hip is not None:
        build = f"ROCm {torch.version.hip}"
    elif torch.backends.mps.is_built():
        build = "MPS build (no CUDA)"
    else:
        build = "CPU-only build"
    devices = [DeviceInfo("cpu", "CPU")]
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        devices.append(
            DeviceInfo(f"cuda:{index} {properties.name}", "GPU", properties.total_memory)
        )
    if torch.backends.mps.is_available():
        devices.append(DeviceInfo("mps", "MPS"))
    return FrameworkInfo("torch", _version("torch"), build, tuple(devices))


def _tensorflow_info() -> FrameworkInfo:
    """Describe TensorFlow: its build and its physical devices (GPU memory is not reported)."""
    import tensorflow as tf

    build_info = tf.sysconfig.get_build_info()
    if build_info.get("is_cuda_build"):
        build = f"CUDA {build_info.get('cuda_version')}, cuDNN {build_info.get('cudnn_version')}"
    elif build_info.get("is_rocm_build"):
        build = "ROCm build"
    else:
        build = "CPU-only build"
    # Physical devices only: listing logical devices would initialise the runtime and
    # freeze memory-growth and logical-device settings made later in the notebook.
    devices = []
    for device in tf.config.list_physical_devices():
        short = device.name.removeprefix("/physical_device:")
        if device.device_type == "GPU":
            details = tf.config.experimental.get_device_details(device)
            short = f"{short} {details.get('device_name', '')}".rstrip()
        devices.append(DeviceInfo(short, device.device_type))
    return FrameworkInfo("tensorflow", _version("tensorflow"), build, tuple(devices))


def _keras_info() -> FrameworkInfo:
    """Describe Keras: its version and backend."""
    import keras

    return FrameworkInfo("keras", _version("keras"), f"backend: {keras.backend.backend()}")


def _transformers_info() -> FrameworkInfo:
    """Describe Transformers: its version (it has no build or devices of its own)."""
    return FrameworkInfo("transformers", _version("transformers"), "-")


def usable_cpus() -> int:
    """Return how many CPUs this process may use (in a container, fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_INFO = {
    "torch": _torch_info,
    "tensorflow": _tensorflow_info,
    "keras": _keras_info,
    "transformers": _transformers_info,
}


def environment_info(*frameworks: str) -> EnvironmentInfo:
    """Collect versions, builds and visible devices of Python and the named frameworks.

    A framework that is not installed is reported as such rather than raising.

    Args:
        *frameworks: Names among ``"torch"``, ``"tensorflow"``, ``"keras"`` and
            ``"transformers"``; ``("torch", "tensorflow")`` when none are given.

    Returns:
        An ``EnvironmentInfo``; ``.as_text()`` formats it.

    Raises:
        ValueError: A name is not one of the frameworks above.
    """
    names = frameworks or _DEFAULT_FRAMEWORKS
    unknown = [name for name in names if name not in _INFO]
    if unknown:
        raise ValueError(f"Unknown framework(s) {unknown}; choose from {list(FRAMEWORKS)}.")
    infos = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            infos.append(FrameworkInfo(name, None, "-"))
        else:
            infos.append(_INFO[name]())
    return EnvironmentInfo(
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        cpu_count=usable_cpus(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        frameworks=tuple(infos),
    )


def print_environment(*frameworks: str) -> None:
    """Print the environment table; every notebook's setup cell calls this.

    Args:
        *frameworks: As for ``environment_info``.
    """
    print(environment_info(*frameworks).as_text())
