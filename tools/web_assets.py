"""Fetch the JavaScript that the rendered book serves itself, so its pages work offline.

Jupyter Book 1 loads MathJax and the Jupyter widget manager from CDNs by default. This
script fetches pinned releases of both with `npm pack` (the npm registry's ordinary
client), checks each tarball against the integrity hash recorded below, and unpacks the
files the pages need into `_build/web-assets/`, which `_config.yml` serves as static files.

Nothing half-done is left where a later run would take it for finished: `npm pack` writes
into a temporary folder and its tarball is moved into place once verified (a cached
tarball that fails the check is fetched again), and each asset is unpacked into a
temporary folder that replaces the old one only when complete.

Usage: python tools/web_assets.py [--dest _build/web-assets]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helpers.runtime.integrity import CorruptedDataError, npm_integrity, npm_pack, npm_tarball_name

ROOT = Path(__file__).resolve().parent.parent
NPM_TIMEOUT_S = 300  # one `npm pack`: a few seconds on a working network
PARTIAL = ".partial-"  # the prefix of a folder or tarball still being written


@dataclass(frozen=True)
class Asset:
    """One npm package, the part of it the book serves, and where that part goes."""

    spec: str  # name@version
    integrity: str  # npm's sha512 integrity string of the tarball
    subdir: str  # folder inside the tarball to unpack
    dest: str  # folder under the destination
    skip_suffixes: tuple[str, ...] = (".map",)


ASSETS = (
    Asset(
        spec="mathjax@3.2.2",
        integrity="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/"
        "O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        subdir="package/es5/",
        dest="mathjax",
    ),
    Asset(
        spec="@jupyter-widgets/html-manager@1.0.15",
        integrity="sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/"
        "c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        subdir="package/dist/",
        dest="html-manager",
        # Only the standalone embed.js is loaded; the AMD builds need RequireJS.
        skip_suffixes=(".map", "-amd.js"),
    ),
)


def fetch(asset: Asset, downloads: Path) -> Path:
    """Return the verified tarball of `asset`, fetching it with npm if it is not there yet.

    A cached tarball that fails its check (a truncated download, say) is fetched again.
    """
    tarball = downloads / npm_tarball_name(asset.spec)
    if tarball.exists():
        if npm_integrity(tarball) == asset.integrity:
            return tarball
        print(f"{tarball} does not match its recorded hash; fetching it again.")
    try:
        return npm_pack(asset.spec, asset.integrity, downloads, timeout=NPM_TIMEOUT_S)
    except FileNotFoundError:
        sys.exit(
            "error: the offline book needs MathJax and the widget manager, fetched once "
            "with npm; install Node.js (which provides npm) and run the command again."
        )
    except subprocess.TimeoutExpired:
        sys.exit(
            f"error: `npm pack {asset.spec}` did not finish in {NPM_TIMEOUT_S} s; check the "
            "network (or npm's proxy settings) and run the command again."
        )
    except subprocess.CalledProcessError as error:
        sys.exit(f"error: `npm pack {asset.spec}` failed with exit status {error.returncode}.")
    except CorruptedDataError as error:
        sys.exit(f"error: {error} Nothing was kept.")


def unpack(asset: Asset, tarball: Path, dest_root: Path) -> int:
    """Unpack the served part of `tarball` into `dest_root / asset.dest`; return the file count.

    The files go to a temporary folder first, which replaces the old one once complete, so
    an interrupted unpack leaves the old folder (or none) and a leftover that the next run
    removes.
    """
    target = dest_root / asset.dest
    dest_root.mkdir(parents=True, exist_ok=True)
    for leftover in dest_root.glob(f"{PARTIAL}{asset.dest}-*"):
        shutil.rmtree(leftover)
    staging = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{asset.dest}-", dir=dest_root))
    try:
        count = _extract(asset, tarball, staging)
    except BaseException:
        shutil.rmtree(staging)
        raise
    if target.is_dir() and not target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{asset.dest}-", dir=dest_root))
        target.replace(old / asset.dest)
        staging.replace(target)
        shutil.rmtree(old)
    else:
        target.unlink(missing_ok=True)
        staging.replace(target)
    return count


def _extract(asset: Asset, tarball: Path, folder: Path) -> int:
    """Write the served files of `tarball` under `folder`; return how many."""
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar:  # one by one, so a broken tarball stops part way
            if not member.isfile() or not member.name.startswith(asset.subdir):
                continue
            if member.name.endswith(asset.skip_suffixes):
                continue
            relative = Path(member.name[len(asset.subdir) :])
            if relative.is_absolute() or ".." in relative.parts:
                sys.exit(f"error: unsafe path {member.name!r} in {tarball}")
            source = tar.extractfile(member)
            if source is None:
                sys.exit(f"error: {member.name!r} in {tarball} cannot be read")
            out = folder / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(source.read())
            count += 1
    if count == 0:
        sys.exit(f"error: {tarball} has no files under {asset.subdir}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "_build" / "web-assets")
    parser.add_argument("--downloads", type=Path, default=ROOT / "_build" / "npm-packs")
    args = parser.parse_args()
    for asset in ASSETS:
        tarball = fetch(asset, args.downloads)
        count = unpack(asset, tarball, args.dest)
        print(f"{asset.spec}: {count} files in {args.dest / asset.dest}")


if __name__ == "__main__":
    main()
