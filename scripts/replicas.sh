#!/usr/bin/env bash
# N API replicas on this machine behind nginx, against one redis-server, and a loadgen
# scenario fired at nginx — by default the Black Friday sale (100 units, 1,000 buyers,
# 1 s). One command, everything on loopback, everything stopped at the end:
#
#   scripts/replicas.sh 4                                  # Black Friday over 4 replicas
#   scripts/replicas.sh 2 -- sustained --concurrency 64    # any loadgen scenario and flags
#
# Needs redis-server and nginx (`apt-get install -y redis-server nginx`). Builds the
# release binaries first unless SKIP_BUILD=1. Output (each replica's log, nginx's, the
# loadgen report as text and JSON) goes to OUT (default target/replicas/<N>).
# Ports: LB_PORT (nginx, default 18400), LB_PORT+1.. (replicas), REDIS_PORT (16500).
set -euo pipefail
REPLICAS=${1:-2}
shift || true
if [ "${1:-}" = "--" ]; then shift; fi
SCENARIO=("$@")
if [ ${#SCENARIO[@]} -eq 0 ]; then SCENARIO=(black-friday); fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/target/replicas/$REPLICAS}
LB_PORT=${LB_PORT:-18400}
REDIS_PORT=${REDIS_PORT:-16500}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-replicas-admin-password}
JWT_SECRET=replicas-jwt-secret-0123456789-0123456789-0123456789

for tool in redis-server nginx curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y redis-server nginx curl)" >&2; exit 2; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release --locked -p inventory-api -p inventory-loadgen)
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Polls a command until it succeeds, for at most 20 s.
wait_for() {
  for _ in $(seq 1 400); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "timed out waiting for: $*" >&2
  return 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync everysec --dir "$work" >"$OUT/redis.log" 2>&1 &
pids+=($!)
wait_for redis-cli -p "$REDIS_PORT" ping

upstreams=""
for i in $(seq 1 "$REPLICAS"); do
  port=$((LB_PORT + i))
  # Every replica shares the JWT secret (a token from one is valid at all) and trusts
  # nginx's X-Forwarded-For (the login throttle then counts clients, not nginx).
  env -i PATH="$PATH" BIND_ADDR=127.0.0.1:$port REDIS_URL=redis://127.0.0.1:$REDIS_PORT/ \
    JWT_SECRET=$JWT_SECRET ADMIN_PASSWORD="$ADMIN_PASSWORD" BCRYPT_COST=4 \
    LOG_FORMAT=json RUST_LOG=warn TRUSTED_PROXIES=127.0.0.1 REGISTRATIONS_PER_ADDRESS=100000 \
    READY_DRAIN_MS=0 "$ROOT/target/release/inventory-api" >"$OUT/api-$i.log" 2>&1 &
  pids+=($!)
  upstreams+="        server 127.0.0.1:$port max_fails=3 fail_timeout=10s;"$'\n'
done
for i in $(seq 1 "$REPLICAS"); do
  wait_for curl -sf "http://127.0.0.1:$((LB_PORT + i))/ready"
done

# The same proxy settings as docker/nginx.conf (round robin, keep-alive to the
# replicas, never re-send a POST), on loopback ports and a private prefix.
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    upstream inventory_api {
$upstreams        keepalive 256;
    }
    server {
        listen 127.0.0.1:$LB_PORT;
        client_max_body_size 4m;
        location / {
            proxy_pass http://inventory_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            proxy_next_upstream error timeout;
        }
    }
}
EOF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' >"$OUT/nginx.log" 2>&1 &
pids+=($!)
wait_for curl -sf "http://127.0.0.1:$LB_PORT/health"

echo "== $REPLICAS replica(s) behind nginx on 127.0.0.1:$LB_PORT; inventory-loadgen ${SCENARIO[*]}" |
  tee "$OUT/command.txt"
status=0
timeout 900 "$ROOT/target/release/inventory-loadgen" "${SCENARIO[@]}" \
  --base-url "http://127.0.0.1:$LB_PORT" --token-cache "$OUT/tokens.json" --quiet \
  --json "$OUT/report.json" | tee "$OUT/report.txt" || status=$?
exit "$status"
