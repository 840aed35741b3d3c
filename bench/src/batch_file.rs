//! `--batch-file LINES`: the work of `rbac-admin check --batch FILE`, timed beside a peer.
//!
//! A shape's mixed queries are written, cycled, to a CSV file of `LINES` lines
//! (`bench/target/batch-file/SHAPE.csv`). In each round, in rotating order, the file is
//! answered by:
//! - **rbac-admin**: `rbac_admin::check::run_batch_from`, the code behind `check --batch`: it
//!   reads, parses and validates each line, checks it through `Snapshot::check_batch` and prints
//!   `allow` or `deny`;
//! - **casbin CachedEnforcer (warm)**: the same file read line by line (split at commas, the
//!   permission split into object and action at its last dot), `enforce` and the same output;
//!   its cache holds every query's answer, as in the main benchmark;
//! - **check_batch, parsed in memory**: the engine alone on the same queries already parsed,
//!   with the same output: what parsing and reading the file add to rbac-admin is the
//!   difference.
//!
//! The policy is written beside the queries as casbin files (`SHAPE.conf`, `SHAPE-policy.csv`),
//! so that the real binary can be timed on the same input; the command is printed.
//!
//! The three outputs must be identical, byte for byte, in every round. Policy loading is not
//! timed (`rbac-admin` adds it once per run). Each contender's heap peak above its start is
//! printed too: `rbac-admin` reads a stream, so its memory does not grow with the file.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use casbin::CoreApi;
use rbac_core::Engine;

use crate::alloc::Window;
use crate::shapes::{Query, Shape};
use crate::{casbin_peer, load_policy, progress, report};

/// Times the shape's mix as a batch file of `lines` lines, `rounds` times each.
pub fn run(shape: Shape, lines: usize, rounds: usize, dir: &Path) {
    let name = shape.name.clone();
    progress(&name, "loading the policy");
    let policy = load_policy(shape.source);
    let engine = Engine::new(&policy);
    let snapshot = engine.snapshot();
    let casbin_text = crate::casbin_text(shape.casbin, &policy);
    let domains = casbin_peer::has_domains(&casbin_text.model);
    let Some(mix) = shape
        .query_sets
        .into_iter()
        .max_by_key(|set| set.queries.len())
    else {
        eprintln!("[{name}] has no queries");
        return;
    };
    let queries = mix.queries;

    let path = dir.join(format!("{name}.csv"));
    progress(
        &name,
        &format!("writing {lines} lines to {}", path.display()),
    );
    if let Err(e) = write_queries(&path, &queries, lines) {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // The policy as casbin files beside it, for timing the real binary on the same input.
    let model_path = dir.join(format!("{name}.conf"));
    let policy_path = dir.join(format!("{name}-policy.csv"));
    for (file, text) in [
        (&model_path, &casbin_text.model),
        (&policy_path, &casbin_text.csv),
    ] {
        if let Err(e) = std::fs::write(file, text) {
            eprintln!("cannot write {}: {e}", file.display());
            std::process::exit(1);
        }
    }

    // casbin's cache gets every query's answer under casbin's own key, after the first ones
    // were enforced for real and found to agree with ours.
    progress(&name, "building and warming casbin CachedEnforcer");
    let answers: Vec<bool> = queries
        .iter()
        .map(|q| {
            snapshot
                .check(&q.subject, &q.tenant, &q.permission)
                .is_allowed()
        })
        .collect();
    let capacity = queries.len() * 2 + 1000;
    let (cached, cache) = match casbin_peer::cached(&casbin_text.model, &casbin_text.csv, capacity)
    {
        Ok(built) => built,
        Err(e) => {
            eprintln!("[{name}] casbin refused the policy: {e}");
            return;
        }
    };
    let casbin_queries: Vec<_> = queries
        .iter()
        .map(|q| casbin_peer::CasbinQuery::new(q, domains))
        .collect();
    let started = Instant::now();
    let mut verified = 0;
    while verified < queries.len()
        && (verified < 20 || (verified < 200 && started.elapsed().as_secs() < 3))
    {
        let got = casbin_peer::enforce(&cached, &casbin_queries[verified]);
        if got != answers[verified] {
            let q = &queries[verified];
            eprintln!(
                "[{name}] casbin and rbac-core disagree on ({}, {}, {}): casbin {got}, rbac-core {}",
                q.subject, q.tenant, q.permission, answers[verified]
            );
            std::process::exit(1);
        }
        verified += 1;
    }
    casbin_peer::prefill(&cache, &casbin_queries[verified..], &answers[verified..]);
    drop(casbin_queries);

    progress(
        &name,
        &format!("{rounds} rounds; {verified} queries verified by real casbin enforcement"),
    );
    let contenders: [(&str, &dyn Fn() -> Digest); 3] = [
        ("rbac-admin check --batch (run_batch_from)", &|| {
            let mut out = Digest::default();
            let file = open(&path);
            let summary = rbac_admin::check::run_batch_from(
                &engine,
                file,
                "queries",
                rbac_admin::check::BatchOptions::default(),
                &mut out,
                &mut std::io::sink(),
            );
            if let Err(e) = summary {
                eprintln!("rbac-admin failed: {e}");
                std::process::exit(1);
            }
            out
        }),
        ("casbin CachedEnforcer (warm), same file", &|| {
            casbin_lines(&cached, &path, domains)
        }),
        ("check_batch, parsed in memory", &|| {
            check_batch_in_memory(&engine, &queries, lines)
        }),
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut peaks = vec![0i64; contenders.len()];
    let mut expected = None;
    for round in 0..rounds {
        for k in 0..contenders.len() {
            let i = (round + k) % contenders.len();
            let (label, answer) = contenders[i];
            let window = Window::start();
            let t = Instant::now();
            let digest = answer();
            let elapsed = t.elapsed();
            peaks[i] = peaks[i].max(window.stop().heap_peak);
            ns[i].push(elapsed.as_secs_f64() * 1e9 / lines as f64);
            let expected = expected.get_or_insert(digest);
            if *expected != digest {
                eprintln!("[{name}] {label} printed other answers ({digest:?} != {expected:?})");
                std::process::exit(1);
            }
        }
    }

    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ours = median(&ns[0]);
    println!(
        "\n## {name}: a batch file of {lines} lines ({}), {rounds} rounds\n",
        report::mib(file_bytes as i64)
    );
    println!("| answered by | ns per line, median (min–max) | heap peak | vs rbac-admin |");
    println!("|---|---:|---:|---:|");
    for (i, (label, _)) in contenders.iter().enumerate() {
        let (min, max) = ns[i]
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let m = median(&ns[i]);
        println!(
            "| {label} | {m:.1} ({min:.1}–{max:.1}) | {} | {:.2}× |",
            report::mib(peaks[i]),
            m / ours
        );
    }
    if let Some(digest) = expected {
        println!(
            "\nEvery round's outputs identical: {} bytes, {} allowed of {lines}.",
            digest.bytes, digest.allowed
        );
    }
    println!(
        "The same with the binary, loading the policy too:\n\
         `cargo run --release -p rbac-admin -- check --casbin-model {} --casbin-policy {} --batch {} > /dev/null`",
        model_path.display(),
        policy_path.display(),
        path.display()
    );
}

/// The queries, cycled to `lines` lines of `subject,tenant,permission`.
fn write_queries(path: &Path, queries: &[Query], lines: usize) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = BufWriter::new(File::create(path)?);
    for q in queries.iter().cycle().take(lines) {
        writeln!(out, "{},{},{}", q.subject, q.tenant, q.permission)?;
    }
    out.flush()
}

fn open(path: &Path) -> File {
    match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

/// casbin answering the file the plain way: each line split at commas.
fn casbin_lines(cached: &casbin::CachedEnforcer, path: &Path, domains: bool) -> Digest {
    let mut out = BufWriter::new(Digest::default());
    let mut reader = BufReader::new(open(path));
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                std::process::exit(1);
            }
        }
        let mut fields = line.trim().split(',').map(str::trim);
        let (sub, dom, permission) = (
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
        );
        let (obj, act) = permission.rsplit_once('.').unwrap_or((permission, ""));
        let allowed = if domains {
            cached.enforce((sub, dom, obj, act))
        } else {
            cached.enforce((sub, obj, act))
        };
        let word = match allowed {
            Ok(true) => "allow",
            Ok(false) => "deny",
            Err(e) => {
                eprintln!("casbin refused ({sub}, {dom}, {obj}, {act}): {e}");
                std::process::exit(1);
            }
        };
        let _ = writeln!(out, "{word}");
    }
    out.into_inner().unwrap_or_default()
}

/// The engine alone: the same queries, already parsed, in chunks of 256 as rbac-admin's.
fn check_batch_in_memory(engine: &Engine, queries: &[Query], lines: usize) -> Digest {
    let snapshot = engine.snapshot();
    let mut out = BufWriter::new(Digest::default());
    let mut chunk = Vec::with_capacity(256);
    let mut all = queries.iter().cycle().take(lines).peekable();
    while all.peek().is_some() {
        chunk.clear();
        chunk.extend(
            all.by_ref()
                .take(256)
                .map(|q| (q.subject.as_str(), q.tenant.as_str(), q.permission.as_str())),
        );
        for decision in snapshot.check_batch(black_box(&chunk)) {
            let _ = writeln!(out, "{decision}");
        }
    }
    out.into_inner().unwrap_or_default()
}

/// What was printed, summed up: its length, its `allow` lines and an FNV-1a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest {
    bytes: u64,
    allowed: u64,
    hash: u64,
}

impl Default for Digest {
    fn default() -> Digest {
        Digest {
            bytes: 0,
            allowed: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.bytes += buf.len() as u64;
        // Each `allow` line holds one `w`; `deny` lines none.
        self.allowed += buf.iter().filter(|&&b| b == b'w').count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
