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

# shellcheck source=server.sh
. "$(dirname "$0")/server.sh"

stop_or_reuse "${1:-start}"

if ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto (S3-compatible test server) with pip" >&2
    python3 -m pip install --quiet 'moto[server]' >&2
    hash -r
fi

start_server moto_server -H 127.0.0.1 -p "$PORT"
