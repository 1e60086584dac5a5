#!/usr/bin/env bash
# Run the evidence pipeline with the parameters a workflow passes in environment variables.
#
# Workflows pass untrusted or optional values (dispatch inputs, a baseline that may be
# missing) through env vars; this script turns them into one argv without eval, so no
# input can become shell code, and leaves --baseline (--history) out when the file
# (directory) is absent.
#
# Usage: scripts/ci_evidence.sh [--dry-run]   (--dry-run prints the argv, shell-quoted)
# Env:   KAKEYA_MODEL (default kakeya/tiny-qwen3), KAKEYA_DEVICE (default auto),
#        KAKEYA_OUTPUT (default evidence), KAKEYA_BASELINE (path; used when the file exists),
#        KAKEYA_HISTORY (directory of main's earlier evidence.json; used when it exists),
#        KAKEYA_RERUN_FAILURES (default 1: a failed test runs once more, flaky ones are named),
#        KAKEYA_TESTS (path to select), KAKEYA_PYTEST_ARGS (one string, passed as one value),
#        KAKEYA_NO_PREWARM (1: pass --no-prewarm, a cache miss fails instead of downloading),
#        KAKEYA_EVIDENCE (the command, default kakeya-evidence).
# Exit code: that of `kakeya-evidence run` (0 passed, 1 tests failed, 2 a stage could not run).
set -euo pipefail

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--dry-run]" >&2; exit 2
fi

argv=("${KAKEYA_EVIDENCE:-kakeya-evidence}" run
  --model "${KAKEYA_MODEL:-kakeya/tiny-qwen3}"
  --device "${KAKEYA_DEVICE:-auto}"
  --output "${KAKEYA_OUTPUT:-evidence}"
  --rerun-failures "${KAKEYA_RERUN_FAILURES:-1}")
if [ -n "${KAKEYA_BASELINE:-}" ]; then
  if [ -f "$KAKEYA_BASELINE" ]; then
    argv+=(--baseline "$KAKEYA_BASELINE")
  else
    echo "no baseline at $KAKEYA_BASELINE; running without a comparison" >&2
  fi
fi
if [ -n "${KAKEYA_HISTORY:-}" ]; then
  if [ -d "$KAKEYA_HISTORY" ]; then
    argv+=(--history "$KAKEYA_HISTORY")
  else
    echo "no history at $KAKEYA_HISTORY; running without trends" >&2
  fi
fi
if [ -n "${KAKEYA_TESTS:-}" ]; then argv+=(--tests "$KAKEYA_TESTS"); fi
if [ "${KAKEYA_NO_PREWARM:-0}" = "1" ]; then argv+=(--no-prewarm); fi
if [ -n "${KAKEYA_PYTEST_ARGS:-}" ]; then argv+=("--pytest-args=$KAKEYA_PYTEST_ARGS"); fi

if [ "$dry_run" -eq 1 ]; then
  printf '%q ' "${argv[@]}"
  echo
  exit 0
fi
echo "+ ${argv[*]}" >&2
exec "${argv[@]}"
