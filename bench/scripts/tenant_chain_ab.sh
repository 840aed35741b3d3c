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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/cfg.toml" <<TOML
database = "$src"
storage = "$work/store"
tenant_table = "tenants"
tenant_column = "tenant_id"
tenant_key = "tenant_id"
secret_columns = ["users.password_hash"]
TOML
# One row in a hundred, at random (SQLite's random() is a 64-bit integer).
if [[ $src == sqlite://* ]]; then
    pick="abs(random()) % 100 = 0"
    apply=(sqlite3 "${src#sqlite://}")
else
    pick="random() < 0.01"
    apply=(psql "$src" -X -q -v ON_ERROR_STOP=1 -c)
fi
change="BEGIN;
UPDATE journal_entries SET debit_cents = debit_cents + 1 WHERE $pick;
UPDATE invoices SET status = 'paid' WHERE $pick;
UPDATE payments SET amount_cents = amount_cents + 1 WHERE $pick;
UPDATE customers SET phone = NULL WHERE $pick;
UPDATE users SET role = 'viewer' WHERE $pick;
UPDATE accounts SET balance_cents = balance_cents + 1 WHERE $pick;
COMMIT;"
timed() { /usr/bin/time -f "%e s, peak %M KiB" "$@" 2>&1 >/dev/null | tail -n 1; }
c=(--config "$work/cfg.toml")
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
