#!/usr/bin/env bash
# Install a cadenza wheel into a new virtualenv: the one install procedure of the container
# image (Dockerfile, runtime stage) and of CI (tests/deploy/test_wheel_smoke.py).
#
#   scripts/install_wheel.sh VENV WHEEL     PYTHON=... picks the interpreter (default python3)
#
# Dependencies come from the package index pip is configured with; pip's cache is used unless
# PIP_NO_CACHE_DIR=1 (the image sets it). Ends by checking that the installed package finds
# its web console and migrations and that the `cadenza` command runs.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 VENV WHEEL" >&2
  exit 2
fi
venv=$1
wheel=$2
python=${PYTHON:-python3}

if [[ -e "$venv" ]]; then
  echo "install_wheel: $venv exists; give a new directory" >&2
  exit 1
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input "$wheel"
"$venv/bin/python" -m pip check --disable-pip-version-check
"$venv/bin/python" - <<'PY'
from importlib.resources import files

package = files("cadenza")
for part in ("web/dist/index.html", "infrastructure/sql/migrations/env.py"):
    if not package.joinpath(part).is_file():
        raise SystemExit(f"install_wheel: the installed cadenza lacks {part}")
PY
"$venv/bin/cadenza" --help >/dev/null
echo "installed $(basename "$wheel") into $venv" >&2
