"""`import helpers` must not import a framework, and it quiets TensorFlow's C++ start-up log."""

import os
import subprocess
import sys

import pytest

CHECK = """
import os, sys
import helpers
print(sorted(m for m in ("torch", "tensorflow", "keras", "transformers") if m in sys.modules))
print(all(hasattr(helpers, name) for name in helpers.__all__))
print(os.environ["TF_CPP_MIN_LOG_LEVEL"])
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_import_helpers_imports_no_framework():
    assert _run(CHECK).stdout.split("\n")[:3] == ["[]", "True", "2"]


def test_tf_log_level_set_by_user_is_kept():
    assert _run(CHECK, TF_CPP_MIN_LOG_LEVEL="0").stdout.split("\n")[2] == "0"


@pytest.mark.skipif(sys.platform != "linux", reason="the notice checked is from Linux x86 builds")
def test_tensorflow_after_helpers_prints_no_cpp_info():
    # At level 0 TensorFlow prints its CPU-feature notice; after `import helpers` it must not.
    # (On CPUs where oneDNN's custom operations are on, TensorFlow also prints a notice from
    # port.cc before its logging starts; no log level hides that one, so it is not checked.)
    loud = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stderr
    assert "cpu_feature_guard" in loud
    assert "cpu_feature_guard" not in _run("import helpers, tensorflow").stderr
