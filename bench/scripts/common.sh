# Shared by the A/B scripts beside it; source it after setting `src` (the database URL:
# PostgreSQL, or SQLite as `sqlite://PATH`). It makes a work directory (removed on exit)
# with the backup configuration `$work/cfg.toml`, and defines:
#   c       the `--config` arguments for `backup_bench ours`;
#   change  the 1% random change of `backup_bench run`, in one transaction;
#   apply   the command that runs SQL against the database (`"${apply[@]}" "$change"`);
#   timed   runs a command, prints "<seconds> s, peak <KiB> KiB" from /usr/bin/time.
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
c=(--config "$work/cfg.toml")
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
