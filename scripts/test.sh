#!/usr/bin/env bash
# Set up and run the whole test suite (lint, types, tests on SQLite and PostgreSQL).
# PostgreSQL tests use $RINGI_TEST_DATABASE_URL; when unset, the local server is used if
# one answers on 127.0.0.1:5432, otherwise those tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
# Real tools the integration tests use (Debian packages): Dovecot for IMAP, and OpenSSL to
# verify stamps the way a partner does.
missing=()
if ! command -v dovecot >/dev/null 2>&1 || [ ! -x /usr/lib/dovecot/imap ]; then
  missing+=(dovecot-imapd)
fi
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo -n apt-get); fi
  "${apt[@]}" update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
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
