#!/usr/bin/env bash
# Rehearse a workshop from the offline kit alone, with the network cut off.
#
# Usage: bash tools/rehearse_offline_kit.sh [KIT]     (default: _build/offline-kit)
#        PYTHON=python3.12 bash tools/rehearse_offline_kit.sh KIT   (set up with another Python)
#
# Copies the kit to a scratch folder and follows its README there, as a student on Linux
# would: proves every wheelhouse in the kit complete for its own platform and Python (a
# dry-run install with every package index off), runs `python3 setup.py` (checks the kit's
# files, installs from the wheelhouse, unpacks the data, registers the kernel, runs the
# pre-flight check), starts JupyterLab with the command setup.py prints, checks that the
# server answers and lists the student notebooks, runs a first cell in a kernel it starts,
# then executes every student notebook with nbmake. The data cache and the kernel spec go
# to the scratch folder, so nothing outside it changes. As root it cuts the network itself
# (`unshare -n`, loopback only); otherwise run it on a machine that is already offline.
set -euo pipefail
kit=$(realpath "${1:-_build/offline-kit}")
[ -f "$kit/kit.json" ] && [ -f "$kit/setup.py" ] || {
  echo "error: $kit is not an offline kit: run \`make offline-kit\` first" >&2; exit 1; }
python=${PYTHON:-python3}

online() { timeout 5 bash -c 'exec 3<>/dev/tcp/pypi.org/443' 2>/dev/null; }
if online; then
  if [ "$(id -u)" = 0 ] && [ -z "${REHEARSAL_NETNS:-}" ]; then
    echo "cutting the network: re-running inside a network namespace with loopback only"
    exec unshare -n env REHEARSAL_NETNS=1 PYTHON="$python" \
      bash -c 'ip link set lo up && exec bash "$0" "$1"' "$(realpath "$0")" "$kit"
  fi
  echo "error: pypi.org is reachable; run this as root (it cuts the network) or offline" >&2
  exit 1
fi
echo "network: off (pypi.org unreachable)"

scratch=$(mktemp -d)
lab_pid=
trap '[ -z "$lab_pid" ] || kill -- -"$lab_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT
start=$SECONDS
# A copy of hard links where the disk allows it (setup.py only adds files to the kit).
cp -al "$kit" "$scratch/kit" 2>/dev/null || cp -r "$kit" "$scratch/kit"
cd "$scratch/kit"
rm -rf venv setup.log  # a set-up done in the kit itself is not the rehearsal's
# Only the kit: no pip configuration, no index, and the data and kernels in the scratch.
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL
export FRAMEWORKS_BOOK_DATA="$scratch/data" JUPYTER_DATA_DIR="$scratch/jupyter"

echo "dry-run install of every wheelhouse, each for its own platform and Python ..."
"$python" source/tools/offline_kit.py prove .

echo "setup.py with $("$python" --version) ..."
setup_start=$SECONDS
"$python" setup.py | tee "$scratch/setup.out"
setup_s=$((SECONDS - setup_start))
echo "setup.py: done in $setup_s s (checks, install, data, kernel, pre-flight)"
command=$(tail -1 "$scratch/setup.out" | sed 's/^ *//')
[[ "$command" == *"jupyter lab --notebook-dir="* ]] || {
  echo "error: setup.py did not end with the command that starts JupyterLab: $command" >&2; exit 1; }

port=18888 token=rehearsal lab_args=(--no-browser "--port=$port")
[ "$(id -u)" != 0 ] || lab_args+=(--allow-root)  # Jupyter refuses root without it
set -m  # the lab gets its own process group, so the trap can stop it with its kernels
JUPYTER_TOKEN=$token $command "${lab_args[@]}" >"$scratch/lab.log" 2>&1 &
lab_pid=$!
set +m
api="http://127.0.0.1:$port/api"
until curl -sf "$api/status?token=$token" >/dev/null; do
  if ! kill -0 "$lab_pid" 2>/dev/null; then
    echo "error: JupyterLab stopped; its log:" >&2; tail -20 "$scratch/lab.log" >&2; exit 1
  fi
  [ $((SECONDS - start)) -lt 1800 ] || { echo "error: lab not up after 30 min" >&2; exit 1; }
  sleep 2
done
echo "JupyterLab: serving on port $port, $((SECONDS - start)) s after the start"
listed=$(curl -sf "$api/contents?token=$token" | venv/bin/python -c \
  'import json, sys; print(sum(i["type"] == "notebook" for i in json.load(sys.stdin)["content"]))')
expected=$(ls student/*.ipynb | wc -l)
[ "$listed" = "$expected" ] || {
  echo "error: JupyterLab lists $listed notebooks, the kit has $expected" >&2; exit 1; }
echo "JupyterLab: lists the $listed student notebooks"
first=$(venv/bin/python source/tools/lab_smoke.py "http://127.0.0.1:$port" "$token")
echo "JupyterLab: a first cell in a new kernel prints: $first"

cd student
notebooks=(*.ipynb)
echo "executing ${#notebooks[@]} student notebooks with nbmake ..."
nb_start=$SECONDS
# The one per-cell timeout, execute.timeout in _config.yml, recorded in kit.json at build.
cell_timeout=$(../venv/bin/python -c \
  'import json; print(json.load(open("../kit.json"))["cell_timeout_s"])')
../venv/bin/python -m pytest --nbmake --nbmake-timeout="$cell_timeout" \
  -p no:cacheprovider -q --durations=0 "${notebooks[@]}"
echo "student notebooks: ${#notebooks[@]} ran in $((SECONDS - nb_start)) s;" \
  "setup.py $setup_s s; rehearsal total $((SECONDS - start)) s"
