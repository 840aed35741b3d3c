#!/usr/bin/env bash
# Alternates two builds of `backup_bench` on the generated database: for each, a full
# backup, the 1% random change of `backup_bench run` in one transaction, then an incremental,
# each timed by /usr/bin/time. Compares incremental read paths (or any other change) on the
# same data, one build after the other.
#
#   bench/scripts/incremental_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [DATABASE_URL]
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
src=${4:-postgres://postgres@127.0.0.1:54329/rbac_bench_erp}
source "$(dirname "$0")/common.sh"
for round in $(seq "$rounds"); do
    # Alternate which build goes first.
    if (( round % 2 )); then order="old new"; else order="new old"; fi
    for which in $order; do
        bin=$old
        [[ $which == new ]] && bin=$new
        echo "== $which, round $round"
        echo "full:        $(timed "$bin" ours create --kind full --scope all "${c[@]}")"
        echo "change 1%:   $(timed "${apply[@]}" "$change")"
        echo "incremental: $(timed "$bin" ours create --kind incremental --scope all "${c[@]}")"
    done
done
