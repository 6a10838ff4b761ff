"""Build the offline kit: everything a classroom with no internet needs, in one folder and zip.

The kit holds a wheelhouse of every pinned package (and the build tools the helpers
need), the npm tarballs the pages serve (MathJax, the widget manager), the data cache,
the built HTML book, the student and instructor notebooks, and the book's source. Its
README says how to set up a laptop from it with the network off.

Usage: python tools/offline_kit.py [--dest _build/offline-kit]   (after `make book workshop`)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"

README = """# Offline kit: Frameworks for Large Models

Everything here works without a network. Copy the folder (or unzip the zip) to each
laptop, then:

    cd source
    export PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/../wheels"   # pip reads only the kit
    export FRAMEWORKS_BOOK_DATA="$PWD/../data"              # the data sets, verified
    mkdir -p _build && cp -r ../npm-packs _build/npm-packs  # MathJax and widget scripts
    make lab LAB_DIR=../student                             # installs, then opens JupyterLab

`make lab` needs Python 3.11 and `make`; the first run installs the pinned packages
from `wheels/` into `source/.venv` (a few minutes), then opens the student notebooks
(exercises without solutions). Instructors use `LAB_DIR=../instructor`. Jupyter refuses
to run as root (in a container, say) unless you add `LAB_ARGS=--allow-root`.
The rendered book is in `book/`: open `book/index.html` in any browser.

To rehearse the day before, from this folder: `bash source/tools/rehearse_offline_kit.sh .`
It repeats the steps above in a scratch copy with the network cut off (as root it cuts
the network itself), checks that JupyterLab answers, and runs every student notebook.
"""


def program(name: str) -> str:
    """Return the full path of the program `name` on PATH, or stop, naming it."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"error: the offline kit needs `{name}`; install it and run again")
    return path


def run(command: list[str], **kwargs) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=BUILD / "offline-kit")
    args = parser.parse_args()
    for needed in (BUILD / "html" / "index.html", BUILD / "workshop" / "student"):
        if not needed.exists():
            raise SystemExit(
                f"error: {needed.relative_to(ROOT)} is missing: run `make book workshop`"
            )
    kit = args.dest
    if kit.exists():
        shutil.rmtree(kit)
    kit.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(kit / "wheels")]
    run(pip + ["-r", "requirements.txt", "-c", "requirements-lock.txt"], cwd=ROOT)
    run(pip + ["setuptools>=68", "wheel"], cwd=ROOT)  # to install the helpers from source
    shutil.copytree(BUILD / "npm-packs", kit / "npm-packs")
    data = Path(os.environ.get("FRAMEWORKS_BOOK_DATA", Path.home() / ".cache" / "frameworks-book"))
    if data.exists():
        shutil.copytree(data, kit / "data")
    shutil.copytree(BUILD / "html", kit / "book")
    for handout in ("student", "instructor"):
        shutil.copytree(BUILD / "workshop" / handout, kit / handout)
    (kit / "source").mkdir()
    git_archive = [program("git"), "archive", "HEAD"]
    archive = subprocess.run(git_archive, cwd=ROOT, check=True, capture_output=True)
    run([program("tar"), "-x", "-C", str(kit / "source")], input=archive.stdout)
    (kit / "README.md").write_text(README)
    zipped = kit.with_suffix(".zip")
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED) as bundle:  # wheels are compressed
        for path in sorted(kit.rglob("*")):
            bundle.write(path, path.relative_to(kit.parent))
    size = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file()) / 2**30
    print(f"offline kit: {kit} ({size:.1f} GiB) and {zipped.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
