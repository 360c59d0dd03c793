#!/bin/sh
# Debian's chromium and its matching chromedriver, for the browser test.
# Installs only when missing and only where apt-get can run (as root);
# elsewhere it says why and the browser test skips with that reason.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium and chromedriver are missing and cannot be installed here (needs apt-get as root)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; }
