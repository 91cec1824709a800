#!/usr/bin/env bash
# Quick start: set up and run the daemon on the embedded default
# (SQLite and folders under spool/, the sample organisation, mail written to spool/outbox/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/ringi "$@" run
