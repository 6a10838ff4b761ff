#!/usr/bin/env bash
# Rehearse a workshop from the offline kit alone, with the network cut off.
#
# Usage: bash tools/rehearse_offline_kit.sh [KIT]     (default: _build/offline-kit)
#
# Copies the kit to a scratch folder and follows its README there: installs from the
# kit's wheelhouse with every package index switched off, starts `make lab` on the
# student notebooks, checks that the server answers and lists the notebooks, runs a first
# cell (importing the helpers and the frameworks) in a kernel it starts, then executes
# every student notebook with nbmake. As root it cuts the network itself (`unshare -n`,
# loopback only); otherwise run it on a machine that is already offline.
set -euo pipefail
kit=$(realpath "${1:-_build/offline-kit}")
[ -f "$kit/README.md" ] && [ -d "$kit/wheels" ] || {
  echo "error: $kit is not an offline kit: run \`make offline-kit\` first" >&2; exit 1; }

online() { timeout 5 bash -c 'exec 3<>/dev/tcp/pypi.org/443' 2>/dev/null; }
if online; then
  if [ "$(id -u)" = 0 ] && [ -z "${REHEARSAL_NETNS:-}" ]; then
    echo "cutting the network: re-running inside a network namespace with loopback only"
    exec unshare -n env REHEARSAL_NETNS=1 bash -c 'ip link set lo up && exec bash "$0" "$1"' \
      "$(realpath "$0")" "$kit"
  fi
  echo "error: pypi.org is reachable; run this as root (it cuts the network) or offline" >&2
  exit 1
fi
echo "network: off (pypi.org unreachable)"

scratch=$(mktemp -d)
trap 'kill -- -"$lab_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT
lab_pid=
start=$SECONDS
cp -r "$kit" "$scratch/kit"
cd "$scratch/kit/source"
# What the kit's README says, with pip's own configuration files switched off as well.
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/../wheels"
export FRAMEWORKS_BOOK_DATA="$PWD/../data"
mkdir -p _build && cp -r ../npm-packs _build/npm-packs

port=18888 token=rehearsal lab_args=--no-browser
[ "$(id -u)" != 0 ] || lab_args+=" --allow-root"  # Jupyter refuses root without it
set -m  # the lab gets its own process group, so the trap can stop it with its kernels
JUPYTER_PORT=$port JUPYTER_TOKEN=$token make lab LAB_DIR=../student LAB_ARGS="$lab_args" \
  >"$scratch/lab.log" 2>&1 &
lab_pid=$!
set +m
api="http://127.0.0.1:$port/api"
until curl -sf "$api/status?token=$token" >/dev/null; do
  if ! kill -0 "$lab_pid" 2>/dev/null; then
    echo "error: make lab stopped; its log:" >&2; tail -20 "$scratch/lab.log" >&2; exit 1
  fi
  [ $((SECONDS - start)) -lt 1200 ] || { echo "error: lab not up after 20 min" >&2; exit 1; }
  sleep 5
done
echo "make lab: serving on port $port after $((SECONDS - start)) s (install included)"
listed=$(curl -sf "$api/contents?token=$token" | .venv/bin/python -c \
  'import json, sys; print(sum(i["type"] == "notebook" for i in json.load(sys.stdin)["content"]))')
expected=$(ls ../student/*.ipynb | wc -l)
[ "$listed" = "$expected" ] || {
  echo "error: JupyterLab lists $listed notebooks, the kit has $expected" >&2; exit 1; }
echo "make lab: lists the $listed student notebooks"
first=$(.venv/bin/python tools/lab_smoke.py "http://127.0.0.1:$port" "$token")
echo "make lab: a first cell in a new kernel prints: $first"

cd ../student
notebooks=(*.ipynb)
echo "executing ${#notebooks[@]} student notebooks with nbmake ..."
nb_start=$SECONDS
# The one per-cell timeout, execute.timeout in _config.yml, as in `make test`.
cell_timeout=$(PYTHONPATH=../source ../source/.venv/bin/python -c \
  'from tools.execute_notebooks import cell_timeout; print(cell_timeout())')
../source/.venv/bin/python -m pytest --nbmake --nbmake-timeout="$cell_timeout" \
  -p no:cacheprovider -q --durations=0 "${notebooks[@]}"
echo "student notebooks: ${#notebooks[@]} ran in $((SECONDS - nb_start)) s;" \
  "rehearsal total $((SECONDS - start)) s"
