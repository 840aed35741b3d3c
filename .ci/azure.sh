#!/usr/bin/env bash
# Starts a throwaway Azure Blob Storage emulator (Microsoft's Azurite, from npm) on loopback for
# the backup storage tests and prints its blob endpoint (path style, account in the path).
# Installs Node.js from Debian packages and Azurite with npm if they are missing. State lives
# in memory only: every start is an empty storage account.
#
#   export RBAC_TEST_AZURE_ENDPOINT=$(bash .ci/azure.sh)
#
# The account is Azurite's well-known development account (`devstoreaccount1`, whose key is
# public and in the tests). Stop it with: bash .ci/azure.sh stop
set -euo pipefail
PORT="${RBAC_AZURE_PORT:-54331}"
STATE="${RBAC_AZURE_STATE:-/tmp/rbac-azure-$PORT}"
PREFIX="${RBAC_AZURITE_PREFIX:-/opt/rbac-azurite}"
ENDPOINT="http://127.0.0.1:$PORT/devstoreaccount1"

answers() {
    # Any HTTP answer means the server is up (an unsigned request gets 403 or 400).
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ENDPOINT?comp=list" 2>/dev/null || true)
    [ -n "$code" ] && [ "$code" != 000 ]
}

# shellcheck source=server.sh
. "$(dirname "$0")/server.sh"

stop_or_reuse "${1:-start}"

if ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js and npm from Debian packages (for Azurite)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
    hash -r
fi
if [ ! -x "$PREFIX/node_modules/.bin/azurite-blob" ]; then
    echo "installing Azurite (Azure Storage emulator) with npm into $PREFIX" >&2
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error azurite@3 >&2
fi

# --skipApiVersionCheck: the Rust client may speak a newer API version than this Azurite knows.
start_server "$PREFIX/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$PORT" \
    --inMemoryPersistence --skipApiVersionCheck --disableTelemetry
