#!/usr/bin/env bash
# A PostgreSQL primary and a synchronous streaming standby on loopback, for the ledger's
# PostgreSQL store: a commit is acknowledged only once the standby has applied it
# (synchronous_commit = remote_apply), so losing the primary's machine loses no acknowledged
# write.
#
#   scripts/pg-standby.sh start DIR [PRIMARY_PORT] [STANDBY_PORT]   (default 5432 and 5433)
#   scripts/pg-standby.sh promote DIR     the standby becomes the primary (after losing it)
#   scripts/pg-standby.sh stop DIR
#
# The ledger nodes then use --store postgres://postgres@127.0.0.1:PRIMARY_PORT/postgres. After a
# promotion, restart them with the standby's port (or put both hosts in the connection string
# with target_session_attrs=read-write). With one synchronous standby, the primary waits for it:
# if the standby is down, commits wait too (availability traded for no loss; see
# docs in README "Running several nodes").
# Runs the servers as the `postgres` user when started as root.
set -euo pipefail

command=${1:?usage: pg-standby.sh start|promote|stop DIR [PRIMARY_PORT] [STANDBY_PORT]}
dir=${2:?the directory for both clusters}
primary_port=${3:-5432}
standby_port=${4:-5433}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server binaries: run scripts/install-postgres.sh" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 >/dev/null
    cat >> "$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
fsync = on
synchronous_commit = remote_apply
synchronous_standby_names = 'standby'
CONF
    echo "host replication postgres 127.0.0.1/32 trust" >> "$dir/primary/pg_hba.conf"
    as_owner "$bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
    # -R writes primary_conninfo (with the name synchronous_standby_names expects) and
    # standby.signal.
    as_owner "$bin/pg_basebackup" \
        -d "host=127.0.0.1 port=$primary_port user=postgres application_name=standby" \
        -D "$dir/standby" -R -X stream >/dev/null
    echo "port = $standby_port" >> "$dir/standby/postgresql.conf"
    as_owner "$bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
    # Ready once the primary counts the standby as synchronous (it streams, caught up).
    state=
    for _ in $(seq 1 300); do
        state=$(as_owner "$bin/psql" -h 127.0.0.1 -p "$primary_port" -U postgres -Atc \
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")
        [ "$state" = sync ] && break
        sleep 0.1
    done
    [ "$state" = sync ] || { echo "the standby did not become synchronous ($state)" >&2; exit 1; }
    echo "primary on 127.0.0.1:$primary_port, synchronous standby on 127.0.0.1:$standby_port"
    echo "store: postgres://postgres@127.0.0.1:$primary_port/postgres"
    ;;
promote)
    standby_port=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$dir/standby/postgresql.conf" | tail -n 1)
    recovering=$(as_owner "$bin/psql" -h 127.0.0.1 -p "$standby_port" -U postgres -Atc \
        "SELECT pg_is_in_recovery()")
    if [ "$recovering" = t ]; then
        as_owner "$bin/pg_ctl" -D "$dir/standby" -w promote >/dev/null
    fi
    # The promoted server has no standby of its own: stop waiting for one.
    as_owner "$bin/psql" -h 127.0.0.1 -p "$standby_port" -U postgres -qc \
        "ALTER SYSTEM SET synchronous_standby_names = ''" -c "SELECT pg_reload_conf()" >/dev/null
    echo "the standby on 127.0.0.1:$standby_port is the primary now"
    ;;
stop)
    for cluster in standby primary; do
        [ -d "$dir/$cluster" ] && as_owner "$bin/pg_ctl" -D "$dir/$cluster" -m fast -w stop >/dev/null 2>&1 || true
    done
    ;;
*)
    echo "unknown command $command" >&2
    exit 2
    ;;
esac
