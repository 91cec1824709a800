#!/usr/bin/env bash
# Set up and run the whole test suite (lint, types, tests on SQLite and PostgreSQL).
# PostgreSQL tests use $RINGI_TEST_DATABASE_URL; when unset, the local server is used if
# one answers on 127.0.0.1:5432, otherwise those tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
if [ -z "${RINGI_TEST_DATABASE_URL:-}" ] && \
   .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null; then
  export RINGI_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
fi
.venv/bin/ruff check .
.venv/bin/mypy
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"; exit 1
fi
exit "$rc"
