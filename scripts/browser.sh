#!/usr/bin/env bash
# Install the headless browser the review app's browser tests drive: Debian's chromium and
# chromium-driver (apt-get, needs root). Idempotent; does nothing when both are there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "browser.sh: chromium/chromium-driver missing; run as root or: apt-get install chromium chromium-driver" >&2
  echo "browser.sh: the browser tests will be skipped" >&2
  exit 0
fi
echo "==> installing chromium and chromium-driver (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends chromium chromium-driver >&2
