#!/usr/bin/env bash
# Start PostgreSQL and Redis on this machine if they are not running (the tests need both).
# Servers elsewhere (CI's service containers) are named by the variables tests/conftest.py
# reads, MAILINGS_TEST_PG and MAILINGS_TEST_REDIS: those are only checked, never started.
set -euo pipefail
if [ -z "${MAILINGS_TEST_PG:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if [ -z "${MAILINGS_TEST_REDIS:-}" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
pg_isready -d "${MAILINGS_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
redis-cli -u "${MAILINGS_TEST_REDIS:-redis://127.0.0.1:6379/0}" ping
