#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver, which the web console's browser tests
# (tests/it/console.rs) drive headless through WebDriver.
# Run as root (or with sudo) on Debian or Ubuntu.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
chromedriver --version
