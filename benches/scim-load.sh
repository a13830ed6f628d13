#!/usr/bin/env bash
# Runs scim-load against a fresh `idbridge serve`, as the README's "Load over HTTP" table was made:
#
#   bash benches/scim-load.sh [sqlite|postgres://URL] [USERS] [scim-load options...]
#
# sqlite (the default) uses a new database file in a temporary folder; a postgres:// URL must
# name an empty database or schema (it is migrated). The release binaries are built first.
# Everything after USERS goes to scim-load (--dialect entra, --concurrency 32, --group-size N...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

backend="${1:-sqlite}"
users="${2:-20000}"
shift $(($# > 2 ? 2 : $#))

cargo build --release --quiet --bin idbridge --bin scim-load
work="$(mktemp -d)"
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [[ "$backend" == sqlite ]]; then
  export IDBRIDGE_DATABASE_URL="sqlite://$work/load.db"
else
  export IDBRIDGE_DATABASE_URL="$backend"
fi
# The server's own speed is what is measured: its per-directory SCIM rate limit (a safety default,
# see the README's Configuration) is lifted for the run.
export IDBRIDGE_RATE_SCIM=0
export IDBRIDGE_SECRETS_KEY="${IDBRIDGE_SECRETS_KEY:-$(openssl rand -base64 32)}"
bin=target/release/idbridge

"$bin" migrate >/dev/null
org="load-$(date +%s)"
"$bin" org create --name "$org" --json >/dev/null
directory="$("$bin" directory create --org "$org" --json)"
id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$directory")"
token="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$directory")"

IDBRIDGE_LISTEN=127.0.0.1:0 "$bin" serve >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do
  addr="$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1 || true)"
  [[ -n "$addr" ]] && break
  sleep 0.1
done
[[ -n "$addr" ]] || { cat "$work/serve.err" >&2; exit 1; }

echo "idbridge at $addr ($backend), $users users"
target/release/scim-load --base "$addr/scim/v2/$id" --token "$token" --users "$users" \
  --server-pid "$server" "$@"
