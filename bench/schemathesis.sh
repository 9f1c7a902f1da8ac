#!/usr/bin/env bash
# The long schemathesis run (the CI one uses 25 examples per operation): every check on every
# operation of a real loopsyd, fixed seed unless SEED is set. Usage: bash bench/schemathesis.sh [EXAMPLES]
# The report lands in .build/test-artifacts/schemathesis.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-500}"
if [ ! -x .build/venv-api/bin/schemathesis ] || ! cmp -s Tests/API/requirements.txt .build/venv-api/requirements.txt; then
    rm -rf .build/venv-api
    python3 -m venv .build/venv-api
    .build/venv-api/bin/pip install -q --disable-pip-version-check -r Tests/API/requirements.txt
    cp Tests/API/requirements.txt .build/venv-api/requirements.txt
fi
[ -x .build/debug/loopsyd ] || swift build
start=$(date +%s)
SCHEMATHESIS_MAX_EXAMPLES="$examples" .build/venv-api/bin/python -m pytest -q -p no:cacheprovider Tests/API
echo
echo "| examples per operation | seconds | result |"
echo "|---|---|---|"
echo "| $examples | $(( $(date +%s) - start )) | $(grep -E '^Test cases:' -A1 .build/test-artifacts/schemathesis.txt | tail -1 | sed 's/^ *//') |"
