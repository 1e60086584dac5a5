#!/usr/bin/env bash
# Lint the repository the way the CI gate does: ruff (lint and format), mypy --strict on the
# SDK (kakeya/), actionlint, zizmor (pedantic and auditor personas), and the runtime path
# lists that sync-paths writes into the YAML files and CODEOWNERS.
#
# Usage: scripts/ci_lint.sh [--workflows-only]
#   --workflows-only  run just actionlint and zizmor on .github/workflows (tests/ci uses it)
# The tools come from scripts/lint-requirements.txt (or the project's test extra).
# zizmor runs offline so the result does not depend on network or a token.
set -euo pipefail
cd "$(dirname "$0")/.."

workflows_only=0
if [ "${1:-}" = "--workflows-only" ]; then workflows_only=1; elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--workflows-only]" >&2; exit 2
fi

status=0
check() {
  echo "+ $*" >&2
  "$@" || status=1
}

if [ "$workflows_only" -eq 0 ]; then
  check ruff check .
  check ruff format --check .
  check mypy --strict kakeya/
fi
check actionlint -config-file .github/actionlint.yaml
check zizmor --offline --persona pedantic .github/workflows
check zizmor --offline --persona auditor .github/workflows
check python3 scripts/ci_github.py sync-paths --check
exit "$status"
