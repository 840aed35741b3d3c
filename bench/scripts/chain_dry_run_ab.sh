#!/usr/bin/env bash
# Alternates two builds of `backup_bench` on dry runs of a chain against the database it was
# read from: a full backup, the 1% random change of `backup_bench run`, an incremental, then
# a late change to 0.1% of `journal_entries` that no backup holds (all made by NEW). Per
# round and scope (everything, `tenant-07`, `tenant-00`) a dry run of the chain with each
# build. Then per scope a restore of the chain (NEW), for the ratio, and a dry run with each
# build against the database just restored. Each is timed by /usr/bin/time. The restores
# write into the database: it ends as the chain left it.
#
#   bench/scripts/chain_dry_run_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [DATABASE_URL]
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
src=${4:-postgres://postgres@127.0.0.1:54329/rbac_bench_erp}
source "$(dirname "$0")/common.sh"
if [[ $src == sqlite://* ]]; then late_pick="abs(random()) % 1000 = 0"; else late_pick="random() < 0.001"; fi
late="UPDATE journal_entries SET credit_cents = credit_cents + 1 WHERE $late_pick;"
echo "full:        $(timed "$new" ours create --kind full --scope all "${c[@]}" --id-file "$work/full.id")"
echo "change 1%:   $(timed "${apply[@]}" "$change")"
echo "incremental: $(timed "$new" ours create --kind incremental --scope all "${c[@]}" --id-file "$work/inc.id")"
echo "late 0.1%:   $(timed "${apply[@]}" "$late")"
chain=("${c[@]}" --id-file "$work/inc.id")
both() { # label, then the arguments of `ours restore` after the chain's
    local label=$1 order=$2
    shift 2
    for which in $order; do
        bin=$old
        [[ $which == new ]] && bin=$new
        echo "$label, $which, dry run: $(timed "$bin" ours restore "${chain[@]}" "$@" --dry-run)"
    done
}
for round in $(seq "$rounds"); do
    # Alternate which build goes first.
    if (( round % 2 )); then order="old new"; else order="new old"; fi
    both "round $round all" "$order"
    for tenant in tenant-07 tenant-00; do
        both "round $round $tenant" "$order" --tenant "$tenant"
    done
done
echo "restore all: $(timed "$new" ours restore "${chain[@]}")"
both "restored all" "old new"
for tenant in tenant-07 tenant-00; do
    echo "restore $tenant: $(timed "$new" ours restore "${chain[@]}" --tenant "$tenant")"
    both "restored $tenant" "old new" --tenant "$tenant"
done
