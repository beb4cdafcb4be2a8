#!/usr/bin/env bash
# Run the demo: controller + a private Mosquitto + simulated stations on this machine.
# Arguments go to `communecast demo` (defaults: --devices 3 --http-port 8080
# --mqtt-port 18830 --data-dir ./demo-data), e.g. `bash scripts/demo.sh --devices 10`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/communecast" demo "$@"
