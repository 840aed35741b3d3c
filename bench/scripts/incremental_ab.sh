#!/usr/bin/env bash
# Alternates two builds of `backup_bench` on the generated PostgreSQL database: for each,
# a full backup, the 1% random change of `backup_bench run` in one transaction, then an
# incremental, each timed by /usr/bin/time. Compares incremental read paths (or any other
# change) on the same data, one build after the other.
#
#   bench/scripts/incremental_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [DATABASE_URL]
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
[modules]
finance = ["accounts", "journal_entries", "invoices", "payments"]
crm = ["customers"]
TOML
change="BEGIN;
UPDATE journal_entries SET debit_cents = debit_cents + 1 WHERE random() < 0.01;
UPDATE invoices SET status = 'paid' WHERE random() < 0.01;
UPDATE payments SET amount_cents = amount_cents + 1 WHERE random() < 0.01;
UPDATE customers SET phone = NULL WHERE random() < 0.01;
UPDATE users SET role = 'viewer' WHERE random() < 0.01;
UPDATE accounts SET balance_cents = balance_cents + 1 WHERE random() < 0.01;
COMMIT;"
timed() { /usr/bin/time -f "%e s, peak %M KiB" "$@" 2>&1 >/dev/null | tail -n 1; }
for round in $(seq "$rounds"); do
    # Alternate which build goes first.
    if (( round % 2 )); then order="old new"; else order="new old"; fi
    for which in $order; do
        bin=$old
        [[ $which == new ]] && bin=$new
        echo "== $which, round $round"
        echo "full:        $(timed "$bin" ours create --kind full --scope all --config "$work/cfg.toml")"
        echo "change 1%:   $(timed psql "$src" -X -q -v ON_ERROR_STOP=1 -c "$change")"
        echo "incremental: $(timed "$bin" ours create --kind incremental --scope all --config "$work/cfg.toml")"
    done
done
