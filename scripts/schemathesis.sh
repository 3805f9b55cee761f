#!/usr/bin/env bash
# API fuzzing: schemathesis against the served OpenAPI document of a real `ledger serve`.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES [SCHEMATHESIS_ARGS...]]
#
# MAX_EXAMPLES (default 100) bounds the test cases per operation and phase; further arguments go
# to `schemathesis run` as they are (e.g. --continue-on-failure, --seed 1, --phases fuzzing).
#
# Builds the release binary, starts it on a free port with a temporary data directory and a
# random root token, creates a tenant with an admin key (and a group, a user and licences, so
# generated requests can name real entities), installs a pinned schemathesis into a venv under
# target/, and runs every phase (examples, coverage, fuzzing, stateful) with every check of that
# version but one: no 5xx, answers that match the documented status codes, content types,
# headers and schemas, input that breaks the schema refused, auth not ignored, deleted things
# gone. `{t}` is always the created tenant; `{g}`, `{u}`, `{key}`, `{id}` and `{addon}` are the
# created entities half of the time. Exits non-zero on any failure.
#
# Left out: positive_data_acceptance, which wants every schema-valid request accepted. Here
# validity also depends on the tenant's state (a type code must be in its catalogue, a licence
# must be free, a rule may refuse with 422), and OpenAPI 3.1 treats `format: uuid` and
# `format: date-time` as annotations, so "" counts as schema-valid for an id or an instant.
#
# Environment: SCHEMATHESIS_SEED (a fixed seed for a reproducible run), SCHEMATHESIS_REPORT_DIR
# (where the JUnit report goes; default target/schemathesis-report).
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
max_examples="${1:-100}"
shift || true
if ! [[ "$max_examples" =~ ^[0-9]+$ ]] || [ "$max_examples" -lt 1 ]; then
    echo "usage: $0 [MAX_EXAMPLES]" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cargo build --release --bin ledger
venv="$root/target/schemathesis-venv"
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
root_token="root_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
LEDGER_ROOT_TOKEN="$root_token" "$root/target/release/ledger" serve \
    --data "$work/data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl --silent --fail "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl --silent --fail "$base/healthz" >/dev/null || {
    echo "the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
}

# A setup request that must succeed; prints the answer.
call() {
    local method="$1" path="$2" token="$3" body="${4:-}"
    curl --silent --show-error --fail-with-body -X "$method" "$base$path" \
        -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
        ${body:+--data "$body"}
}
tenant="$(call POST /v1/tenants "$root_token" '{"name": "Schemathesis"}' | jq -r .id)"
admin="$(call POST "/v1/tenants/$tenant/keys" "$root_token" \
    '{"role": "admin", "name": "schemathesis"}' | jq -r .token)"
group="$(call POST "/v1/tenants/$tenant/groups" "$admin" '{"name": "Office"}' | jq -r .id)"
user="$(call POST "/v1/tenants/$tenant/users" "$admin" \
    "{\"name\": \"John\", \"group_id\": \"$group\"}" | jq -r .id)"
call POST "/v1/tenants/$tenant/licenses" "$admin" '{"type": "phone_system", "quantity": 3}' >/dev/null
call POST "/v1/tenants/$tenant/licenses" "$admin" '{"type": "call_recording", "quantity": 2}' >/dev/null
call POST "/v1/tenants/$tenant/assignments" "$admin" \
    "{\"user_id\": \"$user\", \"type\": \"phone_system\", \"addons\": [\"call_recording\"]}" >/dev/null
licenses="$(call GET "/v1/tenants/$tenant/licenses" "$admin" | jq -c '[.items[].id]')"
viewer_key="$(call POST "/v1/tenants/$tenant/keys" "$admin" \
    '{"role": "viewer", "name": "to revoke"}' | jq -r .id)"

report_dir="${SCHEMATHESIS_REPORT_DIR:-$root/target/schemathesis-report}"
mkdir -p "$report_dir"
cat >"$work/schemathesis.toml" <<EOF
headers = { Authorization = "Bearer $admin" }

[dictionaries.groups]
values = ["$group"]
[dictionaries.users]
values = ["$user"]
[dictionaries.licenses]
values = $licenses
[dictionaries.keys]
values = ["$viewer_key"]

[parameters]
"path.t" = "$tenant"
"path.g" = { dictionary = "groups", probability = 0.5 }
"path.u" = { dictionary = "users", probability = 0.5 }
"path.key" = { dictionary = "keys", probability = 0.5 }
"path.id" = { dictionary = "licenses", probability = 0.5 }
"path.addon" = { dictionary = "licenses", probability = 0.5 }
EOF

seed_args=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed_args=(--seed "$SCHEMATHESIS_SEED")
echo "schemathesis $SCHEMATHESIS_VERSION: $base/v1/openapi.json, tenant $tenant, ${max_examples} examples per operation" >&2
status=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/v1/openapi.json" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$max_examples" \
    --request-timeout 30 \
    --report junit --report-dir "$report_dir" \
    --no-color \
    "${seed_args[@]}" "$@" || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server died during the run:" >&2
    tail -50 "$work/server.log" >&2
    status=1
fi
if grep -q "panicked" "$work/server.log"; then
    echo "the server logged a panic:" >&2
    grep -B2 -A10 "panicked" "$work/server.log" | head -60 >&2
    status=1
fi
exit "$status"
