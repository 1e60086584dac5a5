#!/usr/bin/env bash
# Create a virtual environment from this platform's lock, then the project into it.
#
# Linux x86_64 installs locks/linux-cpu.txt (CPython 3.11, torch's CPU build: the wheel in
# /opt/wheels here, download.pytorch.org/whl/cpu elsewhere); macOS arm64 installs
# locks/macos-arm64.txt (PyPI's torch, the MPS build). Every file is hash-checked
# (--require-hashes) and nothing falls back to an unlocked install: a lock that cannot be
# installed fails here. On a platform with no lock, KAKEYA_UNLOCKED=1 installs the ranges of
# pyproject.toml instead (say so in any evidence you make there).
# The project's Jupyter kernel ("kakeya") is registered inside the venv (make lab uses it).
# Browser tests need Debian's chromium: installed here when missing and we are root.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) lock=locks/linux-cpu.txt ;;
  Darwin-arm64) lock=locks/macos-arm64.txt ;;
  *) lock="" ;;
esac

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
if [ -n "$lock" ]; then
  "$venv/bin/python" -m pip install --quiet --require-hashes -r "$lock"
  # setuptools comes from the lock too, so the editable build needs nothing unlocked
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
elif [ "${KAKEYA_UNLOCKED:-0}" = "1" ]; then
  echo "note: no lock for $(uname -s)-$(uname -m); installing pyproject.toml's ranges" >&2
  "$venv/bin/python" -m pip install --quiet -e ".[test]"
else
  echo "no lock for $(uname -s)-$(uname -m) in locks/; set KAKEYA_UNLOCKED=1 to install" \
    "pyproject.toml's ranges instead" >&2
  exit 2
fi
"$venv/bin/python" -m ipykernel install --sys-prefix --name kakeya \
  --display-name "Python (kakeya)" >/dev/null

if [ "$(uname -s)" = "Linux" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium missing; browser tests will be skipped" >&2
  fi
fi
