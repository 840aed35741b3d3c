//! Backup benchmark: a generated ERP database of at least 1 GB, and the peers our backup is
//! measured against, timed (wall clock) with their peak memory in the same run.
//!
//! ```sh
//! # 1. Generate once (deterministic; about 1.1 GB at --scale 1). Reused by later runs.
//! cargo run --release --manifest-path bench/Cargo.toml --bin backup_bench -- \
//!     generate --sqlite bench/target/erp.db --pg postgres://postgres@127.0.0.1:54329/postgres
//! # 2. Time the peers (and, once wired, our backup/restore) on it.
//! cargo run --release --manifest-path bench/Cargo.toml --bin backup_bench -- \
//!     run --sqlite bench/target/erp.db --pg postgres://postgres@127.0.0.1:54329/postgres \
//!     --out bench/target/backup-bench --json bench/target/backup-bench.json
//! ```
//!
//! Peers, each run as a child process under `/usr/bin/time -f %e/%M` (wall seconds, and the peak
//! RSS of the largest process of the pipeline):
//! `sqlite3 DB ".backup FILE"`, `sqlite3 DB .dump | zstd -3`, `pg_dump -Fc`, `pg_dump -Fp |
//! zstd -3`, `pg_restore` (of the `-Fc` archive into a fresh database), and `zstd -dc | psql`
//! (restore of the plain dump). Caches are warm for every contender alike: each source is read
//! once before timing starts.
//!
//! Our own backup and restore go in [`ours`]: the hook is called with the same databases in the
//! same run, so the table compares like with like.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error>;

// ---------------------------------------------------------------------------------------------
// The data: a deterministic ERP shape
// ---------------------------------------------------------------------------------------------

/// A fast, deterministic generator (splitmix64): the same seed gives the same database.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "office",
    "supplies",
    "consulting",
    "services",
    "travel",
    "hardware",
    "software",
    "license",
    "renewal",
    "quarterly",
    "monthly",
    "freight",
    "maintenance",
    "rent",
    "utilities",
    "payroll",
    "bonus",
    "refund",
    "adjustment",
    "accrual",
    "deferred",
    "revenue",
    "inventory",
    "shipping",
    "customs",
    "insurance",
    "marketing",
    "catering",
    "training",
    "subscription",
    "hosting",
];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira",
    "Luca", "Mila", "Noah", "Olga", "Paul", "Rosa", "Sven", "Tara", "Umar", "Vera", "Yusuf",
];
const LAST: &[&str] = &[
    "Schmidt", "Rossi", "Dubois", "Novak", "Garcia", "Jansen", "Kowalski", "Larsen", "Moreau",
    "Silva", "Weber", "Yilmaz", "Fischer", "Costa", "Berg", "Horvat",
];
const COUNTRIES: &[&str] = &[
    "DE", "FR", "IT", "ES", "NL", "PL", "SE", "AT", "CH", "PT", "US",
];

/// Tenants and their share of every tenant table's rows: skewed, as in real SaaS.
const TENANT_SHARES: &[f64] = &[0.40, 0.20, 0.12, 0.10, 0.08, 0.05, 0.03, 0.02];

/// A value of a generated row.
enum Val {
    Int(i64),
    Text(String),
    Null,
}

/// A table: name, columns with SQLite and PostgreSQL types, rows at scale 1.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, &'static str, &'static str)],
    rows_at_scale_1: u64,
}

const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL UNIQUE", "TEXT NOT NULL UNIQUE"),
            ("name", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("plan", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("created_at", "TEXT NOT NULL", "TEXT NOT NULL"),
        ],
        rows_at_scale_1: TENANT_SHARES.len() as u64,
    },
    Table {
        name: "users",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("email", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("name", "TEXT NOT NULL", "TEXT NOT NULL"),
            // Secret: never written to a backup by our tool, so nullable: a restore into an
            // empty database leaves it NULL (users then reset their password).
            ("password_hash", "TEXT", "TEXT"),
            ("role", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("created_at", "TEXT NOT NULL", "TEXT NOT NULL"),
        ],
        rows_at_scale_1: 100_000,
    },
    Table {
        name: "customers",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("name", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("email", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("phone", "TEXT", "TEXT"),
            ("address", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("country", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("created_at", "TEXT NOT NULL", "TEXT NOT NULL"),
        ],
        rows_at_scale_1: 300_000,
    },
    Table {
        name: "accounts",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("code", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("name", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("kind", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("balance_cents", "INTEGER NOT NULL", "BIGINT NOT NULL"),
        ],
        rows_at_scale_1: 20_000,
    },
    Table {
        name: "journal_entries",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("account_id", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("entry_date", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("description", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("debit_cents", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("credit_cents", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("reference", "TEXT", "TEXT"),
        ],
        rows_at_scale_1: 6_000_000,
    },
    Table {
        name: "invoices",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("customer_id", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("number", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("issue_date", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("due_date", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("total_cents", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("currency", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("status", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("notes", "TEXT", "TEXT"),
        ],
        rows_at_scale_1: 1_500_000,
    },
    Table {
        name: "payments",
        columns: &[
            ("id", "INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"),
            ("tenant_id", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("invoice_id", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("paid_at", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("amount_cents", "INTEGER NOT NULL", "BIGINT NOT NULL"),
            ("method", "TEXT NOT NULL", "TEXT NOT NULL"),
            ("reference", "TEXT NOT NULL", "TEXT NOT NULL"),
        ],
        rows_at_scale_1: 1_200_000,
    },
];

fn tenant_name(i: usize) -> String {
    format!("tenant-{i:02}")
}

/// The tenant of row `i` of `n`: mostly contiguous blocks sized by [`TENANT_SHARES`], with a
/// tenth of the rows scattered over all tenants, so tenant rows are neither perfectly clustered
/// nor uniform.
fn tenant_of(i: u64, n: u64, rng: &mut Rng) -> usize {
    // Mix: 90% of rows follow the skewed blocks, 10% land anywhere (later sign-ups, migrations).
    if rng.below(10) == 0 {
        return rng.below(TENANT_SHARES.len() as u64) as usize;
    }
    let x = i as f64 / n.max(1) as f64;
    let mut acc = 0.0;
    for (t, share) in TENANT_SHARES.iter().enumerate() {
        acc += share;
        if x < acc {
            return t;
        }
    }
    TENANT_SHARES.len() - 1
}

fn date(rng: &mut Rng) -> String {
    let day = rng.below(365 * 4);
    let (y, d) = (2022 + day / 365, day % 365);
    format!("{y}-{:02}-{:02}", d / 31 % 12 + 1, d % 28 + 1)
}

fn words(rng: &mut Rng, n: u64) -> String {
    let mut s = String::with_capacity(n as usize * 9);
    for k in 0..n {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s
}

/// Row `i` (0-based) of `table`, for a table of `n` rows.
fn row(table: &str, i: u64, n: u64, rng: &mut Rng, out: &mut Vec<Val>) {
    out.clear();
    let id = i as i64 + 1;
    out.push(Val::Int(id));
    if table == "tenants" {
        let t = i as usize;
        out.push(Val::Text(tenant_name(t)));
        out.push(Val::Text(format!(
            "{} {} GmbH",
            rng.pick(LAST),
            rng.pick(WORDS)
        )));
        out.push(Val::Text(
            rng.pick(&["free", "team", "business", "enterprise"]).into(),
        ));
        out.push(Val::Text(date(rng)));
        return;
    }
    let tenant = tenant_of(i, n, rng);
    out.push(Val::Text(tenant_name(tenant)));
    match table {
        "users" => {
            let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
            out.push(Val::Text(format!(
                "{}.{}{id}@example.com",
                f.to_lowercase(),
                l.to_lowercase()
            )));
            out.push(Val::Text(format!("{f} {l}")));
            let mut hash = String::from("$2b$12$");
            for _ in 0..53 {
                let c = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [rng.below(64) as usize];
                hash.push(char::from(c));
            }
            out.push(Val::Text(hash));
            out.push(Val::Text(
                rng.pick(&["viewer", "accountant", "manager", "admin"])
                    .into(),
            ));
            out.push(Val::Text(date(rng)));
        }
        "customers" => {
            out.push(Val::Text(format!(
                "{} {} {}",
                rng.pick(LAST),
                rng.pick(WORDS),
                rng.pick(&["AG", "GmbH", "SARL", "Ltd", "BV"])
            )));
            out.push(Val::Text(format!("billing{id}@customer.example")));
            if rng.below(5) == 0 {
                out.push(Val::Null);
            } else {
                out.push(Val::Text(format!(
                    "+49 {} {}",
                    100 + rng.below(900),
                    100_000 + rng.below(900_000)
                )));
            }
            out.push(Val::Text(format!(
                "{} Street {}, {} City",
                rng.pick(LAST),
                1 + rng.below(200),
                rng.pick(WORDS)
            )));
            out.push(Val::Text(rng.pick(COUNTRIES).into()));
            out.push(Val::Text(date(rng)));
        }
        "accounts" => {
            out.push(Val::Text(format!("{}", 1000 + rng.below(9000))));
            out.push(Val::Text(words(rng, 2)));
            out.push(Val::Text(
                rng.pick(&["asset", "liability", "equity", "income", "expense"])
                    .into(),
            ));
            out.push(Val::Int(rng.below(100_000_000) as i64 - 50_000_000));
        }
        "journal_entries" => {
            out.push(Val::Int(1 + rng.below(20_000) as i64));
            out.push(Val::Text(date(rng)));
            let n_words = 3 + rng.below(6);
            out.push(Val::Text(words(rng, n_words)));
            let amount = rng.below(1_000_000) as i64;
            let debit = rng.below(2) == 0;
            out.push(Val::Int(if debit { amount } else { 0 }));
            out.push(Val::Int(if debit { 0 } else { amount }));
            if rng.below(3) == 0 {
                out.push(Val::Null);
            } else {
                out.push(Val::Text(format!(
                    "JE-{}-{:07}",
                    2022 + rng.below(4),
                    rng.below(10_000_000)
                )));
            }
        }
        "invoices" => {
            out.push(Val::Int(1 + rng.below(300_000) as i64));
            out.push(Val::Text(format!("INV-{:08}", id)));
            out.push(Val::Text(date(rng)));
            out.push(Val::Text(date(rng)));
            out.push(Val::Int(rng.below(5_000_000) as i64));
            out.push(Val::Text(
                rng.pick(&["EUR", "EUR", "EUR", "USD", "CHF"]).into(),
            ));
            out.push(Val::Text(
                rng.pick(&["draft", "sent", "paid", "overdue", "cancelled"])
                    .into(),
            ));
            if rng.below(2) == 0 {
                out.push(Val::Null);
            } else {
                let n_words = 4 + rng.below(8);
                out.push(Val::Text(words(rng, n_words)));
            }
        }
        "payments" => {
            out.push(Val::Int(1 + rng.below(1_500_000) as i64));
            out.push(Val::Text(date(rng)));
            out.push(Val::Int(rng.below(5_000_000) as i64));
            out.push(Val::Text(
                rng.pick(&["sepa", "card", "wire", "cash"]).into(),
            ));
            out.push(Val::Text(format!("PAY-{:016x}", rng.next())));
        }
        _ => {}
    }
}

fn rows_of(table: &Table, scale: f64) -> u64 {
    if table.name == "tenants" {
        table.rows_at_scale_1
    } else {
        ((table.rows_at_scale_1 as f64) * scale).round().max(1.0) as u64
    }
}

fn seed_of(table: &str) -> u64 {
    table.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------------
// Generating: SQLite through prepared statements, PostgreSQL through COPY FROM STDIN
// ---------------------------------------------------------------------------------------------

fn generate_sqlite(path: &Path, scale: f64) -> Result<(), BoxError> {
    if path.exists() {
        return Err(format!("{} exists; delete it to regenerate", path.display()).into());
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut conn = rusqlite::Connection::open(&partial)?;
    // Generation only: nothing to protect until the file is complete and renamed.
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )?;
    for table in TABLES {
        let started = Instant::now();
        let cols: Vec<String> = table
            .columns
            .iter()
            .map(|(c, t, _)| format!("{c} {t}"))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE {} ({})",
            table.name,
            cols.join(", ")
        ))?;
        let n = rows_of(table, scale);
        let placeholders = vec!["?"; table.columns.len()].join(", ");
        let names: Vec<&str> = table.columns.iter().map(|c| c.0).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            table.name,
            names.join(", ")
        );
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(&sql)?;
            let mut rng = Rng(seed_of(table.name));
            let mut vals = Vec::with_capacity(table.columns.len());
            for i in 0..n {
                row(table.name, i, n, &mut rng, &mut vals);
                for (k, v) in vals.iter().enumerate() {
                    match v {
                        Val::Int(x) => stmt.raw_bind_parameter(k + 1, x)?,
                        Val::Text(s) => stmt.raw_bind_parameter(k + 1, s.as_str())?,
                        Val::Null => stmt.raw_bind_parameter(k + 1, rusqlite::types::Null)?,
                    }
                }
                stmt.raw_execute()?;
            }
        }
        tx.commit()?;
        eprintln!(
            "sqlite: {:>16} {:>10} rows in {:.1?}",
            table.name,
            n,
            started.elapsed()
        );
    }
    conn.execute_batch("CREATE INDEX journal_entries_tenant ON journal_entries (tenant_id)")?;
    drop(conn);
    std::fs::rename(&partial, path)?;
    Ok(())
}

fn copy_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<String, BoxError> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("psql `{sql}`: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{db}")
}

const PG_DB: &str = "rbac_bench_erp";

fn generate_pg(admin_url: &str, scale: f64) -> Result<(), BoxError> {
    let exists = psql(
        admin_url,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{PG_DB}'"),
    )?;
    if exists == "1" {
        return Err(format!("database {PG_DB} exists; drop it to regenerate").into());
    }
    psql(admin_url, &format!("CREATE DATABASE {PG_DB}_partial"))?;
    let url = with_database(admin_url, &format!("{PG_DB}_partial"));
    for table in TABLES {
        let started = Instant::now();
        let cols: Vec<String> = table
            .columns
            .iter()
            .map(|(c, _, t)| format!("{c} {t}"))
            .collect();
        psql(
            &url,
            &format!("CREATE TABLE {} ({})", table.name, cols.join(", ")),
        )?;
        let names: Vec<&str> = table.columns.iter().map(|c| c.0).collect();
        let mut child = Command::new("psql")
            .args([url.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "COPY {} ({}) FROM STDIN",
                table.name,
                names.join(", ")
            ))
            .stdin(Stdio::piped())
            .spawn()?;
        let n = rows_of(table, scale);
        {
            let stdin = child.stdin.take().ok_or("no stdin for psql")?;
            let mut w = BufWriter::with_capacity(1 << 20, stdin);
            let mut rng = Rng(seed_of(table.name));
            let mut vals = Vec::with_capacity(table.columns.len());
            let mut line = String::with_capacity(512);
            for i in 0..n {
                row(table.name, i, n, &mut rng, &mut vals);
                line.clear();
                for (k, v) in vals.iter().enumerate() {
                    if k > 0 {
                        line.push('\t');
                    }
                    match v {
                        Val::Int(x) => {
                            let _ = write!(line, "{x}");
                        }
                        Val::Text(s) => copy_escape(s, &mut line),
                        Val::Null => line.push_str("\\N"),
                    }
                }
                line.push('\n');
                w.write_all(line.as_bytes())?;
            }
            w.flush()?;
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("COPY into {} failed", table.name).into());
        }
        eprintln!(
            "postgres: {:>16} {:>10} rows in {:.1?}",
            table.name,
            n,
            started.elapsed()
        );
    }
    psql(
        &url,
        "CREATE INDEX journal_entries_tenant ON journal_entries (tenant_id)",
    )?;
    // VACUUM cannot run in the transaction `psql -c` wraps several statements in.
    psql(&url, "VACUUM ANALYZE")?;
    psql(
        admin_url,
        &format!("ALTER DATABASE {PG_DB}_partial RENAME TO {PG_DB}"),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

/// One measured contender.
struct Measurement {
    name: String,
    command: String,
    seconds: f64,
    peak_rss_kib: u64,
    output_bytes: Option<u64>,
}

/// Runs `script` with bash under `/usr/bin/time`, returning wall time and the peak RSS of the
/// largest process it ran.
fn timed(name: &str, script: &str, output: Option<&Path>) -> Result<Measurement, BoxError> {
    let time_file = std::env::temp_dir().join(format!("backup-bench-time-{}", std::process::id()));
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&time_file)
        .args(["bash", "-o", "pipefail", "-c", script])
        .status()?;
    if !status.success() {
        return Err(format!("{name}: `{script}` failed with {status}").into());
    }
    let text = std::fs::read_to_string(&time_file)?;
    let _ = std::fs::remove_file(&time_file);
    let mut parts = text.split_whitespace();
    let seconds: f64 = parts.next().ok_or("no time")?.parse()?;
    let peak_rss_kib: u64 = parts.next().ok_or("no rss")?.parse()?;
    let output_bytes = output
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    eprintln!("{name}: {seconds:.2} s, peak {} MiB", peak_rss_kib / 1024);
    Ok(Measurement {
        name: name.into(),
        command: script.into(),
        seconds,
        peak_rss_kib,
        output_bytes,
    })
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn sqlite_peers(db: &Path, out: &Path) -> Result<Vec<Measurement>, BoxError> {
    let db_q = sh_quote(&db.display().to_string());
    // Warm the page cache for everyone.
    timed("warm-up (cat db)", &format!("cat {db_q} > /dev/null"), None)?;
    let backup = out.join("sqlite-backup.db");
    let dump = out.join("sqlite-dump.sql.zst");
    let _ = std::fs::remove_file(&backup);
    let b_q = sh_quote(&backup.display().to_string());
    let d_q = sh_quote(&dump.display().to_string());
    let mut m = vec![
        timed(
            "sqlite3 .backup",
            &format!("sqlite3 {db_q} \".backup {b_q}\""),
            Some(&backup),
        )?,
        timed(
            "sqlite3 .dump | zstd -3",
            &format!("sqlite3 {db_q} .dump | zstd -3 -q -f -o {d_q}"),
            Some(&dump),
        )?,
    ];
    let restored = out.join("sqlite-restored.db");
    let _ = std::fs::remove_file(&restored);
    let r_q = sh_quote(&restored.display().to_string());
    m.push(timed(
        "zstd -dc | sqlite3 (restore of the dump)",
        &format!("zstd -dc {d_q} | sqlite3 {r_q}"),
        Some(&restored),
    )?);
    Ok(m)
}

fn pg_peers(admin_url: &str, out: &Path) -> Result<Vec<Measurement>, BoxError> {
    let url = with_database(admin_url, PG_DB);
    let u_q = sh_quote(&url);
    let fc = out.join("pg.dump");
    let fp = out.join("pg.sql.zst");
    let (fc_q, fp_q) = (
        sh_quote(&fc.display().to_string()),
        sh_quote(&fp.display().to_string()),
    );
    timed(
        "warm-up (COUNT(*) of each table)",
        &format!(
            "psql {u_q} -X -q -c 'SELECT count(*) FROM journal_entries' -c 'SELECT count(*) FROM invoices' -c 'SELECT count(*) FROM payments' -c 'SELECT count(*) FROM customers' > /dev/null"
        ),
        None,
    )?;
    let mut m = vec![
        timed(
            "pg_dump -Fc",
            &format!("pg_dump -Fc -f {fc_q} {u_q}"),
            Some(&fc),
        )?,
        timed(
            "pg_dump -Fp | zstd -3",
            &format!("pg_dump -Fp {u_q} | zstd -3 -q -f -o {fp_q}"),
            Some(&fp),
        )?,
    ];
    for target in ["rbac_bench_restore_fc", "rbac_bench_restore_fp"] {
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {target}"))?;
        psql(admin_url, &format!("CREATE DATABASE {target}"))?;
    }
    let r1 = sh_quote(&with_database(admin_url, "rbac_bench_restore_fc"));
    let r2 = sh_quote(&with_database(admin_url, "rbac_bench_restore_fp"));
    m.push(timed(
        "pg_restore (of -Fc)",
        &format!("pg_restore --no-owner -d {r1} {fc_q}"),
        None,
    )?);
    m.push(timed(
        "zstd -dc | psql (restore of -Fp)",
        &format!("zstd -dc {fp_q} | psql {r2} -X -q -v ON_ERROR_STOP=1 > /dev/null"),
        None,
    )?);
    for target in ["rbac_bench_restore_fc", "rbac_bench_restore_fp"] {
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {target}"))?;
    }
    Ok(m)
}

/// Our own backup and restore (rbac-admin's `backup` library), timed in the same run as the
/// peers. Each operation runs in a child process of this binary (`backup_bench ours OP ...`)
/// under the same `/usr/bin/time` as the peers, so time and peak memory are measured alike.
mod ours {
    use super::{BoxError, Measurement, sh_quote, timed};
    use std::path::Path;

    /// The backup configuration for the generated ERP database.
    fn config(db: &Path, store: &Path) -> String {
        format!(
            "database = \"sqlite://{}\"\nstorage = \"{}\"\ntenant_table = \"tenants\"\n\
             tenant_column = \"tenant_id\"\ntenant_key = \"tenant_id\"\n\
             secret_columns = [\"users.password_hash\"]\n\
             [modules]\nfinance = [\"accounts\", \"journal_entries\", \"invoices\", \"payments\"]\n\
             crm = [\"customers\"]\n",
            db.display(),
            store.display()
        )
    }

    pub(super) fn sqlite(db: &Path, out: &Path) -> Result<Vec<Measurement>, BoxError> {
        let store = out.join("ours-store");
        let _ = std::fs::remove_dir_all(&store);
        let cfg = out.join("ours.toml");
        std::fs::write(&cfg, config(db, &store))?;
        let exe = std::env::current_exe()?;
        let run = |args: &str| {
            format!(
                "{} ours {args} --config {}",
                sh_quote(&exe.display().to_string()),
                sh_quote(&cfg.display().to_string())
            )
        };
        let id_file = out.join("ours-full.id").display().to_string();
        let mut m = vec![timed(
            "rbac backup full (zstd-3)",
            &run(&format!(
                "create --kind full --scope all --id-file {}",
                sh_quote(&id_file)
            )),
            None,
        )?];
        if let Some(x) = m.last_mut() {
            x.output_bytes = dir_size(&store);
        }
        let before = dir_size(&store).unwrap_or(0);
        m.push(timed(
            "rbac backup tenant-00 (~40% of rows)",
            &run("create --kind full --scope tenant:tenant-00"),
            None,
        )?);
        let mid = dir_size(&store).unwrap_or(0);
        if let Some(x) = m.last_mut() {
            x.output_bytes = Some(mid - before);
        }
        m.push(timed(
            "rbac backup tenant-07 (~2% of rows)",
            &run("create --kind full --scope tenant:tenant-07"),
            None,
        )?);
        if let Some(x) = m.last_mut() {
            x.output_bytes = Some(dir_size(&store).unwrap_or(0) - mid);
        }
        let restored = out.join("ours-restored.db");
        let _ = std::fs::remove_file(&restored);
        // An empty file is an empty SQLite database: the target of the restore.
        std::fs::write(&restored, b"")?;
        let to = format!("sqlite://{}", restored.display());
        m.push(timed(
            "rbac restore full, dry run (into an empty db)",
            &run(&format!(
                "restore --dry-run --to {} --id-file {}",
                sh_quote(&to),
                sh_quote(&id_file)
            )),
            None,
        )?);
        m.push(timed(
            "rbac restore full (into an empty db)",
            &run(&format!(
                "restore --to {} --id-file {}",
                sh_quote(&to),
                sh_quote(&id_file)
            )),
            Some(&restored),
        )?);
        // An incremental after 1% of the rows of every table changed at random (the capture
        // triggers were installed by the full backup above).
        let changed = timed(
            "change 1% of rows at random (not a contender)",
            &one_percent_change(db),
            None,
        )?;
        eprintln!("changed in {:.1} s", changed.seconds);
        let before = dir_size(&store).unwrap_or(0);
        m.push(timed(
            "rbac backup incremental after 1% change",
            &run("create --kind incremental --scope all"),
            None,
        )?);
        if let Some(x) = m.last_mut() {
            x.output_bytes = Some(dir_size(&store).unwrap_or(0) - before);
        }
        Ok(m)
    }

    /// A `sqlite3` script updating about 1% of the rows of every table, chosen at random.
    pub(super) fn one_percent_change(db: &Path) -> String {
        let updates = [
            "UPDATE journal_entries SET debit_cents = debit_cents + 1 WHERE abs(random()) % 100 = 0;",
            "UPDATE invoices SET status = 'paid' WHERE abs(random()) % 100 = 0;",
            "UPDATE payments SET amount_cents = amount_cents + 1 WHERE abs(random()) % 100 = 0;",
            "UPDATE customers SET phone = NULL WHERE abs(random()) % 100 = 0;",
            "UPDATE users SET role = 'viewer' WHERE abs(random()) % 100 = 0;",
            "UPDATE accounts SET balance_cents = balance_cents + 1 WHERE abs(random()) % 100 = 0;",
        ];
        format!(
            "sqlite3 {} \"BEGIN; {} COMMIT;\"",
            sh_quote(&db.display().to_string()),
            updates.join(" ")
        )
    }

    fn dir_size(dir: &Path) -> Option<u64> {
        let mut total = 0;
        for entry in std::fs::read_dir(dir).ok()? {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            total += if meta.is_dir() {
                dir_size(&entry.path())?
            } else {
                meta.len()
            };
        }
        Some(total)
    }

    /// `ours` runs the benchmark's child under `/usr/bin/time` with `cfg`.
    fn runner(cfg: &Path) -> Result<impl Fn(&str) -> String, BoxError> {
        let exe = std::env::current_exe()?;
        let (exe, cfg) = (
            sh_quote(&exe.display().to_string()),
            sh_quote(&cfg.display().to_string()),
        );
        Ok(move |args: &str| format!("{exe} ours {args} --config {cfg}"))
    }

    /// The same contenders as `sqlite`, on the generated PostgreSQL database: full backup
    /// (plain and encrypted), two tenant backups, a full restore into a fresh database that
    /// has the schema (made with `pg_dump --schema-only`, not timed), and an incremental after
    /// 1% of the rows changed, and a dry run of the full backup against the restored database.
    pub(super) fn postgres(admin_url: &str, out: &Path) -> Result<Vec<Measurement>, BoxError> {
        use super::{PG_DB, psql, with_database};
        let url = with_database(admin_url, PG_DB);
        let store = out.join("ours-pg-store");
        let _ = std::fs::remove_dir_all(&store);
        let base = config(Path::new("/unused"), &store).replace(
            "database = \"sqlite:///unused\"",
            &format!("database = \"{url}\""),
        );
        let cfg = out.join("ours-pg.toml");
        std::fs::write(&cfg, &base)?;
        let run = runner(&cfg)?;
        let enc_store = out.join("ours-pg-store-enc");
        let _ = std::fs::remove_dir_all(&enc_store);
        let enc_cfg = out.join("ours-pg-enc.toml");
        std::fs::write(
            &enc_cfg,
            format!(
                "{}\n[encryption]\nrecipients = [\"{BENCH_RECIPIENT}\"]\n",
                base.replace(
                    &store.display().to_string(),
                    &enc_store.display().to_string()
                )
            ),
        )?;
        let run_enc = runner(&enc_cfg)?;
        let id_file = out.join("ours-pg-full.id").display().to_string();
        let mut m = vec![timed(
            "rbac backup full (zstd-3)",
            &run(&format!(
                "create --kind full --scope all --id-file {}",
                sh_quote(&id_file)
            )),
            None,
        )?];
        if let Some(x) = m.last_mut() {
            x.output_bytes = dir_size(&store);
        }
        let before = dir_size(&store).unwrap_or(0);
        m.push(timed(
            "rbac backup tenant-00 (~40% of rows)",
            &run("create --kind full --scope tenant:tenant-00"),
            None,
        )?);
        let mid = dir_size(&store).unwrap_or(0);
        if let Some(x) = m.last_mut() {
            x.output_bytes = Some(mid - before);
        }
        m.push(timed(
            "rbac backup tenant-07 (~2% of rows)",
            &run("create --kind full --scope tenant:tenant-07"),
            None,
        )?);
        if let Some(x) = m.last_mut() {
            x.output_bytes = Some(dir_size(&store).unwrap_or(0) - mid);
        }
        // The restore target: a fresh database with the schema (as the application's
        // migrations would make it), no rows.
        let target = "rbac_bench_restore_ours";
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {target}"))?;
        psql(admin_url, &format!("CREATE DATABASE {target}"))?;
        let to = with_database(admin_url, target);
        timed(
            "schema of the restore target (not a contender)",
            &format!(
                "pg_dump --schema-only {} | psql {} -X -q -v ON_ERROR_STOP=1 > /dev/null",
                sh_quote(&url),
                sh_quote(&to)
            ),
            None,
        )?;
        m.push(timed(
            "rbac restore full (into a fresh db with the schema)",
            &run(&format!(
                "restore --to {} --id-file {}",
                sh_quote(&to),
                sh_quote(&id_file)
            )),
            None,
        )?);
        m.push(timed(
            "rbac restore, dry run (against the restored db)",
            &run(&format!(
                "restore --to {} --id-file {} --dry-run",
                sh_quote(&to),
                sh_quote(&id_file)
            )),
            None,
        )?);
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {target}"))?;
        // An incremental after 1% of the rows of every table changed at random (the capture
        // triggers were installed by the full backup above).
        let changed = timed(
            "change 1% of rows at random (not a contender)",
            &format!(
                "psql {} -X -q -v ON_ERROR_STOP=1 -c {}",
                sh_quote(&url),
                sh_quote(&format!("BEGIN; {} COMMIT;", PG_ONE_PERCENT.join(" ")))
            ),
            None,
        )?;
        eprintln!("changed in {:.1} s", changed.seconds);
        let before = dir_size(&store).unwrap_or(0);
        m.push(timed(
            "rbac backup incremental after 1% change",
            &run("create --kind incremental --scope all"),
            None,
        )?);
        if let Some(x) = m.last_mut() {
            x.output_bytes = Some(dir_size(&store).unwrap_or(0) - before);
        }
        // Encrypted, last: a full backup of another store prunes the change log the
        // incremental above needed.
        m.push(timed(
            "rbac backup full (zstd-3, AES-256-GCM)",
            &run_enc("create --kind full --scope all"),
            None,
        )?);
        if let Some(x) = m.last_mut() {
            x.output_bytes = dir_size(&enc_store);
        }
        let _ = std::fs::remove_dir_all(&enc_store);
        Ok(m)
    }

    /// An age X25519 recipient (the RFC 7748 test public key; nobody needs to read these).
    const BENCH_RECIPIENT: &str = "age1m60dkltm0hqmf56mv8pweep4xulcxs7gtduxwnddl3lpgmug9d8s0dmj33";

    /// The PostgreSQL form of [`one_percent_change`].
    const PG_ONE_PERCENT: &[&str] = &[
        "UPDATE journal_entries SET debit_cents = debit_cents + 1 WHERE random() < 0.01;",
        "UPDATE invoices SET status = 'paid' WHERE random() < 0.01;",
        "UPDATE payments SET amount_cents = amount_cents + 1 WHERE random() < 0.01;",
        "UPDATE customers SET phone = NULL WHERE random() < 0.01;",
        "UPDATE users SET role = 'viewer' WHERE random() < 0.01;",
        "UPDATE accounts SET balance_cents = balance_cents + 1 WHERE random() < 0.01;",
    ];

    /// Lets every subject do everything: the benchmark is the operator.
    struct Operator;
    impl rbac_admin::backup::Authorizer for Operator {
        fn allows(&self, _: &str, _: &str, _: &str) -> bool {
            true
        }
    }

    /// The child side: `ours create|restore ... --config FILE`.
    pub(super) fn child(args: &[String]) -> Result<(), BoxError> {
        use rbac_admin::backup::{
            Actor, BackupConfig, BackupService, CreateRequest, NoProgress, RestoreRequest, Selector,
        };
        let arg = |flag: &str| super::arg(args, flag);
        let cfg = arg("--config").ok_or("--config FILE")?;
        let service = BackupService::open(BackupConfig::from_file(Path::new(&cfg))?)?;
        let actor = Actor::new("bench", &Operator);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            match args.get(1).map(String::as_str) {
                Some("create") => {
                    let request = CreateRequest {
                        kind: arg("--kind").unwrap_or_else(|| "full".into()).parse()?,
                        scope: arg("--scope").unwrap_or_else(|| "all".into()).parse()?,
                    };
                    let m =
                        rbac_admin::backup::create(&service, &request, &actor, &NoProgress).await?;
                    eprintln!("created {} ({} rows, {} bytes)", m.id, m.rows(), m.size());
                    if let Some(path) = arg("--id-file") {
                        std::fs::write(path, m.id.as_str())?;
                    }
                }
                Some("restore") => {
                    let request = RestoreRequest {
                        from: match arg("--id-file") {
                            Some(path) => {
                                Selector::Id(std::fs::read_to_string(path)?.trim().parse()?)
                            }
                            None => Selector::Latest,
                        },
                        tables: Vec::new(),
                        modules: Vec::new(),
                        tenant: arg("--tenant"),
                        to: arg("--to"),
                        dry_run: args.iter().any(|a| a == "--dry-run"),
                    };
                    let report = service.restore(&request, &actor, &NoProgress).await?;
                    eprintln!(
                        "restored {} tables from {:?}",
                        report.tables.len(),
                        report.chain
                    );
                    if report.dry_run {
                        for t in &report.tables {
                            eprintln!(
                                "  {}: insert {}, replace {}, unchanged {} ({} not read), delete {}",
                                t.table,
                                t.insert,
                                t.replace,
                                t.unchanged,
                                t.unchanged_by_change_log,
                                t.delete
                            );
                        }
                    }
                }
                other => return Err(format!("unknown ours operation {other:?}").into()),
            }
            Ok::<(), BoxError>(())
        })
    }
}

fn report(title: &str, source_bytes: u64, rows: &[Measurement], json: &mut Vec<String>) {
    println!(
        "\n### {title} (source {:.2} GB)\n",
        source_bytes as f64 / 1e9
    );
    println!("| contender | time (s) | peak RSS (MiB) | output (MB) | command |");
    println!("|---|---:|---:|---:|---|");
    for m in rows {
        let out = m
            .output_bytes
            .map_or_else(|| "–".to_owned(), |b| format!("{:.1}", b as f64 / 1e6));
        println!(
            "| {} | {:.2} | {} | {out} | `{}` |",
            m.name.replace('|', "\\|"),
            m.seconds,
            m.peak_rss_kib / 1024,
            m.command.replace('|', "\\|")
        );
        json.push(format!(
            "{{\"section\":{:?},\"name\":{:?},\"seconds\":{},\"peak_rss_kib\":{},\"output_bytes\":{},\"command\":{:?}}}",
            title,
            m.name,
            m.seconds,
            m.peak_rss_kib,
            m.output_bytes.map_or("null".to_owned(), |b| b.to_string()),
            m.command
        ));
    }
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let sqlite = arg(&args, "--sqlite").map(PathBuf::from);
    let pg = arg(&args, "--pg");
    match mode {
        "ours" => ours::child(&args)?,
        "generate" => {
            let scale: f64 = arg(&args, "--scale").map_or(Ok(1.0), |s| s.parse())?;
            if let Some(path) = &sqlite {
                let started = Instant::now();
                generate_sqlite(path, scale)?;
                let size = std::fs::metadata(path)?.len();
                eprintln!(
                    "sqlite: {} is {:.2} GB, generated in {:.1?}",
                    path.display(),
                    size as f64 / 1e9,
                    started.elapsed()
                );
            }
            if let Some(url) = &pg {
                let started = Instant::now();
                generate_pg(url, scale)?;
                let size = psql(url, &format!("SELECT pg_database_size('{PG_DB}')"))?;
                eprintln!(
                    "postgres: {PG_DB} is {size} bytes, generated in {:.1?}",
                    started.elapsed()
                );
            }
        }
        "run" => {
            let out = PathBuf::from(
                arg(&args, "--out").unwrap_or_else(|| "bench/target/backup-bench".into()),
            );
            std::fs::create_dir_all(&out)?;
            let mut json = Vec::new();
            println!(
                "## backup benchmark ({} cores)",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
            if let Some(db) = &sqlite {
                let size = std::fs::metadata(db)?.len();
                let mut rows = sqlite_peers(db, &out)?;
                rows.extend(ours::sqlite(db, &out)?);
                report("SQLite", size, &rows, &mut json);
            }
            if let Some(url) = &pg {
                let size: u64 =
                    psql(url, &format!("SELECT pg_database_size('{PG_DB}')"))?.parse()?;
                let mut rows = pg_peers(url, &out)?;
                rows.extend(ours::postgres(url, &out)?);
                report("PostgreSQL", size, &rows, &mut json);
            }
            if let Some(path) = arg(&args, "--json") {
                std::fs::write(path, format!("[\n{}\n]\n", json.join(",\n")))?;
            }
        }
        _ => {
            eprintln!(
                "usage: backup_bench generate [--sqlite FILE] [--pg ADMIN_URL] [--scale F]\n       backup_bench run [--sqlite FILE] [--pg ADMIN_URL] [--out DIR] [--json FILE]"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}
