//! Timing of checks: several passes over a query set, latencies measured in batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Passes per (engine, query set).
    pub passes: usize,
    /// Wanted duration of one pass.
    pub pass_time: Duration,
    /// Warm-up and calibration time before the passes.
    pub calibration: Duration,
    /// Fewest checks in a pass, however slow the engine.
    pub min_checks: usize,
    /// Time allowed to compute the answers a slow engine is verified on, per query set.
    pub verify_budget: Duration,
    /// Fewest queries of a mixed set a slow engine is verified (and timed) on.
    pub verify_min: usize,
    /// Time every engine on at most this many queries of each set, from the first (all are
    /// still verified): `--first`, to see a mix whose working set stays in cache.
    pub time_first: Option<usize>,
}

/// The figures of one (engine, query set).
#[derive(Debug, Clone)]
pub struct Timing {
    /// ns per check of each pass (total time of the pass / checks).
    pub pass_ns: Vec<f64>,
    /// 99th percentile of per-check latency, from batches (batch time / batch size).
    pub p99_ns: f64,
    /// Checks per timed batch.
    pub batch: usize,
    /// Checks per pass.
    pub checks_per_pass: usize,
    /// Distinct queries cycled through.
    pub queries: usize,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.pass_ns.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// The cost of reading the clock twice, in ns (median of many tries).
pub fn timer_overhead_ns() -> f64 {
    let mut v: Vec<u64> = (0..10_001)
        .map(|_| {
            let t = Instant::now();
            black_box(Instant::now()).duration_since(t).as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Times `check` over `queries` (cycled), in `cfg.passes` passes.
///
/// Every pass starts at the first query, so all passes see the same checks. Per-check latency is
/// measured on batches of `batch` consecutive checks (1 for slow engines, up to 64 for fast
/// ones) to keep the clock's own cost out of the figure; `timer_ns` (one clock read) is taken
/// off each batch.
pub fn time<Q>(
    queries: &[Q],
    cfg: &Config,
    timer_ns: f64,
    mut check: impl FnMut(&Q) -> bool,
) -> Timing {
    assert!(!queries.is_empty(), "no queries to time");
    let n = queries.len();
    // Warm up and calibrate: cycle until the calibration time is spent (at least one check).
    let start = Instant::now();
    let mut done = 0usize;
    let mut i = 0usize;
    let mut acc = 0u64;
    let mut step = 1usize;
    loop {
        for _ in 0..step {
            acc ^= u64::from(check(black_box(&queries[i])));
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        done += step;
        if start.elapsed() >= cfg.calibration {
            break;
        }
        step = (step * 2).min(4096);
    }
    let per_check = start.elapsed().as_nanos() as f64 / done as f64;
    // Batches of ~4 µs, 1..=64 checks.
    let batch = ((4_000.0 / per_check) as usize).clamp(1, 64);
    let wanted = (cfg.pass_time.as_nanos() as f64 / per_check) as usize;
    let batches = wanted.max(cfg.min_checks).div_ceil(batch).max(1);
    let checks_per_pass = batches * batch;
    let mut latencies: Vec<f32> = Vec::with_capacity(batches * cfg.passes);
    let mut pass_ns = Vec::with_capacity(cfg.passes);
    for _ in 0..cfg.passes {
        let mut i = 0usize;
        let pass_start = Instant::now();
        let mut last = pass_start;
        for _ in 0..batches {
            for _ in 0..batch {
                acc ^= u64::from(check(black_box(&queries[i])));
                i = if i + 1 == n { 0 } else { i + 1 };
            }
            let now = Instant::now();
            let ns = now.duration_since(last).as_nanos() as f64 - timer_ns;
            latencies.push((ns.max(0.0) / batch as f64) as f32);
            last = now;
        }
        let total = last.duration_since(pass_start).as_nanos() as f64 - timer_ns * batches as f64;
        pass_ns.push(total.max(0.0) / checks_per_pass as f64);
    }
    black_box(acc);
    let p99_ns = percentile(&mut latencies, 0.99);
    Timing {
        pass_ns,
        p99_ns,
        batch,
        checks_per_pass,
        queries: n,
    }
}

/// Times `batch` (a batch API: the number of queries of a slice it allows) over `queries`,
/// cycled in slices of `size`, in `cfg.passes` passes: as [`time`], with each slice one timed
/// batch, so that p99 is that of a slice's time per query.
pub fn time_batches<Q>(
    queries: &[Q],
    size: usize,
    cfg: &Config,
    timer_ns: f64,
    mut batch: impl FnMut(&[Q]) -> usize,
) -> Timing {
    assert!(!queries.is_empty() && size > 0, "nothing to time");
    let n = queries.len();
    let slice = |i: usize| &queries[i..(i + size).min(n)];
    let next = |i: usize| if i + size >= n { 0 } else { i + size };
    // Warm up and calibrate as `time` does.
    let start = Instant::now();
    let (mut done, mut i, mut acc) = (0usize, 0usize, 0usize);
    while done == 0 || start.elapsed() < cfg.calibration {
        let s = slice(i);
        acc ^= batch(black_box(s));
        done += s.len();
        i = next(i);
    }
    let per_check = start.elapsed().as_nanos() as f64 / done as f64;
    let wanted = (cfg.pass_time.as_nanos() as f64 / per_check) as usize;
    let wanted = wanted.max(cfg.min_checks);
    let mut latencies: Vec<f32> = Vec::new();
    let mut pass_ns = Vec::with_capacity(cfg.passes);
    let mut checks_per_pass = 0;
    for _ in 0..cfg.passes {
        let (mut i, mut checks, mut batches) = (0usize, 0usize, 0usize);
        let pass_start = Instant::now();
        let mut last = pass_start;
        while checks < wanted {
            let s = slice(i);
            acc ^= batch(black_box(s));
            let now = Instant::now();
            let ns = now.duration_since(last).as_nanos() as f64 - timer_ns;
            latencies.push((ns.max(0.0) / s.len() as f64) as f32);
            last = now;
            checks += s.len();
            batches += 1;
            i = next(i);
        }
        let total = last.duration_since(pass_start).as_nanos() as f64 - timer_ns * batches as f64;
        pass_ns.push(total.max(0.0) / checks as f64);
        checks_per_pass = checks;
    }
    black_box(acc);
    let p99_ns = percentile(&mut latencies, 0.99);
    Timing {
        pass_ns,
        p99_ns,
        batch: size,
        checks_per_pass,
        queries: n,
    }
}

fn percentile(v: &mut [f32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((v.len() as f64 - 1.0) * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*x)
}

/// Answers of `check` on a prefix of `queries`: all of them when `all`, else as many as fit in
/// `cfg.verify_budget` (at least `cfg.verify_min`, at most all).
pub fn answers<Q>(
    queries: &[Q],
    all: bool,
    cfg: &Config,
    mut check: impl FnMut(&Q) -> bool,
) -> Vec<bool> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        if !all && out.len() >= cfg.verify_min && start.elapsed() > cfg.verify_budget {
            break;
        }
        out.push(check(q));
    }
    out
}
