#!/usr/bin/env bash
# scripts/format.sh - format every C/C++ source with the repository's
# .clang-format. `scripts/format.sh --check` only reports files that differ
# (scripts/test runs it that way).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' '*.cc' | grep -v '^tests/e2e/node/')
if [ "${1:-}" = "--check" ]; then
    bad=0
    for f in $files; do
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            echo "format: $f differs from .clang-format (run scripts/format.sh)"
            bad=1
        fi
    done
    exit $bad
fi
clang-format -i $files
