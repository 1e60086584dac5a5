#!/usr/bin/env bash
# Reuse a virtual environment keyed by the dependency files, and install the project into it.
#
# The self-hosted Mac runner keeps one venv per hash of (pyproject.toml, requirements*.txt,
# the lock files locks/linux-cpu.txt and locks/macos-arm64.txt when present, Python
# version) under $KAKEYA_VENV_ROOT/$KAKEYA_VENV_POOL, so a run only downloads
# dependencies when they changed; the project itself is reinstalled (no deps) on every
# run. A venv whose first install did not finish has no .kakeya-complete stamp and is
# rebuilt. Older venvs beyond $KAKEYA_VENV_KEEP are pruned, per pool.
#
# Pools: `main` for main's baseline runs (push, schedule), `pr` for everything else (the
# gate's `pool` output). A pull request's code installs into and runs in a `pr` venv
# only, so it cannot leave a poisoned package in the venv that main's baseline runs use.
# (Both run as the same user: the hardened setup is an ephemeral runner, see the runbook.)
#
# With the platform's lock file present (locks/macos-arm64.txt on macOS, else
# locks/linux-cpu.txt), dependencies are installed from it with --require-hashes.
#
# The interpreter must satisfy pyproject.toml's requires-python: on a Mac, `python3` on
# a plain PATH is Apple's 3.9, so the runner's .env sets PYTHON to Homebrew's python3.12
# and this script refuses (exit 2, naming PYTHON) any older interpreter before it
# builds anything.
#
# Usage: scripts/ci_venv.sh [--dry-run]
# Env:   KAKEYA_VENV_ROOT (default ~/kakeya-venvs), KAKEYA_VENV_POOL (main|pr, default pr),
#        PYTHON (default python3),
#        KAKEYA_EXTRAS (default evidence,test), KAKEYA_VENV_KEEP (default 3),
#        KAKEYA_PROJECT_DIR (default: this script's repository).
# Prints the venv path as its last line; on GitHub it also puts the venv's bin/ on
# GITHUB_PATH and VIRTUAL_ENV into GITHUB_ENV for the steps that follow.
set -euo pipefail

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--dry-run]" >&2; exit 2
fi
project_dir="${KAKEYA_PROJECT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
python_bin="${PYTHON:-python3}"
pool="${KAKEYA_VENV_POOL:-pr}"
case "$pool" in
  main|pr) ;;
  *) echo "KAKEYA_VENV_POOL must be main or pr, got '$pool'" >&2; exit 2 ;;
esac
root="${KAKEYA_VENV_ROOT:-$HOME/kakeya-venvs}/$pool"
if [ "$(uname -s)" = "Darwin" ]; then lock="$project_dir/locks/macos-arm64.txt"
else lock="$project_dir/locks/linux-cpu.txt"; fi
extras="${KAKEYA_EXTRAS:-evidence,test}"
keep="${KAKEYA_VENV_KEEP:-3}"

required="$(sed -n 's/^requires-python *= *">= *\([0-9][0-9.]*\)".*/\1/p' \
  "$project_dir/pyproject.toml")"
required="${required:-3.11}"
if ! version="$("$python_bin" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
then
  echo "cannot run PYTHON=$python_bin; set PYTHON to a Python >= $required" >&2
  exit 2
fi
if [ "${version%%.*}" -lt "${required%%.*}" ] || {
  [ "${version%%.*}" -eq "${required%%.*}" ] && [ "${version#*.}" -lt "${required#*.}" ]
}; then
  echo "PYTHON=$python_bin is Python $version; the project requires >= $required." >&2
  echo "Set PYTHON in the runner's .env, e.g. PYTHON=/opt/homebrew/bin/python3.12" >&2
  exit 2
fi

key="$("$python_bin" - "$project_dir" <<'PY'
import hashlib, pathlib, sys
root = pathlib.Path(sys.argv[1])
digest = hashlib.sha256(f"py{sys.version_info[0]}.{sys.version_info[1]}".encode())
files = [root / "pyproject.toml", *sorted(root.glob("requirements*.txt"))]
files += [root / "locks" / "linux-cpu.txt", root / "locks" / "macos-arm64.txt"]
for path in files:
    if path.is_file():
        name = path.relative_to(root).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes())
print(digest.hexdigest()[:16])
PY
)"
venv="$root/$key"

run() {
  echo "+ $*" >&2
  if [ "$dry_run" -eq 0 ]; then "$@"; fi
}

if [ ! -f "$venv/.kakeya-complete" ]; then
  run rm -rf "$venv"
  run mkdir -p "$root"
  run "$python_bin" -m venv "$venv"
  run "$venv/bin/python" -m pip install --quiet --upgrade pip
  if [ -f "$lock" ]; then
    run "$venv/bin/python" -m pip install --quiet --require-hashes -r "$lock"
  else
    run "$venv/bin/python" -m pip install --quiet "$project_dir[$extras]"
  fi
  run touch "$venv/.kakeya-complete"
else
  echo "reusing $venv" >&2
fi
run "$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$project_dir"
run touch "$venv"

# Prune: keep the newest $keep venvs (this one was just touched, so it survives).
if [ -d "$root" ]; then
  # shellcheck disable=SC2012  # names are our own hex keys, ls -t is safe here
  ls -1t "$root" | tail -n +"$((keep + 1))" | while read -r old; do
    run rm -rf "${root:?}/$old"
  done
fi

if [ "$dry_run" -eq 0 ] && [ -n "${GITHUB_PATH:-}" ]; then
  echo "$venv/bin" >> "$GITHUB_PATH"
  echo "VIRTUAL_ENV=$venv" >> "$GITHUB_ENV"
fi
echo "$venv"
