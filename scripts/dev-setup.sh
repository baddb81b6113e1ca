#!/usr/bin/env bash
# Set up a development checkout: Debian packages, then .venv with speakerd and the workshop
# (both editable) and dev tools.
# Idempotent: a second run only checks. Usage: scripts/dev-setup.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

apt_ensure "${SPEAKERD_BUILD_PKGS[@]}" "${SPEAKERD_RUNTIME_PKGS[@]}" "${SPEAKERD_RIG_PKGS[@]}"
venv="$root/.venv"
stamp="$venv/.speakerd-installed"
if [ ! -x "$venv/bin/python" ]; then
    py=$(pick_python)
    say "creating $venv with $("$py" --version)"
    "$py" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$root/workshop/pyproject.toml" -nt "$stamp" ]; then
    say "installing speakerd, the workshop (emulator, rig, demo) and their dependencies into .venv"
    "$venv/bin/python" -m pip --disable-pip-version-check -q install --upgrade setuptools wheel
    venv_install "$venv" "$root" editable dev
    # The workshop is a distribution of its own, never installed on a speaker (see workshop/).
    "$venv/bin/python" -m pip --disable-pip-version-check -q install --no-build-isolation -e "$root/workshop"
    touch "$stamp"
fi
# Google's JavaScript SDK, for the emulator's tests with clients we did not write
# (tests/emulator/test_clients.py); installed exactly as locked, only when missing.
js="$root/tests/clients/js"
if ! command -v npm >/dev/null 2>&1; then
    say "npm not found: skipping Google's JavaScript SDK (its emulator test will be skipped); install nodejs and npm to run it"
elif [ ! -d "$js/node_modules/@google/genai" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
    say "installing Google's JavaScript SDK for the emulator tests (npm ci in tests/clients/js)"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
say "development environment ready: $venv"
