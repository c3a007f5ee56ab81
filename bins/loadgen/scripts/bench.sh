#!/usr/bin/env bash
# Runs the loadgen scenarios of docs/BENCHMARKS-loadgen.md against a fresh release server
# on loopback, in one mode, and leaves each run's table (.txt), report (.json) and chart
# (.svg) in OUTDIR. Every run is bounded (10 s sustained runs, 3 s health ceilings).
#
#   cargo build --release -p inventory-api -p inventory-loadgen
#   bins/loadgen/scripts/bench.sh redis  target/bench/redis
#   bins/loadgen/scripts/bench.sh memory target/bench/memory
#
# Redis mode starts its own redis-server (AOF, fsync every second, as in
# docker/docker-compose.yml) in a temporary directory. Ports: API_PORT (default 18120) and
# REDIS_PORT (default 16420).
set -euo pipefail
MODE=${1:?usage: bench.sh redis|memory OUTDIR}
OUT=${2:?usage: bench.sh redis|memory OUTDIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
API=$ROOT/target/release/inventory-api
LOADGEN=$ROOT/target/release/inventory-loadgen
API_PORT=${API_PORT:-18120}
REDIS_PORT=${REDIS_PORT:-16420}
export ADMIN_PASSWORD=bench-admin-password
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

server_pid=""
redis_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

# Polls a command until it succeeds, for at most 10 s.
wait_for() {
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for: $*" >&2
  return 1
}

server_env=(BIND_ADDR=127.0.0.1:$API_PORT BCRYPT_COST=4 LOG_FORMAT=json RUST_LOG=warn REGISTRATIONS_PER_ADDRESS=100000
  JWT_SECRET=bench-jwt-secret-0123456789-0123456789-0123456789)
if [ "$MODE" = redis ]; then
  redis_dir=$(mktemp -d)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
    --appendfsync everysec --dir "$redis_dir" >"$OUT/redis.log" 2>&1 &
  redis_pid=$!
  wait_for redis-cli -p "$REDIS_PORT" ping
  server_env+=(REDIS_URL=redis://127.0.0.1:$REDIS_PORT/)
elif [ "$MODE" != memory ]; then
  echo "mode must be redis or memory" >&2
  exit 2
fi
env -u REDIS_URL "${server_env[@]}" "$API" >"$OUT/server.log" 2>&1 &
server_pid=$!
wait_for curl -sf "http://127.0.0.1:$API_PORT/health"

common=(--base-url "http://127.0.0.1:$API_PORT" --token-cache "$OUT/tokens.json" --quiet)
run() {
  local name=$1
  shift
  {
    echo "== $name: inventory-loadgen $*"
    echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee -a "$OUT/commands.txt"
  local status=0
  timeout 180 "$LOADGEN" "$@" "${common[@]}" --json "$OUT/$name.json" --chart "$OUT/$name.svg" \
    >"$OUT/$name.txt" 2>&1 || status=$?
  cat "$OUT/$name.txt"
  if [ "$status" -ne 0 ]; then echo "   exit status $status" | tee -a "$OUT/commands.txt"; fi
}

# Registers the 1,000 buyers once (bcrypt); not a measurement.
timeout 600 "$LOADGEN" black-friday --stock 1 --buyers 1000 --window-ms 0 "${common[@]}" >"$OUT/setup.txt" 2>&1

run black-friday black-friday --compare-health
run black-friday-w0 black-friday --window-ms 0
run sustained-c1 sustained --concurrency 1 --duration-s 10 --compare-health
run sustained-c64 sustained --concurrency 64 --duration-s 10 --compare-health
run sustained-c256 sustained --concurrency 256 --duration-s 10 --compare-health
run multi-product multi-product --products 4 --stock 100 --buyers 1000
