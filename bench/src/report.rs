//! The readable tables, the targets summary and the JSON output.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::alloc::MemDelta;
use crate::measure::{Config, Timing};
use crate::shapes::Shape;
use crate::{CACHED, CASBIN, INTERNED, INTERNED_BATCH, STRING, STRING_BATCH};

pub struct BuildRow {
    pub engine: String,
    pub ms: f64,
    pub mem: MemDelta,
    pub detail: String,
}

pub struct SetReport {
    pub name: String,
    pub note: String,
    pub queries: usize,
    pub allowed: usize,
}

pub struct Row {
    pub set: String,
    pub engine: String,
    pub timing: Timing,
    /// Queries checked against rbac-core's answers.
    pub verified: usize,
    /// Distinct queries timed (the first `timed` of the set).
    pub timed: usize,
}

pub struct ShapeReport {
    pub name: String,
    pub description: String,
    pub facts: Vec<(String, String)>,
    pub builds: Vec<BuildRow>,
    pub sets: Vec<SetReport>,
    pub rows: Vec<Row>,
    pub skipped: Vec<(String, String)>,
    pub cedar_encodings: Vec<(String, String)>,
    pub ours_load_ms: f64,
    pub ours_compile_ms: f64,
    /// rbac-core timed on the first `n` queries of a set: (set, n, string, interned).
    pub baselines: Vec<(String, usize, f64, f64)>,
}

pub fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn mib_num(bytes: i64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// A number with about 3 significant digits.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x >= 100.0 {
        format!("{x:.0}×")
    } else {
        format!("{x:.1}×")
    }
}

impl ShapeReport {
    pub fn new(shape: &Shape) -> ShapeReport {
        ShapeReport {
            name: shape.name.clone(),
            description: shape.description.clone(),
            facts: Vec::new(),
            builds: Vec::new(),
            sets: Vec::new(),
            rows: Vec::new(),
            skipped: Vec::new(),
            cedar_encodings: Vec::new(),
            ours_load_ms: 0.0,
            ours_compile_ms: 0.0,
            baselines: Vec::new(),
        }
    }

    pub fn fact(&mut self, key: &str, value: String) {
        self.facts.push((key.to_owned(), value));
    }

    pub fn skip(&mut self, engine: &str, why: String) {
        eprintln!("[{}] skipping {engine}: {why}", self.name);
        self.skipped.push((engine.to_owned(), why));
    }

    pub fn median(&self, set: &str, engine: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.set == set && r.engine == engine)
            .map(|r| r.timing.median())
    }

    /// rbac-core's (string, interned) medians on the same queries as `row`.
    pub fn base(&self, row: &Row) -> (f64, f64) {
        let full = self
            .sets
            .iter()
            .find(|s| s.name == row.set)
            .is_some_and(|s| s.queries == row.timed);
        if full {
            return (
                self.median(&row.set, STRING).unwrap_or(f64::NAN),
                self.median(&row.set, INTERNED).unwrap_or(f64::NAN),
            );
        }
        self.baselines
            .iter()
            .find(|(s, n, _, _)| *s == row.set && *n == row.timed)
            .map_or((f64::NAN, f64::NAN), |&(_, _, a, b)| (a, b))
    }

    /// The median of `engine` (one of rbac-core's) on the same queries as `row`. For a batch
    /// API, NaN when `row` was timed on a prefix of its set (rbac-core's baselines on a prefix
    /// time the single-check APIs only), so that no ratio is printed for it.
    pub fn base_of(&self, row: &Row, engine: &str) -> f64 {
        match engine {
            STRING => self.base(row).0,
            INTERNED => self.base(row).1,
            _ => {
                let full = self
                    .sets
                    .iter()
                    .any(|s| s.name == row.set && s.queries == row.timed);
                let median = full.then(|| self.median(&row.set, engine)).flatten();
                median.unwrap_or(f64::NAN)
            }
        }
    }

    /// A row by set and engine.
    pub fn row(&self, set: &str, engine: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.set == set && r.engine == engine)
    }

    /// The fastest cedar encoding on a set: (engine, median).
    pub fn cedar_fastest(&self, set: &str) -> Option<(&str, f64)> {
        self.rows
            .iter()
            .filter(|r| r.set == set && r.engine.starts_with("cedar "))
            .map(|r| (r.engine.as_str(), r.timing.median()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n==== {} — {}", self.name, self.description);
        for (k, v) in &self.facts {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = writeln!(
            s,
            "\n  build (source → ready engine; memory = heap the built engine holds, counting allocator)"
        );
        let _ = writeln!(
            s,
            "  {:<32} {:>10} {:>10} {:>10} {:>10}  detail",
            "engine", "build ms", "heap MiB", "peak MiB", "RSS Δ MiB"
        );
        for b in &self.builds {
            let _ = writeln!(
                s,
                "  {:<32} {:>10} {:>10} {:>10} {:>10}  {}",
                b.engine,
                num(b.ms),
                num(mib_num(b.mem.heap_live)),
                num(mib_num(b.mem.heap_peak)),
                num(mib_num(b.mem.rss)),
                b.detail
            );
        }
        for (engine, why) in &self.skipped {
            let _ = writeln!(s, "  skipped {engine}: {why}");
        }
        for set in &self.sets {
            let _ = writeln!(
                s,
                "\n  -- {}: {} queries, {} allowed; {}",
                set.name, set.queries, set.allowed, set.note
            );
            let _ = writeln!(
                s,
                "  {:<32} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>5}",
                "engine (ns per check)",
                "min",
                "median",
                "max",
                "p99",
                "÷string",
                "÷intern",
                "verified",
                "timed",
                "batch"
            );
            for r in self.rows.iter().filter(|r| r.set == set.name) {
                let t = &r.timing;
                let m = t.median();
                let (string, interned) = self.base(r);
                let _ = writeln!(
                    s,
                    "  {:<32} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>5}",
                    r.engine,
                    num(t.min()),
                    num(m),
                    num(t.max()),
                    num(t.p99_ns),
                    ratio(m / string),
                    ratio(m / interned),
                    r.verified,
                    r.timed,
                    t.batch
                );
            }
            for (_, n, a, b) in self.baselines.iter().filter(|b| b.0 == set.name) {
                let _ = writeln!(
                    s,
                    "  (rbac-core on the same first {n} queries: string {} ns, interned {} ns)",
                    num(*a),
                    num(*b)
                );
            }
            if let Some((engine, m)) = self.cedar_fastest(&set.name) {
                let (string, interned) = self
                    .row(&set.name, engine)
                    .map_or((f64::NAN, f64::NAN), |r| self.base(r));
                let _ = writeln!(
                    s,
                    "  fastest cedar encoding: {engine} ({} ns; {} our string API, {} interned, on the same queries)",
                    num(m),
                    ratio(m / string),
                    ratio(m / interned)
                );
            }
        }
        s
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met   " } else { "MISSED" }
}

/// The team's targets, checked against the figures.
pub fn targets(reports: &[ShapeReport]) -> String {
    let mut s = String::from("\n==== targets (medians; \"met\" needs every listed case)\n");
    let mut line = |ok: bool, text: String| {
        let _ = writeln!(s, "  [{}] {text}", verdict(ok));
    };
    for (engine, limit) in [
        (STRING, 50.0),
        (INTERNED, 15.0),
        (STRING_BATCH, 50.0),
        (INTERNED_BATCH, 15.0),
    ] {
        let mut worst: Option<(f64, String)> = None;
        let mut all = Vec::new();
        for r in reports {
            for set in &r.sets {
                if let Some(m) = r.median(&set.name, engine) {
                    all.push(format!("{}/{} {}", r.name, set.name, num(m)));
                    if worst.as_ref().is_none_or(|(w, _)| m > *w) {
                        worst = Some((m, format!("{}/{}", r.name, set.name)));
                    }
                }
            }
        }
        if let Some((w, at)) = worst {
            line(
                w < limit,
                format!(
                    "{engine} median < {limit} ns on every shape: worst {} ns at {at} ({})",
                    num(w),
                    all.join(", ")
                ),
            );
        }
    }
    let small = reports.iter().find(|r| r.name == "small");
    let scale = reports.iter().find(|r| r.name == "scale");
    if let (Some(small), Some(scale)) = (small, scale) {
        for engine in [STRING, INTERNED, STRING_BATCH, INTERNED_BATCH] {
            if let (Some(a), Some(b)) = (small.median("mix", engine), scale.median("mix", engine)) {
                line(
                    b <= 2.0 * a,
                    format!(
                        "scale check ≤ 2× small ({engine}, mix): small {} ns, scale {} ns = {}",
                        num(a),
                        num(b),
                        ratio(b / a)
                    ),
                );
            }
        }
    }
    for (label, want) in [
        (CASBIN, 1000.0),
        (CACHED, 15.0),
        ("cedar (fastest encoding)", 100.0),
    ] {
        for base in [STRING, INTERNED, STRING_BATCH, INTERNED_BATCH] {
            let mut worst: Option<(f64, String)> = None;
            for r in reports {
                for set in &r.sets {
                    let engine = if label.starts_with("cedar") {
                        r.cedar_fastest(&set.name).map(|(e, _)| e.to_owned())
                    } else {
                        Some(label.to_owned())
                    };
                    let Some(row) = engine.and_then(|e| r.row(&set.name, &e)) else {
                        continue;
                    };
                    let x = row.timing.median() / r.base_of(row, base);
                    if x.is_finite() && worst.as_ref().is_none_or(|(w, _)| x < *w) {
                        worst = Some((x, format!("{}/{} ({})", r.name, set.name, row.engine)));
                    }
                }
            }
            if let Some((x, at)) = worst {
                line(
                    x >= want,
                    format!(
                        "≥ {want}× faster than {label} via {base}: smallest ratio {} at {at}",
                        ratio(x)
                    ),
                );
            }
        }
    }
    if let Some(scale) = scale {
        line(
            scale.ours_compile_ms < 5000.0,
            format!(
                "scale snapshot build < 5 s: compile (Policy → Engine) {:.2} s; validation/load before it {:.2} s",
                scale.ours_compile_ms / 1e3,
                scale.ours_load_ms / 1e3
            ),
        );
    }
    s
}

fn timing_json(t: &Timing) -> Value {
    json!({
        "min_ns": t.min(),
        "median_ns": t.median(),
        "max_ns": t.max(),
        "p99_ns": t.p99_ns,
        "pass_ns": t.pass_ns,
        "batch": t.batch,
        "checks_per_pass": t.checks_per_pass,
        "distinct_queries": t.queries,
    })
}

pub fn json(
    reports: &[ShapeReport],
    cfg: &Config,
    timer_ns: f64,
    nproc: &str,
    model: &str,
    quick: bool,
) -> Value {
    let shapes: Vec<Value> = reports
        .iter()
        .map(|r| {
            let sets: Vec<Value> = r
                .sets
                .iter()
                .map(|set| {
                    let finite = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
                    let results: Vec<Value> = r
                        .rows
                        .iter()
                        .filter(|row| row.set == set.name)
                        .map(|row| {
                            let m = row.timing.median();
                            let (string, interned) = r.base(row);
                            json!({
                                "engine": row.engine,
                                "timing": timing_json(&row.timing),
                                "verified_queries": row.verified,
                                "timed_queries": row.timed,
                                "rbac_string_median_same_queries": finite(string),
                                "rbac_interned_median_same_queries": finite(interned),
                                "median_over_string": finite(m / string),
                                "median_over_interned": finite(m / interned),
                            })
                        })
                        .collect();
                    json!({
                        "name": set.name,
                        "note": set.note,
                        "queries": set.queries,
                        "allowed": set.allowed,
                        "cedar_fastest": r.cedar_fastest(&set.name).map(|(e, _)| e),
                        "results": results,
                    })
                })
                .collect();
            json!({
                "name": r.name,
                "description": r.description,
                "facts": r.facts.iter().map(|(k, v)| json!({"what": k, "value": v})).collect::<Vec<_>>(),
                "rbac_load_ms": r.ours_load_ms,
                "rbac_compile_ms": r.ours_compile_ms,
                "builds": r.builds.iter().map(|b| json!({
                    "engine": b.engine,
                    "build_ms": b.ms,
                    "heap_live_bytes": b.mem.heap_live,
                    "heap_peak_bytes": b.mem.heap_peak,
                    "rss_delta_bytes": b.mem.rss,
                    "detail": b.detail,
                })).collect::<Vec<_>>(),
                "skipped": r.skipped.iter().map(|(e, w)| json!({"engine": e, "why": w})).collect::<Vec<_>>(),
                "cedar_encodings": r.cedar_encodings.iter().map(|(n, d)| json!({"name": n, "encoding": d})).collect::<Vec<_>>(),
                "query_sets": sets,
            })
        })
        .collect();
    json!({
        "machine": {"nproc": nproc, "cpu": model},
        "config": {
            "quick": quick,
            "passes": cfg.passes,
            "pass_time_ms": cfg.pass_time.as_millis() as u64,
            "verify_budget_ms": cfg.verify_budget.as_millis() as u64,
            "time_first": cfg.time_first,
            "clock_read_ns": timer_ns,
            "memory": "counting global allocator: heap bytes allocated while building and still live; RSS delta from /proc/self/statm",
        },
        "shapes": shapes,
        "targets": targets(reports),
    })
}
