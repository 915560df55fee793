#!/usr/bin/env bash
# Build the cadenza wheel with the web console and the migrations inside, into OUTDIR
# (default dist/), and print the wheel's path as the last line. The console must be built
# first (`make ui`, or the Dockerfile's node stage): src/cadenza/web/dist/index.html.
# Used by `make wheel`, the Dockerfile's build stage and tests/deploy/test_wheel_smoke.py.
#
#   scripts/build_wheel.sh [OUTDIR]        PYTHON=... picks the interpreter (needs `build`)
#
# The wheel is built from a copy of pyproject.toml, README.md and src/ in a temporary
# directory: setuptools never removes what an earlier build left in build/lib, so building in
# the checkout could ship console assets a newer `npm run build` deleted.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
outdir=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
python=${PYTHON:-python3}

if [[ ! -f "$root/src/cadenza/web/dist/index.html" ]]; then
  echo "build_wheel: the web console is not built (src/cadenza/web/dist/index.html is" \
    "missing): run 'make ui' first" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$root" -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
  pyproject.toml README.md src | tar -C "$work" -x

rm -f "$outdir"/cadenza-*.whl
"$python" -m build --wheel --outdir "$outdir" "$work" >&2

wheels=("$outdir"/cadenza-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
  echo "build_wheel: expected one wheel in $outdir, found: ${wheels[*]}" >&2
  exit 1
fi
# what makes the wheel work when installed anywhere: the console and the migrations
"$python" - "${wheels[0]}" "$root/src/cadenza/web/dist" <<'PY'
import sys
import zipfile
from pathlib import Path

wheel, dist = sys.argv[1], Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
wanted = {
    f"cadenza/web/dist/{p.relative_to(dist).as_posix()}" for p in dist.rglob("*") if p.is_file()
}
wanted.add("cadenza/infrastructure/sql/migrations/env.py")
missing = sorted(wanted - names)
if missing or not any(n.startswith("cadenza/infrastructure/sql/migrations/versions/") for n in names):
    sys.exit(f"build_wheel: {wheel} lacks {missing or 'the migration versions'}")
PY
echo "${wheels[0]}"
