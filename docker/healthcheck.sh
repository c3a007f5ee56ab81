#!/bin/bash
# Container health check for inventory-api without curl/wget in the image: an HTTP/1.1
# GET /health over bash's /dev/tcp, healthy only on a 200 status line. /health is the
# liveness endpoint (it never checks Redis), so a Redis outage does not get the app
# container restarted; readiness is /ready.
set -euo pipefail

bind_addr="${BIND_ADDR:-0.0.0.0:8000}"
port="${bind_addr##*:}"

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status_line <&3
[[ "${status_line}" == "HTTP/1."?" 200"* ]]
