#!/usr/bin/env bash
# The whole suite on both backends at once: `scripts/test_both.sh PYTEST [ARGS...]`.
#
# PostgreSQL + Redis runs in the foreground, so its progress shows as it goes;
# SQLite + SQLite Huey runs beside it into a log that is printed whole when it
# ends. The suite mostly waits (for processes to start, answers to come,
# messages to go out), so on two cores the two runs side by side take little
# more than the slower one, not the sum (CONVENTIONS.md, "Tests"). Each run
# has its own database, data directory, queue and ports, as any two runs on
# one machine do. Tests that touch no database run once, in the PostgreSQL
# run: the SQLite run keeps only the tests that use the backend
# (MAILINGS_TEST_ONLY_PER_BACKEND, tests/conftest.py). Exits non-zero if
# either run failed.
#
# Each run spreads its tests over pytest-xdist workers (TEST_WORKERS_POSTGRES,
# TEST_WORKERS_SQLITE; 0 runs in one process): the tests mostly wait, so
# more of them at once than there are cores still pays (bench/README.md,
# "The suite", has the figures). A worker is a run of its own: its own
# database, data directory, queue name and Redis keys (tests/conftest.py).
set -uo pipefail

workers() {  # pytest's options for this many workers (none for 0)
  if [ "$1" -gt 0 ]; then printf '%s\n' -n "$1" --dist worksteal; fi
}
mapfile -t pg_workers < <(workers "${TEST_WORKERS_POSTGRES:-5}")
mapfile -t sqlite_workers < <(workers "${TEST_WORKERS_SQLITE:-2}")
pytest=$1
shift

log="$(mktemp -t mailings-test-sqlite.XXXXXX)"
# In a process group of its own (setsid), with Ctrl-C's signal back to its
# default (a background command starts with it ignored), so that one SIGINT
# to the group stops that run as Ctrl-C stops the other: pytest tears down,
# drops its database and stops the processes it started.
MAILINGS_TEST_BACKEND=sqlite MAILINGS_TEST_ONLY_PER_BACKEND=1 setsid env --default-signal=INT \
  "$pytest" "${sqlite_workers[@]}" "$@" >"$log" 2>&1 </dev/null &
sqlite=$!
stop_sqlite() {
  # pytest-asyncio takes a first SIGINT as "cancel this test" and a second
  # as "stop the run", as a second Ctrl-C does in the foreground.
  kill -INT -- -"$sqlite" 2>/dev/null
  for _ in $(seq 10); do kill -0 "$sqlite" 2>/dev/null || break; sleep 0.5; done
  kill -INT -- -"$sqlite" 2>/dev/null
  wait "$sqlite"
  rm -f "$log"
  exit 130
}
trap stop_sqlite INT TERM

echo "== PostgreSQL + Redis, every test (SQLite + SQLite Huey runs the tests that use the backend beside it, printed when it ends)"
MAILINGS_TEST_BACKEND=postgres "$pytest" "${pg_workers[@]}" "$@"
postgres_rc=$?

wait "$sqlite"
sqlite_rc=$?
echo
echo "== SQLite + SQLite Huey"
cat "$log"
rm -f "$log"

echo
echo "== PostgreSQL + Redis: exit $postgres_rc; SQLite + SQLite Huey: exit $sqlite_rc"
[ "$postgres_rc" -eq 0 ] && [ "$sqlite_rc" -eq 0 ]
