#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries, which the PostgreSQL store's tests and the
# PostgreSQL rows of the bench (`cargo run --release -p tools --bin bench`) need: they find them
# under /usr/lib/postgresql/*/bin, run their own throw-away cluster in a scratch directory and
# remove it after (the packaged cluster is not used).
# Run as root (or with sudo) on Debian or Ubuntu.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
ls -d /usr/lib/postgresql/*/bin
