#!/usr/bin/env bash
# Create a virtual environment with the project and every test/evidence dependency.
# Linux takes the CPU torch pinned in pyproject.toml; macOS takes PyPI's (MPS) wheel.
# Browser tests need Debian's chromium: installed here when missing and we are root.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[test]"

if [ "$(uname -s)" = "Linux" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium missing; browser tests will be skipped" >&2
  fi
fi
