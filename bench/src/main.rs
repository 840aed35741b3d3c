//! rbac-bench: rbac-core against casbin, cedar-policy and a naive HashMap model, on the same
//! policies and the same queries. See README.md.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- [--shape NAME[,NAME…]] [--json FILE] [--quick]
//! cargo run --release --manifest-path bench/Cargo.toml -- --batch-file LINES [--rounds R] [--shape …]
//! ```

mod alloc;
mod batch_file;
mod casbin_peer;
mod cedar_peer;
mod measure;
mod naive;
mod report;
mod rng;
mod shapes;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbac_core::{Engine, Policy, Snapshot};

use crate::alloc::{MemDelta, Window};
use crate::measure::Config;
use crate::naive::Naive;
use crate::report::{BuildRow, Row, SetReport, ShapeReport};
use crate::shapes::{PackedQueries, Query, Shape, Source};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

pub const STRING: &str = "rbac check (string)";
pub const INTERNED: &str = "rbac is_allowed (interned)";
pub const STRING_BATCH: &str = "rbac check_batch (string)";
pub const INTERNED_BATCH: &str = "rbac is_allowed_batch (interned)";
/// Queries per call of the batch APIs.
pub const BATCH: usize = 256;
pub const NAIVE: &str = "naive HashMap";
pub const CASBIN: &str = "casbin Enforcer";
pub const CACHED: &str = "casbin CachedEnforcer (warm)";

/// Rounds of `--batch-file` without `--rounds`.
const BATCH_FILE_ROUNDS: usize = 5;

const SHAPES: [&str; 5] = ["small", "medium", "large", "erp", "scale"];

struct Args {
    shapes: Vec<String>,
    json: Option<String>,
    quick: bool,
    only: Option<Vec<String>>,
    first: Option<usize>,
    /// `--batch-file LINES`: time `rbac-admin check --batch` on files of this many lines.
    batch_file: Option<usize>,
    /// `--rounds R` of `--batch-file` (default [`BATCH_FILE_ROUNDS`]).
    rounds: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: rbac-bench [--shape NAME[,NAME…]] [--json FILE] [--quick] [--only rbac,naive,casbin,cached,cedar] [--first N]\n\
         \x20      rbac-bench --batch-file LINES [--rounds R] [--shape NAME[,NAME…]]\n\
         shapes: {} (default: all; with --batch-file: large, erp)",
        SHAPES.join(", ")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        shapes: Vec::new(),
        json: None,
        quick: false,
        only: None,
        first: None,
        batch_file: None,
        rounds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--shape" | "--shapes" => {
                let v = it.next().unwrap_or_else(|| usage());
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    if s == "all" {
                        args.shapes.extend(SHAPES.iter().map(|s| (*s).to_owned()));
                    } else if SHAPES.contains(&s) {
                        args.shapes.push(s.to_owned());
                    } else {
                        eprintln!("unknown shape `{s}`");
                        usage();
                    }
                }
            }
            "--json" => args.json = Some(it.next().unwrap_or_else(|| usage())),
            "--quick" => args.quick = true,
            "--first" => {
                let v = it.next().unwrap_or_else(|| usage());
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => args.first = Some(n),
                    _ => {
                        eprintln!("--first takes a count of queries above 0, not `{v}`");
                        usage();
                    }
                }
            }
            "--only" => {
                let v = it.next().unwrap_or_else(|| usage());
                args.only = Some(v.split(',').map(str::to_owned).collect());
            }
            "--batch-file" | "--rounds" => {
                let v = it.next().unwrap_or_else(|| usage());
                match v.parse::<usize>() {
                    Ok(n) if n > 0 && a == "--rounds" => args.rounds = Some(n),
                    Ok(n) if n > 0 => args.batch_file = Some(n),
                    _ => {
                        eprintln!("{a} takes a count above 0, not `{v}`");
                        usage();
                    }
                }
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument `{other}`");
                usage();
            }
        }
    }
    if args.batch_file.is_none() && args.rounds.is_some() {
        eprintln!("--rounds counts the rounds of --batch-file");
        usage();
    }
    if args.batch_file.is_some()
        && (args.json.is_some() || args.quick || args.only.is_some() || args.first.is_some())
    {
        eprintln!("--batch-file takes only --rounds and --shape");
        usage();
    }
    if args.shapes.is_empty() && args.batch_file.is_some() {
        args.shapes = vec!["large".to_owned(), "erp".to_owned()];
    }
    if args.shapes.is_empty() {
        args.shapes = SHAPES.iter().map(|s| (*s).to_owned()).collect();
    }
    args
}

fn progress(shape: &str, what: &str) {
    eprintln!("[{shape}] {what}");
}

/// Builds something inside a memory window, timing it.
fn built<T>(f: impl FnOnce() -> T) -> (T, f64, MemDelta) {
    let w = Window::start();
    let t = Instant::now();
    let v = f();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    (v, ms, w.stop())
}

/// Stops the run: two engines disagree on a query. A disagreement is a bug to report.
fn disagreement(
    at: &str,
    engine: &str,
    queries: &[Query],
    reference: &[bool],
    got: &[bool],
    ours: &Engine,
    naive: Option<&Naive>,
) -> ! {
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != reference[i]).collect();
    eprintln!(
        "\nERROR: `{engine}` disagrees with rbac-core on {} of {} queries of {at}; \
         the benchmark stops here (a disagreement is a bug in one of them, or in the translation).",
        bad.len(),
        got.len()
    );
    for &i in bad.iter().take(10) {
        let q = &queries[i];
        let oracle = naive.map_or("n/a".to_owned(), |n| {
            n.check(&q.subject, &q.tenant, &q.permission).to_string()
        });
        eprintln!(
            "  query #{i} ({}, {:?}, {}): rbac-core {}, {engine} {}, naive oracle {oracle}\n    rbac-core says: {}",
            q.subject,
            q.tenant,
            q.permission,
            reference[i],
            got[i],
            ours.explain(&q.subject, &q.tenant, &q.permission)
        );
    }
    std::process::exit(3)
}

struct Ctx<'a> {
    shape: &'a str,
    cfg: Config,
    timer_ns: f64,
    sets: &'a [shapes::QuerySet],
    /// The names of each of `sets`, back to back: what string APIs are timed on.
    packed: &'a [PackedQueries],
    reference: &'a [Vec<bool>],
    engine: &'a Engine,
    snapshot: &'a Snapshot,
    naive: Option<&'a Naive>,
    /// rbac-core timed on the first `n` queries of a set, for peers timed on a prefix:
    /// (set, n, string median, interned median).
    baselines: RefCell<Vec<(String, usize, f64, f64)>>,
}

/// The queries of `set` in an engine's form: `prepare(packed, i, query)` of each.
fn prepared<'a, Q>(
    set: &shapes::QuerySet,
    packed: &'a PackedQueries,
    prepare: &impl Fn(&'a PackedQueries, usize, &Query) -> Q,
) -> Vec<Q> {
    set.queries
        .iter()
        .enumerate()
        .map(|(i, q)| prepare(packed, i, q))
        .collect()
}

type Interned = Option<(
    rbac_core::SubjectId,
    rbac_core::TenantId,
    rbac_core::PermissionId,
)>;

fn intern(snap: &Snapshot, q: &Query) -> Interned {
    Some((
        snap.subject_id(&q.subject)?,
        snap.tenant_id(&q.tenant)?,
        snap.permission_id(&q.permission)?,
    ))
}

impl<'a> Ctx<'a> {
    /// Verifies an engine against the reference on every set (all queries when `all`, else a
    /// budgeted prefix), then times it. `prepare(packed, i, query)` turns query `i` of a set
    /// into what the engine takes (`packed` holds the set's names back to back).
    /// `warm(prepared, verified, reference)` may prepare the engine and returns how many
    /// queries (from the first) to time: by default the verified ones. Returns one row per set.
    fn run<Q>(
        &self,
        name: &str,
        all: bool,
        prepare: impl Fn(&'a PackedQueries, usize, &Query) -> Q,
        mut check: impl FnMut(&Q) -> bool,
        mut warm: impl FnMut(&[Q], usize, &[bool]) -> usize,
    ) -> Vec<Row> {
        let mut rows = Vec::new();
        for ((set, packed), reference) in self.sets.iter().zip(self.packed).zip(self.reference) {
            let prepared = prepared(set, packed, &prepare);
            let got = measure::answers(&prepared, all, &self.cfg, &mut check);
            let n = got.len();
            self.agree(name, set, reference, &got);
            let timed = warm(&prepared, n, reference).clamp(1, prepared.len());
            let timed = self.cfg.time_first.map_or(timed, |first| timed.min(first));
            progress(
                self.shape,
                &format!(
                    "{name}: {}: verified {n}/{} queries, timing {timed}",
                    set.name,
                    set.queries.len()
                ),
            );
            let timing = measure::time(&prepared[..timed], &self.cfg, self.timer_ns, &mut check);
            rows.push(Row {
                set: set.name.clone(),
                engine: name.to_owned(),
                timing,
                verified: n,
                timed,
            });
            if timed < set.queries.len() {
                self.baseline(set, packed, timed);
            }
        }
        rows
    }

    /// Stops the run unless `got` (the answers of `name` to the first queries of `set`)
    /// agree with the reference.
    fn agree(&self, name: &str, set: &shapes::QuerySet, reference: &[bool], got: &[bool]) {
        if got != &reference[..got.len()] {
            let at = format!("{}/{}", self.shape, set.name);
            disagreement(
                &at,
                name,
                &set.queries,
                reference,
                got,
                self.engine,
                self.naive,
            );
        }
    }

    /// Verifies a batch API (`batch` gives the answers to a slice of queries) against the
    /// reference on every query of every set, then times `allowed` (how many of a slice the
    /// API allows, counted from its own output) in slices of [`BATCH`].
    fn run_batches<Q: Clone>(
        &self,
        name: &str,
        prepare: impl Fn(&'a PackedQueries, usize, &Query) -> Q,
        batch: impl Fn(&[Q]) -> Vec<bool>,
        allowed: impl Fn(&[Q]) -> usize,
    ) -> Vec<Row> {
        let mut rows = Vec::new();
        for ((set, packed), reference) in self.sets.iter().zip(self.packed).zip(self.reference) {
            let prepared = prepared(set, packed, &prepare);
            let n = prepared.len();
            let got: Vec<bool> = prepared.chunks(BATCH).flat_map(&batch).collect();
            assert_eq!(
                got.len(),
                n,
                "{name} gave {} answers to {n} queries",
                got.len()
            );
            self.agree(name, set, reference, &got);
            let timed = self.cfg.time_first.map_or(n, |first| n.min(first.max(1)));
            // A set of fewer queries than a batch (a single query) is timed in whole batches
            // of it, repeated, as the single-check APIs cycle through it.
            let cycled: Vec<Q> = prepared[..timed]
                .iter()
                .cycle()
                .take(timed.max(BATCH))
                .cloned()
                .collect();
            progress(
                self.shape,
                &format!(
                    "{name}: {}: verified {n}/{n} queries, timing {timed}",
                    set.name
                ),
            );
            let mut timing =
                measure::time_batches(&cycled, BATCH, &self.cfg, self.timer_ns, &allowed);
            timing.queries = timed;
            rows.push(Row {
                set: set.name.clone(),
                engine: name.to_owned(),
                timing,
                verified: n,
                timed,
            });
        }
        rows
    }

    /// Times rbac-core (both APIs) on the first `n` queries of `set`, once.
    fn baseline(&self, set: &shapes::QuerySet, packed: &PackedQueries, n: usize) {
        if self
            .baselines
            .borrow()
            .iter()
            .any(|(s, m, _, _)| *s == set.name && *m == n)
        {
            return;
        }
        progress(
            self.shape,
            &format!("rbac-core on the same first {n} queries of {}", set.name),
        );
        let queries = &set.queries[..n];
        let engine = self.engine;
        let names: Vec<(&str, &str, &str)> = (0..n).map(|i| packed.get(i)).collect();
        let string = measure::time(&names, &self.cfg, self.timer_ns, |&(s, t, p)| {
            engine.check(s, t, p).is_allowed()
        });
        let snap = self.snapshot;
        let ids: Vec<Interned> = queries.iter().map(|q| intern(snap, q)).collect();
        let interned = measure::time(&ids, &self.cfg, self.timer_ns, |q| match *q {
            Some((s, t, p)) => snap.is_allowed(s, t, p),
            None => false,
        });
        self.baselines
            .borrow_mut()
            .push((set.name.clone(), n, string.median(), interned.median()));
    }
}

fn wanted(only: &Option<Vec<String>>, what: &str) -> bool {
    only.as_ref().is_none_or(|o| o.iter().any(|x| x == what))
}

/// Our policy for a shape: imported from casbin's CSV or validated from a document.
fn load_policy(source: Source) -> Policy {
    match source {
        Source::Casbin { model, csv } => {
            rbac_core::casbin::import(&model, &csv).unwrap_or_else(|e| panic!("import failed: {e}"))
        }
        Source::Document(doc) => {
            Policy::from_document(*doc).unwrap_or_else(|e| panic!("invalid policy: {e}"))
        }
    }
}

/// What the casbin peers load: the shape's own, or `policy` exported.
fn casbin_text(given: Option<shapes::CasbinText>, policy: &Policy) -> shapes::CasbinText {
    given.unwrap_or_else(|| {
        let e = rbac_core::casbin::export(policy).unwrap_or_else(|e| panic!("export: {e}"));
        shapes::CasbinText {
            model: e.model,
            csv: e.policy,
            how: "written by rbac_core::casbin::export".into(),
        }
    })
}

fn run_shape(shape: Shape, cfg: Config, timer_ns: f64, only: &Option<Vec<String>>) -> ShapeReport {
    let name = shape.name.clone();
    let mut report = ShapeReport::new(&shape);
    progress(&name, &shape.description);

    // rbac-core: load (import or validate), then compile.
    let source_kind = match &shape.source {
        Source::Casbin { .. } => "rbac_core::casbin::import of the CSV",
        Source::Document(_) => "Policy::from_document",
    };
    let (policy, load_ms, load_mem) = built(|| load_policy(shape.source));
    let (engine, compile_ms, compile_mem) = built(|| Engine::new(&policy));
    let snapshot: Arc<Snapshot> = engine.snapshot();
    let stats = snapshot.stats();
    report.fact(
        "rbac-core",
        format!(
            "load ({source_kind}) {load_ms:.1} ms, {}; compile (Policy → Engine) {compile_ms:.1} ms; \
             {} subjects, {} tenants, {} roles, {} permissions, {} effective sets",
            report::mib(load_mem.heap_live),
            stats.subjects,
            stats.tenants,
            stats.roles,
            stats.permissions,
            stats.effective_sets
        ),
    );
    report.ours_load_ms = load_ms;
    report.ours_compile_ms = compile_ms;
    // The snapshot's large tables are mappings of their own, which the counting allocator
    // does not see: add them.
    let mapped = stats.mapped_bytes as i64;
    let mut snapshot_mem = compile_mem;
    snapshot_mem.heap_live += mapped;
    snapshot_mem.heap_peak += mapped;
    let ours_build = BuildRow {
        engine: "rbac (string + interned)".into(),
        ms: load_ms + compile_ms,
        mem: snapshot_mem,
        detail: format!(
            "load {load_ms:.1} ms + compile {compile_ms:.1} ms; memory: the snapshot only, {} of it in huge-page mappings (the validated Policy is {})",
            report::mib(mapped),
            report::mib(load_mem.heap_live)
        ),
    };
    report.builds.push(ours_build);

    let reference: Vec<Vec<bool>> = shape
        .query_sets
        .iter()
        .map(|s| {
            s.queries
                .iter()
                .map(|q| {
                    engine
                        .check(&q.subject, &q.tenant, &q.permission)
                        .is_allowed()
                })
                .collect()
        })
        .collect();
    for (set, answers) in shape.query_sets.iter().zip(&reference) {
        let allowed = answers.iter().filter(|&&a| a).count();
        report.sets.push(SetReport {
            name: set.name.clone(),
            note: set.note.clone(),
            queries: set.queries.len(),
            allowed,
        });
    }

    // The naive model first: it is the oracle when something disagrees.
    progress(&name, "building the naive HashMap model");
    let (naive, naive_ms, naive_mem) = built(|| Naive::build(policy.document()));
    report.builds.push(BuildRow {
        engine: NAIVE.into(),
        ms: naive_ms,
        mem: naive_mem,
        detail: format!(
            "{} (subject, tenant) keys, {} distinct shared sets",
            naive.entries(),
            naive.distinct_sets
        ),
    });
    let packed: Vec<PackedQueries> = shape
        .query_sets
        .iter()
        .map(|s| PackedQueries::new(&s.queries))
        .collect();
    let mut ctx = Ctx {
        shape: &name,
        cfg,
        timer_ns,
        sets: &shape.query_sets,
        packed: &packed,
        reference: &reference,
        engine: &engine,
        snapshot: &snapshot,
        naive: None,
        baselines: RefCell::new(Vec::new()),
    };
    // rbac-core against the oracle, on every query (timed only if wanted).
    let naive_check = |q: &Query| naive.check(&q.subject, &q.tenant, &q.permission);
    let rows = if wanted(only, "naive") {
        ctx.run(
            NAIVE,
            true,
            |packed, i, _| packed.get(i),
            |&(s, t, p): &(&str, &str, &str)| naive.check(s, t, p),
            |_, n, _| n,
        )
    } else {
        for (set, reference) in shape.query_sets.iter().zip(&reference) {
            let got: Vec<bool> = set.queries.iter().map(naive_check).collect();
            if &got != reference {
                disagreement(
                    &format!("{name}/{}", set.name),
                    NAIVE,
                    &set.queries,
                    reference,
                    &got,
                    &engine,
                    None,
                );
            }
        }
        Vec::new()
    };
    ctx.naive = Some(&naive);
    if wanted(only, "rbac") {
        let r = ctx.run(
            STRING,
            true,
            |packed, i, _| packed.get(i),
            |&(s, t, p): &(&str, &str, &str)| engine.check(s, t, p).is_allowed(),
            |_, n, _| n,
        );
        report.rows.extend(r);
        let snap = &snapshot;
        let r = ctx.run(
            INTERNED,
            true,
            |_, _, q: &Query| intern(snap, q),
            |q| match *q {
                Some((s, t, p)) => snap.is_allowed(s, t, p),
                None => false,
            },
            |_, n, _| n,
        );
        report.rows.extend(r);
        let r = ctx.run_batches(
            STRING_BATCH,
            |packed, i, _| packed.get(i),
            |qs| {
                engine
                    .check_batch(qs)
                    .iter()
                    .map(|d| d.is_allowed())
                    .collect()
            },
            |qs| {
                engine
                    .check_batch(qs)
                    .iter()
                    .filter(|d| d.is_allowed())
                    .count()
            },
        );
        report.rows.extend(r);
        let r = ctx.run_batches(
            INTERNED_BATCH,
            |_, _, q: &Query| snap.query_ids(&q.subject, &q.tenant, &q.permission),
            |qs| snap.is_allowed_batch(qs),
            |qs| snap.is_allowed_batch(qs).iter().filter(|&&a| a).count(),
        );
        report.rows.extend(r);
    }
    report.rows.extend(rows);

    // casbin.
    let casbin_text = casbin_text(shape.casbin, &policy);
    let domains = casbin_peer::has_domains(&casbin_text.model);
    let csv_lines = casbin_text.csv.lines().count();
    report.fact(
        "casbin",
        format!("{}; {csv_lines} policy lines", casbin_text.how),
    );
    if wanted(only, "casbin") {
        progress(
            &name,
            &format!("building casbin Enforcer ({csv_lines} lines)"),
        );
        let (e, ms, mem) = built(|| casbin_peer::enforcer(&casbin_text.model, &casbin_text.csv));
        match e {
            Ok(e) => {
                report.builds.push(BuildRow {
                    engine: CASBIN.into(),
                    ms,
                    mem,
                    detail: "DefaultModel::from_str + StringAdapter + Enforcer::new".into(),
                });
                let rows = ctx.run(
                    CASBIN,
                    false,
                    |_, _, q| casbin_peer::CasbinQuery::new(q, domains),
                    |q| casbin_peer::enforce(&e, q),
                    |_, n, _| n,
                );
                report.rows.extend(rows);
                let (_, drop_ms, _) = built(|| drop(e));
                if drop_ms > 1000.0 {
                    progress(
                        &name,
                        &format!("dropping the Enforcer took {drop_ms:.0} ms"),
                    );
                }
            }
            Err(err) => report.skip(CASBIN, format!("casbin refused the policy: {err}")),
        }
    }
    if wanted(only, "cached") {
        progress(&name, "building casbin CachedEnforcer");
        let capacity = shape
            .query_sets
            .iter()
            .map(|s| s.queries.len())
            .sum::<usize>()
            * 2
            + 1000;
        let (e, ms, mem) =
            built(|| casbin_peer::cached(&casbin_text.model, &casbin_text.csv, capacity));
        match e {
            Ok((e, cache)) => {
                report.builds.push(BuildRow {
                    engine: CACHED.into(),
                    ms,
                    mem,
                    detail: format!(
                        "as the Enforcer, cache capacity {capacity}; memory before warming; warm: the verified \
                         queries by real enforcement, the others' answers put in casbin's cache"
                    ),
                });
                let rows = ctx.run(
                    CACHED,
                    false,
                    |_, _, q| casbin_peer::CasbinQuery::new(q, domains),
                    |q| casbin_peer::enforce(&e, q),
                    |qs, n, reference| {
                        // The verification pass computed the first `n` answers and cached them;
                        // the rest are put in casbin's cache under casbin's own key, so that the
                        // whole set is timed warm, as rbac-core is.
                        casbin_peer::prefill(&cache, &qs[n..], &reference[n..]);
                        for q in qs {
                            std::hint::black_box(casbin_peer::enforce(&e, q));
                        }
                        qs.len()
                    },
                );
                report.rows.extend(rows);
                drop(e);
            }
            Err(err) => report.skip(CACHED, format!("casbin refused the policy: {err}")),
        }
    }
    drop(casbin_text);

    // cedar.
    if wanted(only, "cedar") {
        for enc in cedar_peer::ALL {
            let label = format!("cedar {}", enc.name());
            if let Some(why) = cedar_peer::skip_reason(enc, policy.document()) {
                report.skip(&label, why);
                continue;
            }
            progress(&name, &format!("building {label}"));
            let (c, ms, mem) = built(|| cedar_peer::build(enc, policy.document()));
            match c {
                Ok(c) => {
                    report.builds.push(BuildRow {
                        engine: label.clone(),
                        ms,
                        mem,
                        detail: format!(
                            "{} policies, {} entities{} (translation + PolicySet::from_str + Entities::from_entities)",
                            c.n_policies,
                            c.n_entities,
                            if enc == cedar_peer::Encoding::PermAncestors {
                                format!(
                                    ", ≤{} (entity, ancestor) pairs",
                                    cedar_peer::perm_ancestor_closure(policy.document())
                                )
                            } else {
                                String::new()
                            }
                        ),
                    });
                    report
                        .cedar_encodings
                        .push((enc.name().to_owned(), enc.describe().to_owned()));
                    let rows = ctx.run(
                        &label,
                        false,
                        |_, _, q| c.query(q),
                        |q| c.check(q),
                        |_, n, _| n,
                    );
                    report.rows.extend(rows);
                }
                Err(e) => report.skip(&label, e),
            }
        }
    }
    report.baselines = ctx.baselines.into_inner();
    report
}

fn machine() -> (String, String) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, v)| v.trim().to_owned());
    (nproc.to_string(), model)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args = parse_args();
    let cfg = if args.quick {
        Config {
            passes: 3,
            pass_time: Duration::from_millis(20),
            calibration: Duration::from_millis(5),
            min_checks: 3,
            verify_budget: Duration::from_millis(300),
            verify_min: 20,
            time_first: args.first,
        }
    } else {
        Config {
            passes: 7,
            pass_time: Duration::from_millis(200),
            calibration: Duration::from_millis(50),
            min_checks: 5,
            verify_budget: Duration::from_secs(6),
            verify_min: 200,
            time_first: args.first,
        }
    };
    let timer_ns = measure::timer_overhead_ns();
    let (nproc, model) = machine();
    let started = Instant::now();
    let load_start = loadavg();
    if args.batch_file.is_some() {
        eprintln!(
            "rbac-bench --batch-file: {} rounds; {nproc} CPUs, {model}; load average {load_start}",
            args.rounds.unwrap_or(BATCH_FILE_ROUNDS)
        );
    } else {
        eprintln!(
            "rbac-bench: {} passes of ~{} ms; clock read {timer_ns:.0} ns; {nproc} CPUs, {model}; load average {load_start}",
            cfg.passes,
            cfg.pass_time.as_millis()
        );
    }
    let mut reports = Vec::new();
    for s in &args.shapes {
        let shape = match s.as_str() {
            "small" => shapes::casbin_shape("small", 100, 1_000, ("user501", "data9", "read")),
            "medium" => {
                shapes::casbin_shape("medium", 1_000, 10_000, ("user5001", "data150", "read"))
            }
            "large" => {
                shapes::casbin_shape("large", 10_000, 100_000, ("user50001", "data1500", "read"))
            }
            "erp" => shapes::erp(),
            "scale" => {
                let (u, t) = if args.quick {
                    (20_000, 200)
                } else {
                    (1_000_000, 10_000)
                };
                progress("scale", &format!("generating {u} users, {t} tenants"));
                shapes::scale(u, t)
            }
            _ => unreachable!(),
        };
        if let Some(lines) = args.batch_file {
            let dir =
                std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/batch-file"));
            batch_file::run(shape, lines, args.rounds.unwrap_or(BATCH_FILE_ROUNDS), dir);
            continue;
        }
        let report = run_shape(shape, cfg, timer_ns, &args.only);
        print!("{}", report.table());
        reports.push(report);
    }
    if args.batch_file.is_some() {
        return;
    }
    let summary = report::targets(&reports);
    print!("{summary}");
    let load_end = loadavg();
    println!(
        "\ntotal run time {:.0} s; machine: {nproc} CPUs, {model}; load average at start {load_start}, at end {load_end}",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let mut json = report::json(&reports, &cfg, timer_ns, &nproc, &model, args.quick);
        json["machine"]["loadavg_start"] = load_start.into();
        json["machine"]["loadavg_end"] = load_end.into();
        json["total_run_s"] = started.elapsed().as_secs_f64().into();
        match std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        ) {
            Ok(()) => eprintln!("wrote {path}"),
            Err(e) => {
                eprintln!("cannot write {path}: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every peer agrees with rbac-core on the ERP workload (first queries).
    #[test]
    fn every_engine_agrees_on_erp() {
        let shape = shapes::erp();
        let Source::Document(doc) = shape.source else {
            panic!("erp is a document")
        };
        let policy = Policy::from_document(*doc).unwrap();
        let engine = Engine::new(&policy);
        let queries = &shape.query_sets[0].queries[..2000];
        let want: Vec<bool> = queries
            .iter()
            .map(|q| {
                engine
                    .check(&q.subject, &q.tenant, &q.permission)
                    .is_allowed()
            })
            .collect();
        let naive = Naive::build(policy.document());
        let got: Vec<bool> = queries
            .iter()
            .map(|q| naive.check(&q.subject, &q.tenant, &q.permission))
            .collect();
        assert_eq!(got, want, "naive");
        for enc in cedar_peer::ALL {
            let c = cedar_peer::build(enc, policy.document()).unwrap();
            let got: Vec<bool> = queries.iter().map(|q| c.check(&c.query(q))).collect();
            assert_eq!(got, want, "cedar {}", enc.name());
        }
        let e = rbac_core::casbin::export(&policy).unwrap();
        let enforcer = casbin_peer::enforcer(&e.model, &e.policy).unwrap();
        let got: Vec<bool> = queries[..200]
            .iter()
            .map(|q| casbin_peer::enforce(&enforcer, &casbin_peer::CasbinQuery::new(q, true)))
            .collect();
        assert_eq!(got, want[..200], "casbin");
    }
}
