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
# llama.cpp (the embedded LLM) is compiled once per set of CPU flags into a wheel kept under
# ~/.cache/twin/wheels, and installed from there. The flags are portable AVX2 ones, never
# -march=native: a native build on a CPU with AMX (recent Intel Xeons) crashes in
# ggml_backend_amx_mul_mat under a VM, and pip's own wheel cache would reuse a native build
# made on another machine.
if [[ ",$extras," == *",embedded,"* ]]; then
  llama_version="0.3.36"
  llama_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/twin/wheels/llama-cpp-python-$llama_version-$(echo "$llama_flags" | sha256sum | cut -c1-12)"
  if [ "$(cat .venv/.llama-cpp-build 2>/dev/null)" != "$wheel_dir" ]; then
    if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
      echo "==> compiling llama.cpp (llama-cpp-python $llama_version, portable AVX2 build, ~11 min on 2 cores)"
      mkdir -p "$wheel_dir"
      CMAKE_ARGS="$llama_flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/pip wheel -q \
        --disable-pip-version-check --no-cache-dir --no-deps --no-binary llama-cpp-python \
        -w "$wheel_dir" "llama-cpp-python==$llama_version" 2>&1 \
        | grep -vE "is ignored: it is neither a file nor a directory|^\s*$" || true
    fi
    .venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps \
      "$wheel_dir"/llama_cpp_python-*.whl
    echo "$wheel_dir" > .venv/.llama-cpp-build
  fi
fi
stamp=".venv/.installed-$(echo "$extras" | tr ',' '_')"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing the project with extras [$extras]"
  .venv/bin/pip install --disable-pip-version-check -q -e ".[$extras]" 2>&1 \
    | grep -vE "is ignored: it is neither a file nor a directory|^\s*$" || true
  .venv/bin/python -c "import twin.cli" >/dev/null
  echo "$want" > "$stamp"
fi
