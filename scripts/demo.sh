#!/usr/bin/env bash
# Set up (scripts/dev-setup.sh) and run the demo: the whole daemon with no Pi, sound card or API key.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/dev-setup.sh"
cd "$root"
if .venv/bin/python -c 'import speakerd_workshop.demo' 2>/dev/null; then
    exec .venv/bin/speakerd demo "$@"
fi
echo "==> the demo is not built yet; checking the example configuration instead"
exec .venv/bin/speakerd check-config --config config/speakerd.toml
