#!/usr/bin/env bash
# The test suite: sets everything up on a fresh machine (venv, packages, models,
# PostgreSQL), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh voice,embedded,dev,postgres,caldav,transcripts,review,training
.venv/bin/twin models install
scripts/browser.sh
if [ -f scripts/services.sh ]; then
  # shellcheck disable=SC1091
  source scripts/services.sh
fi
.venv/bin/ruff check .
.venv/bin/mypy
set +e
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "no tests were collected" >&2; fi
exit "$rc"
