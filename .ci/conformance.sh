#!/usr/bin/env bash
# SCIM 2.0 conformance: runs the real `idbridge serve` against scim2-tester (driven through the
# `scim2 test` command of scim2-cli) and fails unless every check it reports is SUCCESS.
#
#   bash .ci/conformance.sh [sqlite|postgres]
#
# Needs: cargo, python3, curl, the `scim2` command of scim2-cli 0.6.0 / scim2-tester 0.5.2 (.ci/run
# installs them, pinned, into the venv $IDBRIDGE_SCIM2_VENV, default
# ~/.cache/idbridge-ci/scim2-venv, which this script prefers over a `scim2` on PATH), and for
# `postgres` a server at 127.0.0.1:5432 that lets user postgres in without a password (a throwaway
# database is created and dropped).
#
# Outputs are kept in target/conformance/ (scim2-<backend>.txt, server-<backend>.log,
# cli-<backend>.log).
# IDBRIDGE_CONFORMANCE_BIN=/path/to/idbridge skips the build and uses that binary instead (.ci/run
# passes the debug build its `cargo test` made).
#
# How scim2-tester 0.5.2 reports (read from its source): one line per result,
# "<STATUS> <check name>", then indented reason/data lines (a reason may span lines).
# STATUS is one of SUCCESS, COMPLIANT, ACCEPTABLE, DEVIATION, ERROR, CRITICAL, SKIPPED, and
# `scim2 test` itself exits 1 as soon as any result is not SUCCESS. It has no machine-readable
# output and no flag to relax that, so this script parses the text and applies the same rule.
# SKIPPED counts as a failure here, on purpose: the tester skips
#   - every PATCH check (add/remove/replace) when /ServiceProviderConfig says patch.supported=false,
#   - the POST /.search check when the server answers 501 to a search at the root of the base URL,
#   - the attributes/excludedAttributes checks when a schema has no optional attribute to use.
# Okta and Entra both need PATCH, and idbridge implements the root /.search, so none of those
# skips should happen; if one does, it is a lost check and the run must say so.
set -euo pipefail

backend="${1:-sqlite}"
case "$backend" in
  sqlite | postgres) ;;
  *)
    echo "usage: bash .ci/conformance.sh [sqlite|postgres]" >&2
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
out_dir="$root/target/conformance"
mkdir -p "$out_dir"
report="$out_dir/scim2-$backend.txt"
server_log="$out_dir/server-$backend.log"
rm -f "$report" "$server_log"

say() { printf '[conformance:%s] %s\n' "$backend" "$*"; }

for tool in python3 curl; do
  command -v "$tool" >/dev/null || { say "missing $tool" >&2; exit 1; }
done
# The pinned tools .ci/run installs into their own venv; any `scim2` on PATH otherwise.
scim2_venv="${IDBRIDGE_SCIM2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/idbridge-ci/scim2-venv}"
if [[ -x "$scim2_venv/bin/scim2" ]]; then
  scim2_bin="$scim2_venv/bin/scim2"
elif command -v scim2 >/dev/null; then
  scim2_bin="$(command -v scim2)"
else
  say "the scim2 command is missing: run bash .ci/run once (it installs scim2-tester 0.5.2 and" \
    "scim2-cli 0.6.0 into $scim2_venv), or pip install scim2-tester==0.5.2 scim2-cli==0.6.0" >&2
  exit 1
fi

# --- build once ------------------------------------------------------------------------------
if [[ -n "${IDBRIDGE_CONFORMANCE_BIN:-}" ]]; then
  bin="$IDBRIDGE_CONFORMANCE_BIN"
  say "using $bin (IDBRIDGE_CONFORMANCE_BIN), no build"
else
  say "cargo build --release"
  cargo build --release --quiet
  bin="$root/target/release/idbridge"
fi
[[ -x "$bin" ]] || { say "no executable at $bin" >&2; exit 1; }

# --- state to clean up -----------------------------------------------------------------------
tmp_dir="$(mktemp -d)"
server_pid=""
pg_db=""
pg_admin=(env PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -p 5432 -U postgres -d test
  -v ON_ERROR_STOP=1 -qAt)

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [[ -n "$pg_db" ]]; then
    PGCONNECT_TIMEOUT=10 "${pg_admin[@]}" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 ||
      echo "[conformance:$backend] could not drop database $pg_db" >&2
  fi
  rm -rf "$tmp_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- database --------------------------------------------------------------------------------
if [[ "$backend" == sqlite ]]; then
  db_url="sqlite://$tmp_dir/conformance.db"
else
  pg_db="idbridge_conf_$$"
  PGCONNECT_TIMEOUT=10 "${pg_admin[@]}" -c "CREATE DATABASE $pg_db" >/dev/null
  db_url="postgres://postgres@127.0.0.1:5432/$pg_db"
fi

# --- serve -----------------------------------------------------------------------------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
export IDBRIDGE_DATABASE_URL="$db_url" IDBRIDGE_LISTEN="127.0.0.1:$port" IDBRIDGE_PUBLIC_URL="$base"
# PostgreSQL keeps no key file and `serve` refuses to start there without a key; a throwaway one.
IDBRIDGE_SECRETS_KEY="$(openssl rand -base64 32)"
export IDBRIDGE_SECRETS_KEY
say "starting idbridge serve on $base"
"$bin" serve >"$server_log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$base/readyz" 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    say "idbridge serve exited before it was ready; its log:" >&2
    tail -n 50 "$server_log" >&2
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    say "idbridge serve not ready after 60 s; its log:" >&2
    tail -n 50 "$server_log" >&2
    exit 1
  fi
  sleep 0.2
done
say "ready"

# --- a directory to test -----------------------------------------------------------------------
# The commands print one JSON object on stdout (logs go to stderr); take the last JSON line.
json_field() {
  python3 -c '
import json, sys
field = sys.argv[1]
lines = [l for l in sys.stdin.read().splitlines() if l.strip().startswith("{")]
if not lines:
    sys.exit("no JSON object on stdout")
value = json.loads(lines[-1]).get(field)
if not value:
    sys.exit("no %r in %s" % (field, lines[-1][:200]))
print(value)
' "$1"
}

cli_log="$out_dir/cli-$backend.log"
: >"$cli_log"
cli_failed() {
  say "$1 failed; its stderr ($cli_log):" >&2
  tail -n 30 "$cli_log" >&2
  exit 1
}
org_json="$("$bin" org create --name "conformance-$backend-$$" --json 2>>"$cli_log")" || cli_failed "org create"
org_id="$(json_field id <<<"$org_json")"
dir_json="$("$bin" directory create --org "$org_id" --name "scim2-tester" --json 2>>"$cli_log")" ||
  cli_failed "directory create"
scim_url="$(json_field scim_url <<<"$dir_json")"
token="$(json_field token <<<"$dir_json")"
say "directory created: $scim_url"

# --- run the tester ------------------------------------------------------------------------------
# The token goes through the environment (SCIM_CLI_HEADERS, ';'-separated), not argv.
tester_version="$("$(dirname "$scim2_bin")/python" -c \
  'import importlib.metadata as m; print(m.version("scim2-tester"))' 2>/dev/null || echo '?')"
say "$scim2_bin test (scim2-tester $tester_version)"
set +e
SCIM_CLI_HEADERS="Authorization: Bearer $token" NO_COLOR=1 \
  timeout 900 "$scim2_bin" --url "$scim_url" test --verbose >"$report" 2>&1
tester_rc=$?
set -e

# --- verdict ---------------------------------------------------------------------------------
set +e
python3 - "$report" "$tester_rc" "$backend" <<'PY'
import re
import sys

report, tester_rc, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
STATUSES = ("SUCCESS", "COMPLIANT", "ACCEPTABLE", "DEVIATION", "ERROR", "CRITICAL", "SKIPPED")
status_line = re.compile(r"^(%s) (\S+)\s*$" % "|".join(STATUSES))
ansi = re.compile(r"\x1b\[[0-9;]*m")

lines = [ansi.sub("", l.rstrip("\n")) for l in open(report, encoding="utf-8", errors="replace")]
results = []  # (status, check, detail lines)
for line in lines:
    m = status_line.match(line)
    if m:
        results.append((m.group(1), m.group(2), []))
    elif results:
        results[-1][2].append(line)

failed = [r for r in results if r[0] != "SUCCESS"]
passed = len(results) - len(failed)
problems = []

if not results:
    problems.append("the tester reported no check at all (exit code %d); its output:" % tester_rc)
    problems.extend("  " + l[:300] for l in lines[-30:])

# Guard against a run that silently checks less: each CRUD/PATCH check runs once per resource
# type (User and Group), the discovery checks at least once.
counts = {}
for status, check, _ in results:
    counts[check] = counts.get(check, 0) + 1
per_type = ["object_creation", "object_query", "object_query_without_id",
            "object_query_with_attributes", "object_list_with_attributes",
            "search_with_attributes", "object_replacement", "object_deletion",
            "check_add_attribute", "check_remove_attribute", "check_replace_attribute"]
once = ["service_provider_config_endpoint", "query_all_resource_types", "query_all_schemas",
        "random_url"]
if results:
    for check in per_type:
        if counts.get(check, 0) < 2:
            problems.append("check %s ran %d time(s), expected one per resource type (User, Group)"
                            % (check, counts.get(check, 0)))
    for check in once:
        if counts.get(check, 0) < 1:
            problems.append("check %s did not run" % check)

if failed:
    print("non-SUCCESS results (%d):" % len(failed))
    for status, check, detail in failed:
        print("%s %s" % (status, check))
        for d in detail[:6]:
            print("    " + (d[:400] + " ..." if len(d) > 400 else d))
if tester_rc != 0 and not failed and results:
    problems.append("scim2 test exited %d although every parsed result is SUCCESS" % tester_rc)
for p in problems:
    print(p)

ok = not failed and not problems and tester_rc == 0
print("scim2-tester on %s: %s, full output in %s" % (backend, "PASS" if ok else "FAIL", report))
# Problems (no check ran, a check missing) count as failures too.
print("conformance: %d passed, %d failed" % (passed, len(failed) + len(problems)))
sys.exit(0 if ok else 1)
PY
verdict=$?
set -e
if ((verdict != 0)); then
  say "server log (last 30 lines of $server_log):"
  tail -n 30 "$server_log" || true
fi
exit "$verdict"
