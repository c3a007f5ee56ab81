#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with Schemathesis (--checks all: every
# response check, positive and negative data, the stateful phase included) and fails on
# any failure. Self-contained: installs Schemathesis in a virtualenv under target/, builds
# and starts the server on a free port (development mode, BCRYPT_COST=4, an admin account
# whose token authorises every request), and stops it on exit.
#
#   scripts/schemathesis.sh                 # a run with a fresh random seed (printed)
#   SCHEMATHESIS_SEED=123 scripts/schemathesis.sh   # replay a seed
#   scripts/schemathesis.sh --max-examples 300      # extra arguments go to `schemathesis run`
#
# Two documented rules JSON Schema cannot express are taught to the generator by
# scripts/schemathesis_hooks.py (see there). Needs python3 (with venv) and network access
# to PyPI the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
WORK=$(mktemp -d)
SERVER_PID=

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  mkdir -p target
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
PY="$VENV/bin/python"

echo "==> building inventory-api"
cargo build --quiet --locked -p inventory-api --bin inventory-api
SERVER=target/debug/inventory-api

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
ADMIN_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')

echo "==> starting the server on $BASE (development mode)"
env -i PATH="$PATH" \
  BIND_ADDR="127.0.0.1:$PORT" \
  BCRYPT_COST=4 \
  ADMIN_USERNAME=admin \
  ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  JWT_TTL_SECONDS=3600 \
  READY_DRAIN_MS=0 \
  LOG_FORMAT=json \
  RUST_LOG=warn \
  "$SERVER" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Waits for /health, then logs the admin in; prints the token.
TOKEN=$("$PY" - "$BASE" "$ADMIN_PASSWORD" <<'PY'
import json, sys, time, urllib.parse, urllib.request
base, password = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the server did not become healthy")
    time.sleep(0.1)
form = urllib.parse.urlencode({"username": "admin", "password": password}).encode()
with urllib.request.urlopen(base + "/api/auth/login", data=form, timeout=10) as r:
    print(json.load(r)["access_token"])
PY
) || { echo "server log:"; cat "$WORK/server.log"; exit 1; }

SEED=${SCHEMATHESIS_SEED:-$("$PY" -c 'import secrets; print(secrets.randbits(64))')}
echo "==> schemathesis run --checks all --seed $SEED"
started=$(date +%s)
status=0
PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks \
  "$VENV/bin/schemathesis" run "$BASE/api-docs/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $TOKEN" \
    --seed "$SEED" \
    --no-color \
    "$@" || status=$?
echo "==> schemathesis finished in $(( $(date +%s) - started )) s with exit status $status (seed $SEED)"
if [[ $status -ne 0 ]]; then
  echo "server log (last 50 lines):"
  tail -n 50 "$WORK/server.log"
fi
exit $status
