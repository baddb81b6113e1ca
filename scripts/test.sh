#!/usr/bin/env bash
# Set up (scripts/dev-setup.sh) and run every check: ruff, mypy and the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k config
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/dev-setup.sh"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
mapfile -t pkgs < <(test_pkgs)
apt_ensure "${pkgs[@]}"
cd "$root"
py=.venv/bin/python
echo "==> ruff"
"$py" -m ruff check speakerd workshop tests bench scripts
echo "==> mypy"
"$py" -m mypy
echo "==> pytest"
exec "$py" -m pytest -q -p no:cacheprovider "$@"
