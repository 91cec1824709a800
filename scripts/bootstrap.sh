#!/usr/bin/env bash
# Create .venv and install ringi (and, with "test", what the test suite needs).
# The install is editable, so code changes need no reinstall: pip runs again only when
# pyproject.toml (the dependencies) or the wanted extras changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extra=""
[ "${1:-}" = "test" ] && extra="[test]"
stamp=".venv/.ringi-installed${extra:+-test}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -x .venv/bin/ringi ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0  # installed from this very pyproject.toml: nothing to do
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
echo "$want" > "$stamp"
