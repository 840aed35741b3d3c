# Shared by the scripts that start a throwaway test server (s3.sh, azure.sh); sourced, not run.
# The caller defines `answers` (true when the server is up) and sets STATE (the server's
# state directory, holding `pid` and `server.log`) and ENDPOINT.

# Stops the server started from $STATE, waiting up to 5 s for it to exit.
stop_server() {
    if [ -f "$STATE/pid" ]; then
        local pid
        pid=$(cat "$STATE/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$STATE/pid"
    fi
}

# With `stop`: stops the server and exits. Otherwise, if a server already answers on
# $ENDPOINT, prints it and exits; else returns, so that the caller installs and starts one.
stop_or_reuse() {
    if [ "$1" = stop ]; then
        stop_server
        exit 0
    fi
    if answers; then
        echo "$ENDPOINT"
        exit 0
    fi
}

# Starts the command given as arguments in the background, detached from the caller (setsid:
# the server outlives the script and is not killed with the caller's process group), logging
# to $STATE/server.log; then waits up to 30 s for `answers` and prints $ENDPOINT. Fails, with
# the log, if the server exits or does not answer.
start_server() {
    local name=$1
    mkdir -p "$STATE"
    setsid "$@" >"$STATE/server.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    for _ in $(seq 1 150); do
        if answers; then
            echo "$ENDPOINT"
            return 0
        fi
        if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
            echo "$name exited; its log ($STATE/server.log):" >&2
            cat "$STATE/server.log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "$name did not answer on $ENDPOINT within 30 s; log: $STATE/server.log" >&2
    return 1
}
