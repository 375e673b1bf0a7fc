#!/usr/bin/env bash
# The main job: a patient phones the practice and books an appointment, all local.
# Sets everything up on a fresh machine (venv, packages, models), then runs `twin demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh voice,embedded
.venv/bin/twin models install
exec .venv/bin/twin demo "$@"
