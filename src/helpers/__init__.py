"""Shared helpers for the notebooks of the book on TensorFlow, PyTorch and Transformers.

Importing this package is cheap: no framework is imported until a function needs it.
"""

import os

# Every notebook imports helpers before TensorFlow, so this quiets TensorFlow's C++ log in
# each of them: "2" hides INFO and WARNING lines (such as the CPU-instruction notice printed
# at import) and keeps errors. A value the reader set beforehand wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers.assets.models import ModelSource, load_text_model, text_model_source  # noqa: E402
from helpers.runtime.env import (  # noqa: E402
    EnvironmentInfo,
    environment_info,
    parse_cuda_visible_devices,
    print_environment,
    tf_device,
    torch_device,
)
from helpers.runtime.seeding import seed_everything  # noqa: E402

__all__ = [
    "EnvironmentInfo",
    "ModelSource",
    "environment_info",
    "load_text_model",
    "parse_cuda_visible_devices",
    "print_environment",
    "seed_everything",
    "text_model_source",
    "tf_device",
    "torch_device",
]
