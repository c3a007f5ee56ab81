#!/usr/bin/env bash
# Runs every scenario against several server configurations, the configurations one right
# after another for each scenario, so that each comparison is measured in the same few
# minutes on the same machine (ratios to a baseline of the same run). Writes each run's
# table (.txt), JSON report (.json), Redis command counts (.commandstats) and a summary
# (summary.md, via compare_summary.py) to OUTDIR.
#
#   cargo build --release -p inventory-api -p inventory-loadgen
#   bins/loadgen/scripts/compare.sh target/bench/compare
#
# Configurations (each its own release server on its own port, each Redis-mode server on
# its own fresh redis-server with AOF and fsync every second, as in docker-compose.yml):
#   redis         this build, Redis mode, default PURCHASE_BATCH_MAX
#   redis-batch1  this build, Redis mode, PURCHASE_BATCH_MAX=1 (no group commit)
#   memory        this build, in-memory mode
#   baseline      BASELINE_API=path/to/an/older/inventory-api, Redis mode (optional)
#   redlock       this build, LOCK_MODE=redlock over 5 local lock nodes (AOF, appendfsync
#                 always, REDLOCK_FSYNC_ALWAYS=true, as in docker-compose.redlock.yml);
#                 the data node as for `redis`
#   redlock-nofsync  the same with lock nodes without persistence (not declared durable:
#                 the script waits for /ready while their start-up quarantine passes)
#   redlock-2down    `redlock` with 2 of the 5 lock nodes killed before the server starts
# SCENARIOS (space-separated names, default all) selects scenarios; CONFIGS selects
# configurations (the redlock ones are not in the default list). Every run is bounded
# (10 s sustained runs, 3 s /health ceilings). Each configuration's GET /ready answer is
# kept as ready-<config>.json (taken before the scenarios; for redlock, the lock nodes).
#
#   CONFIGS="redis redlock redlock-2down" SCENARIOS="bf-w1000 bf-w0 sus-c64" \
#     bins/loadgen/scripts/compare.sh target/bench/redlock
set -euo pipefail
OUT=${1:?usage: compare.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
API=$ROOT/target/release/inventory-api
LOADGEN=$ROOT/target/release/inventory-loadgen
export ADMIN_PASSWORD=bench-admin-password
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

declare -A SCENARIO=(
  [bf-w1000]="black-friday --window-ms 1000"
  [bf-w0]="black-friday --window-ms 0"
  [sus-c1]="sustained --concurrency 1 --duration-s 10 --compare-health"
  [sus-c64]="sustained --concurrency 64 --duration-s 10 --compare-health"
  [sus-c256]="sustained --concurrency 256 --duration-s 10 --compare-health"
  [multi-8]="multi-product --products 8 --stock 1000 --buyers 4000 --window-ms 0"
  [sus-64p]="sustained --concurrency 64 --products 64 --buyers 64 --duration-s 10 --compare-health"
)
ORDER=${SCENARIOS:-"bf-w1000 bf-w0 sus-c1 sus-c64 sus-c256 multi-8 sus-64p"}
CONFIG_LIST=${CONFIGS:-"redis redis-batch1 memory${BASELINE_API:+ baseline}"}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_for() {
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for: $*" >&2
  return 1
}

# Starts 5 lock nodes for $config on ports base..base+4 with redis-server arguments "$@",
# kills the first $down of them again, and sets lock_env to the server's Redlock settings.
start_lock_nodes() {
  local config=$1 base=$2 down=$3 durable=$4
  shift 4
  local urls=() node_pids=()
  for i in 0 1 2 3 4; do
    local node_port=$((base + i)) node_dir
    node_dir=$(mktemp -d)
    redis-server --port "$node_port" --bind 127.0.0.1 --save "" --dir "$node_dir" "$@" \
      >"$OUT/lock-$config-$i.log" 2>&1 &
    pids+=($!)
    node_pids+=($!)
    wait_for redis-cli -p "$node_port" ping
    urls+=("redis://127.0.0.1:$node_port/")
  done
  for ((i = 0; i < down; i++)); do
    kill -9 "${node_pids[$i]}"
  done
  lock_env=(LOCK_MODE=redlock "REDLOCK_NODES=$(IFS=,; echo "${urls[*]}")" \
    REDLOCK_FSYNC_ALWAYS=$durable)
}

declare -A API_PORT REDIS_PORT
port=18200
for config in $CONFIG_LIST; do
  port=$((port + 1))
  API_PORT[$config]=$port
  binary=$API
  env_extra=()
  lock_env=()
  case $config in
    redis) ;;
    redis-batch1) env_extra+=(PURCHASE_BATCH_MAX=1) ;;
    baseline) binary=${BASELINE_API:?BASELINE_API must name the baseline binary} ;;
    memory) ;;
    redlock) start_lock_nodes "$config" $((port * 10 - 170000)) 0 true \
      --appendonly yes --appendfsync always ;;
    redlock-nofsync) start_lock_nodes "$config" $((port * 10 - 170000)) 0 false \
      --appendonly no ;;
    redlock-2down) start_lock_nodes "$config" $((port * 10 - 170000)) 2 true \
      --appendonly yes --appendfsync always ;;
    *) echo "unknown configuration $config" >&2; exit 2 ;;
  esac
  env_extra+=("${lock_env[@]}")
  if [ "$config" != memory ]; then
    REDIS_PORT[$config]=$((port + 1000))
    dir=$(mktemp -d)
    redis-server --port "${REDIS_PORT[$config]}" --bind 127.0.0.1 --save "" --appendonly yes \
      --appendfsync everysec --dir "$dir" >"$OUT/redis-$config.log" 2>&1 &
    pids+=($!)
    wait_for redis-cli -p "${REDIS_PORT[$config]}" ping
    env_extra+=(REDIS_URL=redis://127.0.0.1:${REDIS_PORT[$config]}/)
  fi
  env -i PATH="$PATH" BIND_ADDR=127.0.0.1:$port BCRYPT_COST=4 LOG_FORMAT=json RUST_LOG=warn \
    REGISTRATIONS_PER_ADDRESS=100000 \
    ADMIN_PASSWORD=$ADMIN_PASSWORD JWT_SECRET=bench-jwt-secret-0123456789-0123456789-0123456789 \
    "${env_extra[@]}" "$binary" >"$OUT/server-$config.log" 2>&1 &
  pids+=($!)
  wait_for curl -sf "http://127.0.0.1:$port/health"
  # Ready: the data node answers and (redlock) a quorum of lock nodes counts. Volatile
  # lock nodes sit out LOCK_TTL_MS (5 s) after their start first.
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/ready" >"$OUT/ready-$config.json"; then break; fi
    sleep 0.05
  done
  curl -sf "http://127.0.0.1:$port/ready" >"$OUT/ready-$config.json"
  # Registers the buyers once per configuration (bcrypt); not a measurement.
  timeout 900 "$LOADGEN" multi-product --products 1 --stock 1 --buyers 4000 --window-ms 0 \
    --base-url "http://127.0.0.1:$port" --token-cache "$OUT/tokens-$config.json" --quiet \
    >"$OUT/setup-$config.txt" 2>&1
done

{
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty')"
  echo "baseline: ${BASELINE_API:-none}"
  echo "date: $(date -u +%FT%TZ)"
} >"$OUT/commands.txt"

for name in $ORDER; do
  for config in $CONFIG_LIST; do
    args=${SCENARIO[$name]}
    echo "== $name/$config: inventory-loadgen $args   (load $(cut -d' ' -f1-3 /proc/loadavg))" |
      tee -a "$OUT/commands.txt"
    redis_port=${REDIS_PORT[$config]:-}
    if [ -n "$redis_port" ]; then redis-cli -p "$redis_port" config resetstat >/dev/null; fi
    status=0
    # shellcheck disable=SC2086
    timeout 300 "$LOADGEN" $args --base-url "http://127.0.0.1:${API_PORT[$config]}" \
      --token-cache "$OUT/tokens-$config.json" --quiet --json "$OUT/$name.$config.json" \
      >"$OUT/$name.$config.txt" 2>&1 || status=$?
    if [ -n "$redis_port" ]; then
      redis-cli -p "$redis_port" info commandstats >"$OUT/$name.$config.commandstats"
    fi
    if [ "$status" -ne 0 ]; then echo "   exit status $status" | tee -a "$OUT/commands.txt"; fi
  done
done

python3 "$(dirname "$0")/compare_summary.py" "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
