#!/usr/bin/env bash
# The project's test command: set up, lint, then pytest. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh tests/test_compose.py -x`.
# Exit status: pytest's; if pytest passed but ruff found problems, 1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

bash "$root/scripts/setup.sh" || exit $?

lint_status=0
echo "[test] ruff check ."
.venv/bin/ruff check . || lint_status=$?

.venv/bin/pytest -q "$@"
status=$?

if ((status == 0 && lint_status != 0)); then
    echo "[test] pytest passed but ruff check failed (exit $lint_status): see its report above" >&2
    status=1
fi
exit "$status"
