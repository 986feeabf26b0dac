#!/usr/bin/env bash
# Contract test of the example server against its OpenAPI description, with
# schemathesis (PyPI), the description read from the running server.
#
#   scripts/schemathesis.sh [extra schemathesis run options]
#
# Makes a virtual environment under target/ with schemathesis pinned, builds
# and starts the example server on a free port of 127.0.0.1 with a known
# user, runs every phase (examples, coverage, fuzzing, stateful) with every
# check against GET /api/openapi.json, and exits non-zero on any failure or
# error, or if the server logged a panic. Environment: SCHEMATHESIS_MAX_EXAMPLES
# (default 50 per operation), SCHEMATHESIS_SEED (a number, the seed a failed
# run printed for one; unset, empty or `random`: a new seed each run; the
# Rust test tests/openapi_contract.rs passes a fixed seed unless it is set),
# SCHEMATHESIS_WORKERS (default 1: with more, Hypothesis parses sources in
# several threads at once, which CPython 3.11 can fail with "AST constructor
# recursion depth mismatch"; one worker is as fast here). The seed fixes the
# generated data; the stateful phase also follows the server's answers
# (random ids, tasks that end meanwhile), so a replay may take another path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac

seed_option=()
case ${SCHEMATHESIS_SEED:-random} in
  random) ;;
  *[!0-9]*)
    echo "SCHEMATHESIS_SEED must be a number or random, not $SCHEMATHESIS_SEED" >&2
    exit 2
    ;;
  *) seed_option=(--seed "$SCHEMATHESIS_SEED") ;;
esac

version=4.32.5
venv=$target/schemathesis-venv
if [ ! -e "$venv/installed-schemathesis-$version" ]; then
  echo "== installing schemathesis $version into $venv"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
  touch "$venv/installed-schemathesis-$version"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tower-cis-schemathesis.XXXXXX")
log=$work/server.log
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${TOWER_CIS_BASE_URL:-}" ]; then
  # A server is already running (the Rust test serves the example
  # application in-process): use it and its user.
  base=$TOWER_CIS_BASE_URL
  user=${TOWER_CIS_USER:?TOWER_CIS_USER must name a user of that server}
  password=${TOWER_CIS_PASSWORD:?TOWER_CIS_PASSWORD must hold the password of that user}
  echo "using the server at $base" >"$log"
else
  echo "== building the example server"
  cargo build --quiet --example server
  server=$target/debug/examples/server
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base=http://127.0.0.1:$port
  user=schemathesis@vsphere.local
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  "$server" --listen "127.0.0.1:$port" --user "$user:$password" >"$log" 2>&1 &
  server_pid=$!
fi

ready=
for _ in $(seq 1 200); do
  if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/api/openapi.json" 2>/dev/null; then
    ready=1
    break
  fi
  if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "the server does not serve $base/api/openapi.json:" >&2
  cat "$log" >&2
  exit 1
fi

echo "== schemathesis against $base/api/openapi.json"
status=0
# From the scratch directory: schemathesis keeps its crash cache in the
# working directory.
cd "$work"
PYTHONPATH=$root/scripts${PYTHONPATH:+:$PYTHONPATH} \
  SCHEMATHESIS_HOOKS=schemathesis_hooks \
  TOWER_CIS_BASE_URL=$base TOWER_CIS_USER=$user TOWER_CIS_PASSWORD=$password \
  "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$base/api/openapi.json" \
  --url "$base" \
  --checks all \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --workers "${SCHEMATHESIS_WORKERS:-1}" \
  --generation-database none \
  --no-color \
  "${seed_option[@]}" \
  "$@" || status=$?
cd "$root"

if grep -q "panicked" "$log"; then
  echo "the example server panicked:" >&2
  grep -A5 "panicked" "$log" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  keep=$(mktemp "${TMPDIR:-/tmp}/tower-cis-schemathesis-server.XXXXXX.log")
  cp "$log" "$keep"
  echo "schemathesis: FAILED (exit $status); the server's log: $keep" >&2
  exit "$status"
fi
echo "schemathesis: passed"
