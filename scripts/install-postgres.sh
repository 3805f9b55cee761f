#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the PostgreSQL reference row of `ledger bench`
# (the bench finds them under /usr/lib/postgresql/*/bin, runs its own throw-away cluster in its
# scratch directory and removes it after; the packaged cluster is not used).
# Run as root (or with sudo) on Debian or Ubuntu.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
ls -d /usr/lib/postgresql/*/bin
