#!/usr/bin/env bash
# Alternates two builds of `backup_bench` on tenant restores of a chain, on the generated
# PostgreSQL (default) or SQLite (a `sqlite://PATH` URL) database: a full backup, the 1%
# random change of `backup_bench run`, an incremental (all made by NEW), then per round and
# tenant a restore of the full backup alone (NEW) and a dry run and a restore of the chain
# with each build, each timed by /usr/bin/time. The restores write into the database: it
# ends as the backups left it.
#
#   bench/scripts/tenant_chain_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [DATABASE_URL]
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
src=${4:-postgres://postgres@127.0.0.1:54329/rbac_bench_erp}
source "$(dirname "$0")/common.sh"
echo "full:        $(timed "$new" ours create --kind full --scope all "${c[@]}" --id-file "$work/full.id")"
echo "change 1%:   $(timed "${apply[@]}" "$change")"
echo "incremental: $(timed "$new" ours create --kind incremental --scope all "${c[@]}" --id-file "$work/inc.id")"
for round in $(seq "$rounds"); do
    # Alternate which build goes first.
    if (( round % 2 )); then order="old new"; else order="new old"; fi
    for tenant in tenant-07 tenant-00; do
        echo "round $round $tenant full backup only, restore: $(timed "$new" ours restore "${c[@]}" --id-file "$work/full.id" --tenant "$tenant")"
        for which in $order; do
            bin=$old
            [[ $which == new ]] && bin=$new
            echo "round $round $tenant chain, $which, dry run: $(timed "$bin" ours restore "${c[@]}" --id-file "$work/inc.id" --tenant "$tenant" --dry-run)"
            echo "round $round $tenant chain, $which, restore: $(timed "$bin" ours restore "${c[@]}" --id-file "$work/inc.id" --tenant "$tenant")"
        done
    done
done
