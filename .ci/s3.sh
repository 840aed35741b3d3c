#!/usr/bin/env bash
# Starts a throwaway S3-compatible server (python moto's `moto_server`) on loopback for the
# backup storage tests and prints its endpoint. Installs moto with pip if it is missing.
# State lives in memory only: every start is an empty S3.
#
#   export RBAC_TEST_S3_ENDPOINT=$(bash .ci/s3.sh)
#   export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
#
# Stop it with: bash .ci/s3.sh stop
set -euo pipefail
PORT="${RBAC_S3_PORT:-54330}"
STATE="${RBAC_S3_STATE:-/tmp/rbac-s3-$PORT}"
ENDPOINT="http://127.0.0.1:$PORT"

answers() {
    # Any HTTP answer (moto says 200 to a bucket listing) means the server is up.
    curl -s -o /dev/null --max-time 2 "$ENDPOINT/" 2>/dev/null
}

if [ "${1:-start}" = stop ]; then
    if [ -f "$STATE/pid" ]; then
        pid=$(cat "$STATE/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$STATE/pid"
    fi
    exit 0
fi

if answers; then
    echo "$ENDPOINT"
    exit 0
fi

if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto (S3-compatible test server) with pip" >&2
    python3 -m pip install --quiet 'moto[server]' >&2
    hash -r
fi

mkdir -p "$STATE"
# setsid: the server outlives this script and is not killed with the caller's process group.
setsid moto_server -H 127.0.0.1 -p "$PORT" >"$STATE/server.log" 2>&1 </dev/null &
echo $! >"$STATE/pid"

for _ in $(seq 1 150); do
    if answers; then
        echo "$ENDPOINT"
        exit 0
    fi
    if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        echo "moto_server exited; its log ($STATE/server.log):" >&2
        cat "$STATE/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "moto_server did not answer on $ENDPOINT within 30 s; log: $STATE/server.log" >&2
exit 1
