//! The retention planner: which backups a policy keeps and which it deletes, and why.
//!
//! A [`RetentionPolicy`] keeps the latest backup of each of the last `daily` UTC days, `weekly`
//! ISO weeks and `monthly` calendar months, counting back from `now` (the current day, week
//! and month are the first bucket), and/or caps the age of what is kept (`max_age`). With only
//! `max_age`, every backup younger than it is kept. Planning is a pure function over
//! [`BackupSummary`] values, per scope, so `prune --dry-run` and a real prune print the same
//! plan and a second run of the same plan deletes nothing (the planner is idempotent).
//!
//! Safety rules, applied after the policy's choice and stronger than it:
//! - an incremental that is kept keeps its whole chain (parent, grandparent, … down to the full
//!   backup), whatever its age: a chain must restore exactly;
//! - the newest backup of each scope (and so its chain) is always kept, so a policy can never
//!   leave a scope without a restore point, even when backups stopped long ago;
//! - a backup dated after `now` (clock skew) is kept, not judged;
//! - an incremental whose parent is not in the listing is kept and reported, never deleted on a
//!   guess.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use rbac_admin::backup::retention::{plan, RetentionPolicy};
//!
//! let policy: RetentionPolicy = "daily=7,weekly=4,monthly=12,max-age=400d".parse().unwrap();
//! assert_eq!(policy.to_string(), "daily=7,weekly=4,monthly=12,max-age=400d");
//! let now = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
//! let plan = plan(&[], &policy, now);
//! assert!(plan.deletions().next().is_none());
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::model::{BackupId, BackupKind, BackupSummary, Scope};

/// How long backups are kept. The text form (used by schedules and the CLI) is a comma list of
/// `daily=N`, `weekly=N`, `monthly=N` and `max-age=DURATION` (`90d`, `12w`, `36h`), e.g.
/// `daily=7,weekly=4,monthly=12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Keep the latest backup of each of the last N UTC days (today included).
    pub daily: u32,
    /// Keep the latest backup of each of the last N ISO weeks (this week included).
    pub weekly: u32,
    /// Keep the latest backup of each of the last N calendar months (this month included).
    pub monthly: u32,
    /// Nothing older than this is kept by the policy (chains and the newest backup excepted);
    /// with no bucket counts, everything younger is kept. In seconds.
    pub max_age_secs: Option<u64>,
}

/// A retention specification that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// The policy keeps nothing; that is almost certainly a mistake.
    #[error(
        "retention policy keeps nothing: set at least one of daily=N, weekly=N, monthly=N or max-age=DURATION"
    )]
    Empty,
    /// A part of the text form is not understood.
    #[error(
        "invalid retention `{part}`: {why} (expected e.g. `daily=7,weekly=4,monthly=12,max-age=90d`)"
    )]
    Invalid {
        /// The offending part.
        part: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl RetentionPolicy {
    /// The maximum age, if any.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_secs
            .and_then(|s| i64::try_from(s).ok())
            .map(Duration::seconds)
    }

    /// Rejects a policy that keeps nothing.
    pub fn validate(&self) -> Result<(), RetentionError> {
        if self.daily == 0 && self.weekly == 0 && self.monthly == 0 && self.max_age_secs.is_none() {
            return Err(RetentionError::Empty);
        }
        Ok(())
    }
}

fn parse_duration(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let secs = n.checked_mul(scale)?;
    // Beyond what chrono can add to a date: refuse rather than overflow later.
    (secs > 0 && secs <= 100 * 366 * 86_400).then_some(secs)
}

fn format_duration(secs: u64) -> String {
    for (unit, scale) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(scale) {
            return format!("{}{unit}", secs / scale);
        }
    }
    format!("{secs}s")
}

impl FromStr for RetentionPolicy {
    type Err = RetentionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = RetentionPolicy::default();
        let mut seen = HashSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let invalid = |why| RetentionError::Invalid {
                part: part.chars().take(64).collect(),
                why,
            };
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| invalid("expected KEY=VALUE"))?;
            let key = key.trim();
            let value = value.trim();
            if !seen.insert(key.to_owned()) {
                return Err(invalid("given twice"));
            }
            let count = || {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| invalid("expected a count from 0 to 100000"))
            };
            match key {
                "daily" => policy.daily = count()?,
                "weekly" => policy.weekly = count()?,
                "monthly" => policy.monthly = count()?,
                "max-age" | "max_age" => {
                    policy.max_age_secs = Some(parse_duration(value).ok_or_else(|| {
                        invalid("expected a duration such as 90d, 12w, 36h (at most 100 years)")
                    })?);
                }
                _ => return Err(invalid("unknown key (use daily, weekly, monthly, max-age)")),
            }
        }
        policy.validate()?;
        Ok(policy)
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.daily > 0 {
            parts.push(format!("daily={}", self.daily));
        }
        if self.weekly > 0 {
            parts.push(format!("weekly={}", self.weekly));
        }
        if self.monthly > 0 {
            parts.push(format!("monthly={}", self.monthly));
        }
        if let Some(secs) = self.max_age_secs {
            parts.push(format!("max-age={}", format_duration(secs)));
        }
        f.write_str(&parts.join(","))
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum KeepReason {
    /// The latest backup of this UTC day.
    Daily {
        /// The day, `YYYY-MM-DD`.
        day: String,
    },
    /// The latest backup of this ISO week.
    Weekly {
        /// The week, `YYYY-Www`.
        week: String,
    },
    /// The latest backup of this month.
    Monthly {
        /// The month, `YYYY-MM`.
        month: String,
    },
    /// Younger than the maximum age (policy with `max-age` only).
    WithinMaxAge,
    /// The newest backup of its scope: never deleted.
    NewestOfScope,
    /// A kept incremental depends on it.
    ChainOf {
        /// The kept incremental that needs it.
        dependent: BackupId,
    },
    /// Dated after the planning time (clock skew); not judged.
    InTheFuture,
    /// An incremental whose parent is not listed: kept, and worth a look.
    ParentMissing {
        /// The parent named by the incremental.
        parent: BackupId,
    },
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Daily { day } => write!(f, "daily {day}"),
            KeepReason::Weekly { week } => write!(f, "weekly {week}"),
            KeepReason::Monthly { month } => write!(f, "monthly {month}"),
            KeepReason::WithinMaxAge => f.write_str("within max-age"),
            KeepReason::NewestOfScope => f.write_str("newest of scope"),
            KeepReason::ChainOf { dependent } => write!(f, "needed by {dependent}"),
            KeepReason::InTheFuture => f.write_str("dated in the future"),
            KeepReason::ParentMissing { parent } => {
                write!(f, "parent {parent} missing (kept for inspection)")
            }
        }
    }
}

/// Why a backup is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Older than the maximum age and nothing needs it.
    OlderThanMaxAge,
    /// Not the latest of any kept day, week or month, and nothing needs it.
    NotSelected,
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeleteReason::OlderThanMaxAge => "older than max-age",
            DeleteReason::NotSelected => "not selected by any rule",
        })
    }
}

/// Keep or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Keep, for these reasons (at least one).
    Keep {
        /// Every rule that keeps it.
        reasons: Vec<KeepReason>,
    },
    /// Delete, for this reason.
    Delete {
        /// Why.
        reason: DeleteReason,
    },
}

/// The decision about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The backup.
    pub id: BackupId,
    /// Its scope.
    pub scope: Scope,
    /// Full or incremental.
    pub kind: BackupKind,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Stored bytes (what deleting it frees).
    pub size: u64,
    /// Keep or delete, and why.
    #[serde(flatten)]
    pub action: Action,
}

impl Decision {
    /// Whether the plan keeps this backup.
    pub fn is_kept(&self) -> bool {
        matches!(self.action, Action::Keep { .. })
    }
}

/// The plan: one decision per backup, newest first within each scope, scopes in text order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    /// The policy applied.
    pub policy: RetentionPolicy,
    /// The planning time.
    pub now: DateTime<Utc>,
    /// Every backup given, with its fate.
    pub decisions: Vec<Decision>,
}

impl RetentionPlan {
    /// The backups to delete. Deleting them in this order (newest first) never leaves a kept
    /// backup without its chain at any point, since no kept backup depends on any of them.
    pub fn deletions(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.is_kept())
    }

    /// The backups kept.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.is_kept())
    }

    /// Bytes the deletions free.
    pub fn freed_bytes(&self) -> u64 {
        self.deletions().map(|d| d.size).sum()
    }
}

impl fmt::Display for RetentionPlan {
    /// One line a backup: `keep|delete  ID  SCOPE  KIND  CREATED  reasons`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.decisions {
            let (verb, why) = match &d.action {
                Action::Keep { reasons } => (
                    "keep",
                    reasons
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Action::Delete { reason } => ("delete", reason.to_string()),
            };
            writeln!(
                f,
                "{verb:<6}  {}  {}  {}  {}  {why}",
                d.id,
                d.scope,
                d.kind,
                d.created_at.format("%Y-%m-%dT%H:%M:%SZ")
            )?;
        }
        Ok(())
    }
}

/// Plans retention for `backups` (any order, any mix of scopes) under `policy` at `now`.
///
/// Pure and deterministic: the same input gives the same plan, and planning again over only
/// the kept backups deletes nothing.
pub fn plan(
    backups: &[BackupSummary],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> RetentionPlan {
    let mut by_scope: HashMap<&Scope, Vec<&BackupSummary>> = HashMap::new();
    for b in backups {
        by_scope.entry(&b.scope).or_default().push(b);
    }
    let mut scopes: Vec<&Scope> = by_scope.keys().copied().collect();
    scopes.sort_by_key(|s| s.to_string());
    let mut decisions = Vec::with_capacity(backups.len());
    for scope in scopes {
        let mut group = by_scope.remove(scope).unwrap_or_default();
        // Newest first; the id breaks ties so the plan never depends on input order.
        group.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        decisions.extend(plan_scope(&group, policy, now));
    }
    RetentionPlan {
        policy: *policy,
        now,
        decisions,
    }
}

/// The bucket keys of a time: day, ISO week and month, as their displayed text.
fn day_key(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

fn week_key(t: DateTime<Utc>) -> (i32, u32) {
    let w = t.iso_week();
    (w.year(), w.week())
}

fn month_key(t: DateTime<Utc>) -> (i32, u32) {
    (t.year(), t.month())
}

/// The `n` buckets counting back from `now`'s bucket: bucket index 0 is `now`'s.
fn day_index(now: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    (day_key(now) - day_key(t)).num_days()
}

fn week_index(now: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    // Monday of each ISO week, then whole weeks between them.
    let monday = |t: DateTime<Utc>| {
        let d = t.date_naive();
        d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
    };
    (monday(now) - monday(t)).num_days() / 7
}

fn month_index(now: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    (i64::from(now.year()) * 12 + i64::from(now.month0()))
        - (i64::from(t.year()) * 12 + i64::from(t.month0()))
}

fn plan_scope(
    group: &[&BackupSummary],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut reasons: Vec<BTreeSet<KeepReason>> = vec![BTreeSet::new(); group.len()];
    let max_age = policy.max_age();
    let too_old = |b: &BackupSummary| max_age.is_some_and(|age| now - b.created_at > age);
    let has_buckets = policy.daily > 0 || policy.weekly > 0 || policy.monthly > 0;

    // The policy's own choice. `group` is newest first, so the first backup met in a bucket
    // is that bucket's latest.
    let mut days = HashSet::new();
    let mut weeks = HashSet::new();
    let mut months = HashSet::new();
    for (i, b) in group.iter().enumerate() {
        let t = b.created_at;
        if t > now {
            reasons[i].insert(KeepReason::InTheFuture);
            continue;
        }
        if too_old(b) {
            continue;
        }
        if !has_buckets {
            reasons[i].insert(KeepReason::WithinMaxAge);
            continue;
        }
        if day_index(now, t) < i64::from(policy.daily) && days.insert(day_key(t)) {
            reasons[i].insert(KeepReason::Daily {
                day: day_key(t).format("%Y-%m-%d").to_string(),
            });
        }
        if week_index(now, t) < i64::from(policy.weekly) && weeks.insert(week_key(t)) {
            let (y, w) = week_key(t);
            reasons[i].insert(KeepReason::Weekly {
                week: format!("{y}-W{w:02}"),
            });
        }
        if month_index(now, t) < i64::from(policy.monthly) && months.insert(month_key(t)) {
            let (y, m) = month_key(t);
            reasons[i].insert(KeepReason::Monthly {
                month: format!("{y}-{m:02}"),
            });
        }
    }
    // The newest restore point of the scope, whatever the policy says.
    if let Some(first) = reasons.first_mut() {
        first.insert(KeepReason::NewestOfScope);
    }

    // Chains: every kept incremental keeps its parents, transitively. Walking from each kept
    // backup up its parent links visits each link once per dependent at most; the `visited`
    // set stops at a parent already kept for this reason, and at cycles in corrupt listings.
    let index: HashMap<&BackupId, usize> =
        group.iter().enumerate().map(|(i, b)| (&b.id, i)).collect();
    let roots: Vec<usize> = (0..group.len())
        .filter(|&i| !reasons[i].is_empty())
        .collect();
    let mut visited = vec![false; group.len()];
    for root in roots {
        let mut at = root;
        loop {
            if visited[at] {
                break;
            }
            visited[at] = true;
            let b = group[at];
            let Some(parent) = b
                .parent
                .as_ref()
                .filter(|_| b.kind == BackupKind::Incremental)
            else {
                break;
            };
            match index.get(parent) {
                Some(&p) => {
                    reasons[p].insert(KeepReason::ChainOf {
                        dependent: b.id.clone(),
                    });
                    at = p;
                }
                None => {
                    reasons[at].insert(KeepReason::ParentMissing {
                        parent: parent.clone(),
                    });
                    break;
                }
            }
        }
    }

    group
        .iter()
        .zip(reasons)
        .map(|(b, reasons)| Decision {
            id: b.id.clone(),
            scope: b.scope.clone(),
            kind: b.kind,
            created_at: b.created_at,
            size: b.size,
            action: if reasons.is_empty() {
                Action::Delete {
                    reason: if too_old(b) {
                        DeleteReason::OlderThanMaxAge
                    } else {
                        DeleteReason::NotSelected
                    },
                }
            } else {
                Action::Keep {
                    reasons: reasons.into_iter().collect(),
                }
            },
        })
        .collect()
}

/// Applies `policy` to the backups `actor` may read (only those of `scope` when given):
/// plans, then, unless `dry_run`, deletes what the plan deletes, newest first, each deletion
/// checked for `system.backup.delete` and logged by the service. Returns the plan. Stops at
/// the first failed deletion (what was deleted before it stays deleted and logged).
pub async fn prune(
    service: &super::BackupService,
    actor: &super::Actor<'_>,
    scope: Option<&Scope>,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<RetentionPlan, super::BackupError> {
    policy
        .validate()
        .map_err(|e| super::BackupError::InvalidInput(e.to_string()))?;
    if let Some(scope) = scope {
        // Deny early and clearly, before listing anything.
        actor.require(super::Operation::Delete, scope)?;
    }
    let backups: Vec<BackupSummary> = service
        .list(actor)
        .await?
        .into_iter()
        .filter(|b| scope.is_none_or(|s| &b.scope == s))
        .collect();
    let plan = plan(&backups, policy, now);
    if !dry_run {
        for d in plan.deletions() {
            service.delete(actor, &d.id).await?;
            tracing::info!(target: "rbac::backup", backup = %d.id, scope = %d.scope, "pruned");
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "tests"
    )]

    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn id(at: DateTime<Utc>, n: u32) -> BackupId {
        format!("{}-{n:08x}", at.format("%Y%m%dT%H%M%SZ"))
            .parse()
            .unwrap()
    }

    fn backup(at: DateTime<Utc>, n: u32, scope: &str, parent: Option<&BackupId>) -> BackupSummary {
        BackupSummary {
            id: id(at, n),
            kind: if parent.is_some() {
                BackupKind::Incremental
            } else {
                BackupKind::Full
            },
            parent: parent.cloned(),
            scope: scope.parse().unwrap(),
            created_at: at,
            finished_at: at + Duration::seconds(5),
            size: 1000,
            rows: 10,
            encrypted: false,
        }
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn kept_ids(plan: &RetentionPlan) -> BTreeSet<String> {
        plan.kept().map(|d| d.id.to_string()).collect()
    }

    #[test]
    fn text_form_round_trips_and_rejects_nonsense() {
        for text in [
            "daily=7",
            "daily=7,weekly=4,monthly=12,max-age=90d",
            "max-age=36h",
            "weekly=1,max-age=2w",
        ] {
            let p: RetentionPolicy = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        assert_eq!(
            "max_age=1d, daily=2"
                .parse::<RetentionPolicy>()
                .unwrap()
                .to_string(),
            "daily=2,max-age=1d"
        );
        assert_eq!("".parse::<RetentionPolicy>(), Err(RetentionError::Empty));
        assert_eq!(
            "daily=0".parse::<RetentionPolicy>(),
            Err(RetentionError::Empty)
        );
        for bad in [
            "daily",
            "daily=-1",
            "daily=x",
            "hourly=3",
            "daily=1,daily=2",
            "max-age=10",
            "max-age=0d",
            "max-age=99999999w",
        ] {
            assert!(
                matches!(
                    bad.parse::<RetentionPolicy>(),
                    Err(RetentionError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn daily_keeps_the_latest_of_each_recent_day_and_the_chain_it_needs() {
        // Nightly fulls at 02:00, incrementals at 08:00 and 14:00 on top of each day's full.
        let mut all = Vec::new();
        let mut n = 0;
        for day in 1..=10 {
            n += 1;
            let full = backup(at(2026, 11, day, 2), n, "all", None);
            n += 1;
            let inc1 = backup(at(2026, 11, day, 8), n, "all", Some(&full.id));
            n += 1;
            let inc2 = backup(at(2026, 11, day, 14), n, "all", Some(&inc1.id));
            all.extend([full, inc1, inc2]);
        }
        let policy: RetentionPolicy = "daily=3".parse().unwrap();
        let p = plan(&all, &policy, at(2026, 11, 10, 20));
        // Days 8, 9, 10: the 14:00 incremental of each, and its chain (08:00 and the full).
        let expected: BTreeSet<String> = all
            .iter()
            .filter(|b| b.created_at.day() >= 8)
            .map(|b| b.id.to_string())
            .collect();
        assert_eq!(kept_ids(&p), expected);
        let full_of_day_8 = p
            .decisions
            .iter()
            .find(|d| d.created_at == at(2026, 11, 8, 2))
            .unwrap();
        assert!(
            matches!(&full_of_day_8.action, Action::Keep { reasons } if matches!(reasons[..], [KeepReason::ChainOf { .. }]))
        );
        assert_eq!(p.deletions().count(), 21);
        assert_eq!(p.freed_bytes(), 21_000);
        assert!(p.deletions().all(|d| matches!(
            d.action,
            Action::Delete {
                reason: DeleteReason::NotSelected
            }
        )));
    }

    #[test]
    fn counting_back_from_now_leaves_gaps_empty() {
        // Backups on Nov 1 and Nov 20 only; daily=7 at Nov 23 covers Nov 17..23: only Nov 20.
        let a = backup(at(2026, 11, 1, 2), 1, "all", None);
        let b = backup(at(2026, 11, 20, 2), 2, "all", None);
        let p = plan(
            &[a.clone(), b.clone()],
            &"daily=7".parse().unwrap(),
            at(2026, 11, 23, 2),
        );
        assert_eq!(kept_ids(&p), BTreeSet::from([b.id.to_string()]));
        // monthly=1 keeps the latest of November only; weekly=4 reaches back to the week of Nov 2.
        let p = plan(
            &[a.clone(), b.clone()],
            &"weekly=4".parse().unwrap(),
            at(2026, 11, 23, 2),
        );
        assert_eq!(kept_ids(&p), BTreeSet::from([b.id.to_string()]));
        let p = plan(
            &[a.clone(), b.clone()],
            &"weekly=5".parse().unwrap(),
            at(2026, 11, 23, 2),
        );
        assert_eq!(p.deletions().count(), 0);
    }

    #[test]
    fn weekly_and_monthly_use_iso_weeks_and_calendar_months() {
        // 2026-01-01 is a Thursday in ISO week 2026-W01; 2025-12-29 (Monday) is in it too.
        let mon = backup(at(2025, 12, 29, 2), 1, "all", None);
        let wed = backup(at(2025, 12, 31, 2), 2, "all", None);
        let thu = backup(at(2026, 1, 1, 2), 3, "all", None);
        let now = at(2026, 1, 2, 12);
        let p = plan(
            &[mon.clone(), wed.clone(), thu.clone()],
            &"weekly=1".parse().unwrap(),
            now,
        );
        assert_eq!(kept_ids(&p), BTreeSet::from([thu.id.to_string()]));
        let p = plan(
            &[mon.clone(), wed.clone(), thu.clone()],
            &"monthly=2".parse().unwrap(),
            now,
        );
        assert_eq!(
            kept_ids(&p),
            BTreeSet::from([wed.id.to_string(), thu.id.to_string()])
        );
        let reasons: Vec<String> = p
            .kept()
            .map(|d| d.action.clone())
            .map(|a| match a {
                Action::Keep { reasons } => reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(";"),
                Action::Delete { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(
            reasons,
            ["monthly 2026-01;newest of scope", "monthly 2025-12"]
        );
    }

    #[test]
    fn max_age_caps_and_alone_keeps_everything_younger() {
        let old = backup(at(2026, 8, 1, 2), 1, "all", None);
        let mid = backup(at(2026, 10, 30, 2), 2, "all", None);
        let new = backup(at(2026, 11, 20, 2), 3, "all", None);
        let now = at(2026, 11, 23, 0);
        let all = [old.clone(), mid.clone(), new.clone()];
        let p = plan(&all, &"max-age=30d".parse().unwrap(), now);
        assert_eq!(
            kept_ids(&p),
            BTreeSet::from([mid.id.to_string(), new.id.to_string()])
        );
        assert!(matches!(
            p.decisions.iter().find(|d| d.id == old.id).unwrap().action,
            Action::Delete {
                reason: DeleteReason::OlderThanMaxAge
            }
        ));
        // monthly=12 would keep August; max-age=60d caps it.
        let p = plan(&all, &"monthly=12,max-age=60d".parse().unwrap(), now);
        assert_eq!(
            kept_ids(&p),
            BTreeSet::from([mid.id.to_string(), new.id.to_string()])
        );
    }

    #[test]
    fn the_newest_backup_of_a_scope_survives_any_policy() {
        // Backups stopped a year ago: max-age would delete them all, but the newest stays, with
        // its chain.
        let full = backup(at(2025, 10, 1, 2), 1, "tenant:acme", None);
        let inc = backup(at(2025, 10, 2, 2), 2, "tenant:acme", Some(&full.id));
        let older = backup(at(2025, 9, 1, 2), 3, "tenant:acme", None);
        let p = plan(
            &[full.clone(), inc.clone(), older.clone()],
            &"max-age=30d".parse().unwrap(),
            at(2026, 11, 23, 0),
        );
        assert_eq!(
            kept_ids(&p),
            BTreeSet::from([full.id.to_string(), inc.id.to_string()])
        );
    }

    #[test]
    fn scopes_are_planned_separately() {
        let a1 = backup(at(2026, 11, 22, 2), 1, "tenant:a", None);
        let a2 = backup(at(2026, 11, 22, 3), 2, "tenant:a", None);
        let b1 = backup(at(2026, 11, 22, 1), 3, "tenant:b", None);
        let p = plan(
            &[a1.clone(), a2.clone(), b1.clone()],
            &"daily=1".parse().unwrap(),
            at(2026, 11, 22, 12),
        );
        assert_eq!(
            kept_ids(&p),
            BTreeSet::from([a2.id.to_string(), b1.id.to_string()])
        );
        let scopes: Vec<String> = p.decisions.iter().map(|d| d.scope.to_string()).collect();
        assert_eq!(scopes, ["tenant:a", "tenant:a", "tenant:b"]);
    }

    #[test]
    fn missing_parents_and_future_backups_are_kept_and_reported() {
        let ghost = id(at(2026, 1, 1, 0), 99);
        let orphan = backup(at(2026, 3, 1, 2), 1, "all", Some(&ghost));
        let newer = backup(at(2026, 11, 22, 2), 2, "all", None);
        let future = backup(at(2027, 1, 1, 2), 3, "all", None);
        let p = plan(
            &[orphan.clone(), newer.clone(), future.clone()],
            &"daily=1".parse().unwrap(),
            at(2026, 11, 22, 12),
        );
        // The orphan is not selected by the policy: it is deleted, since nothing kept needs it.
        assert!(
            !p.decisions
                .iter()
                .find(|d| d.id == orphan.id)
                .unwrap()
                .is_kept()
        );
        // A kept orphan (here: the newest) says why it is suspicious.
        let p = plan(
            std::slice::from_ref(&orphan),
            &"daily=1".parse().unwrap(),
            at(2026, 11, 22, 12),
        );
        assert!(
            matches!(&p.decisions[0].action, Action::Keep { reasons } if reasons.contains(&KeepReason::ParentMissing { parent: ghost.clone() }))
        );
        let p = plan(
            &[newer.clone(), future.clone()],
            &"daily=1".parse().unwrap(),
            at(2026, 11, 22, 12),
        );
        assert_eq!(p.deletions().count(), 0);
    }

    #[test]
    fn the_plan_prints_one_line_per_backup() {
        let full = backup(at(2026, 11, 21, 2), 1, "all", None);
        let inc = backup(at(2026, 11, 22, 2), 2, "all", Some(&full.id));
        let old = backup(at(2026, 10, 1, 2), 3, "all", None);
        let p = plan(
            &[full, inc, old],
            &"daily=1".parse().unwrap(),
            at(2026, 11, 22, 12),
        );
        assert_eq!(
            p.to_string(),
            "keep    20261122T020000Z-00000002  all  incremental  2026-11-22T02:00:00Z  daily 2026-11-22; newest of scope\n\
             keep    20261121T020000Z-00000001  all  full  2026-11-21T02:00:00Z  needed by 20261122T020000Z-00000002\n\
             delete  20261001T020000Z-00000003  all  full  2026-10-01T02:00:00Z  not selected by any rule\n"
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["decisions"][2]["action"], "delete");
        assert_eq!(json["decisions"][2]["reason"], "not_selected");
        assert_eq!(json["decisions"][1]["reasons"][0]["rule"], "chain_of");
    }

    /// Random histories: several scopes, backups every few hours over ~4 months, each either a
    /// full or an incremental on the scope's previous backup (so chains can be long).
    fn history() -> impl Strategy<Value = (Vec<BackupSummary>, RetentionPolicy, i64)> {
        let step = (1u32..72, any::<bool>(), 0usize..3);
        (
            proptest::collection::vec(step, 0..60),
            (0u32..5, 0u32..4, 0u32..4, proptest::option::of(1u64..150)),
            0i64..200,
        )
            .prop_filter_map("empty policy", |(steps, (d, w, m, age), extra_hours)| {
                let policy = RetentionPolicy {
                    daily: d,
                    weekly: w,
                    monthly: m,
                    max_age_secs: age.map(|days| days * 86_400),
                };
                policy.validate().ok()?;
                let scopes = ["all", "tenant:acme", "modules:finance"];
                let mut t = at(2026, 7, 1, 0);
                let mut last: [Option<BackupId>; 3] = [None, None, None];
                let mut out = Vec::new();
                for (n, (hours, incremental, s)) in steps.into_iter().enumerate() {
                    t += Duration::hours(i64::from(hours));
                    let parent = if incremental { last[s].clone() } else { None };
                    let b = backup(t, n as u32, scopes[s], parent.as_ref());
                    last[s] = Some(b.id.clone());
                    out.push(b);
                }
                Some((out, policy, extra_hours))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn kept_incrementals_keep_their_whole_chain((backups, policy, extra) in history()) {
            let now = backups.iter().map(|b| b.created_at).max().unwrap_or(at(2026, 7, 1, 0)) + Duration::hours(extra);
            let p = plan(&backups, &policy, now);
            prop_assert_eq!(p.decisions.len(), backups.len());
            let kept: HashSet<&BackupId> = p.kept().map(|d| &d.id).collect();
            let by_id: HashMap<&BackupId, &BackupSummary> = backups.iter().map(|b| (&b.id, b)).collect();
            for id in &kept {
                let mut b = by_id[id];
                while let Some(parent) = &b.parent {
                    prop_assert!(kept.contains(parent), "{} kept but its ancestor {} is not", id, parent);
                    b = by_id[parent];
                }
                // Every chain ends at a full backup that is kept too.
                prop_assert_eq!(b.kind, BackupKind::Full);
            }
        }

        #[test]
        fn the_newest_restore_point_and_everything_policy_selected_survive((backups, policy, extra) in history()) {
            let now = backups.iter().map(|b| b.created_at).max().unwrap_or(at(2026, 7, 1, 0)) + Duration::hours(extra);
            let p = plan(&backups, &policy, now);
            let kept: HashSet<&BackupId> = p.kept().map(|d| &d.id).collect();
            for scope in ["all", "tenant:acme", "modules:finance"] {
                let scope: Scope = scope.parse().unwrap();
                let mine: Vec<&BackupSummary> = backups.iter().filter(|b| b.scope == scope).collect();
                // The newest backup of the scope is kept, and with it (chain property) everything
                // from the newest full up to it: nothing newer than the newest full's chain goes.
                if let Some(newest) = mine.iter().max_by_key(|b| (b.created_at, &b.id)) {
                    prop_assert!(kept.contains(&newest.id));
                }
                // Within max-age, the latest backup of today is always kept when daily > 0.
                if policy.daily > 0 {
                    let today: Vec<&&BackupSummary> = mine.iter().filter(|b| b.created_at.date_naive() == now.date_naive()).collect();
                    if let Some(latest) = today.iter().max_by_key(|b| (b.created_at, &b.id)) {
                        prop_assert!(kept.contains(&latest.id));
                    }
                }
            }
            // Deleted backups are never needed by a kept one.
            for d in p.deletions() {
                prop_assert!(backups.iter().filter(|b| kept.contains(&b.id)).all(|b| b.parent.as_ref() != Some(&d.id)));
            }
        }

        #[test]
        fn planning_is_idempotent_and_order_independent((backups, policy, extra) in history()) {
            let now = backups.iter().map(|b| b.created_at).max().unwrap_or(at(2026, 7, 1, 0)) + Duration::hours(extra);
            let first = plan(&backups, &policy, now);
            let survivors: Vec<BackupSummary> = backups.iter().filter(|b| first.kept().any(|d| d.id == b.id)).cloned().collect();
            let second = plan(&survivors, &policy, now);
            prop_assert_eq!(second.deletions().count(), 0);
            let kept_first: Vec<&BackupId> = first.kept().map(|d| &d.id).collect();
            let kept_second: Vec<&BackupId> = second.kept().map(|d| &d.id).collect();
            prop_assert_eq!(kept_first, kept_second);
            let mut reversed = backups.clone();
            reversed.reverse();
            prop_assert_eq!(plan(&reversed, &policy, now), first);
        }
    }
}
