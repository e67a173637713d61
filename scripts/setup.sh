#!/usr/bin/env bash
# Create (or update) a virtual environment with protran-tune and its tested dependencies.
#   scripts/setup.sh [VENV_DIR] [EXTRAS]     defaults: .venv  all,test
# torch is installed first, pinned by constraints.txt: a looser requirement on a machine without torch
# would pull a multi-GB CUDA build. On a GPU machine the same pin takes PyPI's CUDA build of that torch.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$here/.venv}"
extras="${2:-all,test}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
torch_pin="$(grep -E '^torch==' "$here/constraints.txt")"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] installing $torch_pin"
  "${pip[@]}" install "$torch_pin"
fi
echo "[setup] installing protran-tune[$extras] with constraints.txt"
"${pip[@]}" install -c "$here/constraints.txt" -e "$here[$extras]"
echo "[setup] done: $("$venv/bin/protran-tune" --version)"
