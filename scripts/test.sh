#!/usr/bin/env bash
# Set up and run the whole test suite (lint, types, tests on SQLite and PostgreSQL).
# PostgreSQL tests use $RINGI_TEST_DATABASE_URL; when unset, the local server is used if
# one answers on 127.0.0.1:5432, otherwise those tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
# Real tools the integration tests use (Debian packages): Dovecot for IMAP, 7-Zip (7zz) and
# OpenSSL to open the partner archives and password envelopes that ringi writes.
pkgs=()
if ! command -v dovecot >/dev/null 2>&1 || [ ! -x /usr/lib/dovecot/imap ]; then
  pkgs+=(dovecot-imapd)
fi
command -v 7zz >/dev/null 2>&1 || pkgs+=(7zip)
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
# Postfix writes real DSNs in the bounce test (a private instance of its own; the package is
# installed unconfigured, so no system mail server starts).
if [ ! -x /usr/sbin/postfix ]; then
  pkgs+=(postfix)
  if [ "$(id -u)" = 0 ]; then preseed=(debconf-set-selections); else preseed=(sudo -n debconf-set-selections); fi
  echo "postfix postfix/main_mailer_type select No configuration" | "${preseed[@]}"
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo -n apt-get); fi
  "${apt[@]}" update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends \
    "${pkgs[@]}" >/dev/null
fi
if [ -z "${RINGI_TEST_DATABASE_URL:-}" ] && \
   .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null; then
  export RINGI_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/test"
fi
.venv/bin/ruff check .
.venv/bin/mypy
set +e
# Two workers: most tests wait on sockets and subprocesses, so the run takes about half as long.
# A short base folder: Dovecot's socket paths under it must fit in 108 bytes.
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --basetemp="/tmp/ringi-t$$" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"; exit 1
fi
exit "$rc"
