#!/usr/bin/env bash
# The project's test command: set up, lint, then pytest.
#   bash scripts/test.sh                  the whole suite: most test files on several workers
#                                         (they mostly wait on real time), then the tests marked
#                                         `solo` (start-skew and latency measurements) two at a
#                                         time, apart from the CPU-bound part
#   bash scripts/test.sh tests/unit/x.py -x   extra arguments: one plain pytest run with them
# COMMUNECAST_TEST_WORKERS sets the number of workers (default 3; 0 = no parallel part).
# Exit status: pytest's; if pytest passed but ruff found problems, 1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

bash "$root/scripts/setup.sh" || exit $?

# Byte-code caches on: with PYTHONDONTWRITEBYTECODE set (some shells and sandboxes set it)
# every controller, station and fleet process the suite starts compiled the project from
# source (~0.4 s of CPU per controller start), and every pytest worker rewrote and compiled
# the test modules again; the suite is CPU-bound on two cores. __pycache__ is git-ignored.
unset PYTHONDONTWRITEBYTECODE

lint_status=0
echo "[test] ruff check ."
.venv/bin/ruff check . || lint_status=$?

if (($# > 0)); then
    .venv/bin/pytest -q "$@"
    status=$?
else
    workers=${COMMUNECAST_TEST_WORKERS:-3}
    start=$SECONDS
    if ((workers > 0)); then
        echo "[test] part 1: everything but the timing measurements, on $workers workers"
        .venv/bin/pytest -q -m "not solo" -n "$workers" --dist loadfile --durations=15
    else
        .venv/bin/pytest -q -m "not solo" --durations=15
    fi
    status=$?
    # Two at a time: they wait on the clock (28 s of CPU in 282 s run one by one), and each
    # took the same time two by two (282 -> 148 s, 07/12/2026); never beside the CPU-bound part.
    solo_workers=$((workers > 0 ? 2 : 0))
    echo "[test] part 2: timing measurements (marked solo), $((solo_workers > 0 ? 2 : 1)) at a time"
    if ((solo_workers > 0)); then
        .venv/bin/pytest -q -m solo -n "$solo_workers" --dist load --durations=10
    else
        .venv/bin/pytest -q -m solo --durations=10
    fi
    solo=$?
    ((solo == 5)) && solo=0  # nothing marked solo is not a failure
    ((status == 0)) && status=$solo
    echo "[test] suite finished in $((SECONDS - start)) s"
fi

if ((status == 0 && lint_status != 0)); then
    echo "[test] pytest passed but ruff check failed (exit $lint_status): see its report above" >&2
    status=1
fi
exit "$status"
