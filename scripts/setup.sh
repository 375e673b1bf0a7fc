#!/usr/bin/env bash
# Create .venv and install the project with the given extras (idempotent and quick when
# nothing changed). The first install compiles llama.cpp (llama-cpp-python, ~11 min on
# 2 cores); pip caches the wheel for later installs.
# Usage: scripts/setup.sh EXTRAS   e.g. scripts/setup.sh voice,embedded
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-voice,embedded}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "Python 3.11 or newer is needed (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip wheel setuptools
fi
stamp=".venv/.installed-$(echo "$extras" | tr ',' '_')"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing the project with extras [$extras] (first time: compiles llama.cpp, ~11 min)"
  .venv/bin/pip install --disable-pip-version-check -q -e ".[$extras]" 2>&1 \
    | grep -vE "is ignored: it is neither a file nor a directory|^\s*$" || true
  .venv/bin/python -c "import twin.cli" >/dev/null
  echo "$want" > "$stamp"
fi
