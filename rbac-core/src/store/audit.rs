//! The audit trail: policy changes (written in the change's own transaction) and decisions
//! (written by a bounded background writer), each a hash chain that [`super::Store::verify_audit`]
//! checks.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::{ChangeContext, Conn, StoreError};

/// The hash that the first record of a chain links to.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The hash of a record: SHA-256 over its fields, JSON-encoded as one array so that no two
/// different records encode alike.
fn hash(fields: serde_json::Value) -> String {
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// One policy change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When, in Unix epoch milliseconds.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What kind of change (`role.grant`, `policy.import`, `batch`).
    pub action: String,
    /// The policy version the change produced.
    pub version: i64,
    /// What: `{"changes": [...], "before": {...}, "after": {...}}`.
    pub detail: serde_json::Value,
    /// Why, if given.
    pub comment: Option<String>,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl AuditRecord {
    fn expected_hash(&self) -> String {
        hash(serde_json::json!([
            self.prev_hash,
            self.id,
            self.at_ms,
            self.actor,
            self.action,
            self.version,
            self.detail,
            self.comment
        ]))
    }
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When, in Unix epoch milliseconds.
    pub at_ms: i64,
    /// Who asked.
    pub subject: String,
    /// In which tenant (`""`: global).
    pub tenant: String,
    /// For what.
    pub permission: String,
    /// The verdict.
    pub allowed: bool,
    /// The cause, as [`crate::Cause::as_str`] names it (`granted`, `explicit_deny`, ...).
    pub cause: String,
    /// The policy version that decided.
    pub version: i64,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl DecisionRecord {
    fn expected_hash(&self) -> String {
        hash(serde_json::json!([
            self.prev_hash,
            self.id,
            self.at_ms,
            self.subject,
            self.tenant,
            self.permission,
            self.allowed,
            self.cause,
            self.version
        ]))
    }
}

/// Which allowed decisions to record (denied ones always are).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DecisionAuditMode {
    /// Denies only.
    #[default]
    DeniesOnly,
    /// Denies, and this fraction (0.0 to 1.0) of allows, chosen at random.
    Sampled(f64),
    /// Every decision.
    All,
}

pub(crate) async fn append_change(
    conn: &mut Conn,
    ctx: &ChangeContext,
    action: &str,
    version: i64,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    let last = sqlx::query("SELECT id, hash FROM rbac_audit ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (prev_id, prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?),
        None => (0, GENESIS.to_owned()),
    };
    let mut record = AuditRecord {
        id: prev_id + 1,
        at_ms: now_ms(),
        actor: ctx.actor.clone(),
        action: action.to_owned(),
        version,
        detail: detail.clone(),
        comment: ctx.comment.clone(),
        prev_hash,
        hash: String::new(),
    };
    record.hash = record.expected_hash();
    sqlx::query(
        "INSERT INTO rbac_audit (id, at_ms, actor, action, version, detail, comment, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(record.id)
    .bind(record.at_ms)
    .bind(&record.actor)
    .bind(&record.action)
    .bind(record.version)
    .bind(record.detail.to_string())
    .bind(record.comment.as_deref())
    .bind(&record.prev_hash)
    .bind(&record.hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A decision to be written.
#[derive(Debug, Clone)]
pub(crate) struct PendingDecision {
    pub(crate) at_ms: i64,
    pub(crate) subject: String,
    pub(crate) tenant: String,
    pub(crate) permission: String,
    pub(crate) allowed: bool,
    pub(crate) cause: String,
    pub(crate) version: i64,
}

/// Appends a batch of decisions to their chain in one transaction.
pub(crate) async fn append_decisions(
    store: &super::Store,
    batch: &[PendingDecision],
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin_write().await?;
    let last = sqlx::query("SELECT id, hash FROM rbac_decisions ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (mut id, mut prev_hash) = match last {
        Some(row) => (row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?),
        None => (0, GENESIS.to_owned()),
    };
    for d in batch {
        id += 1;
        let mut record = DecisionRecord {
            id,
            at_ms: d.at_ms,
            subject: d.subject.clone(),
            tenant: d.tenant.clone(),
            permission: d.permission.clone(),
            allowed: d.allowed,
            cause: d.cause.clone(),
            version: d.version,
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        record.hash = record.expected_hash();
        sqlx::query(
            "INSERT INTO rbac_decisions (id, at_ms, subject, tenant, permission, allowed, cause, version, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(record.id)
        .bind(record.at_ms)
        .bind(&record.subject)
        .bind(&record.tenant)
        .bind(&record.permission)
        .bind(i64::from(record.allowed))
        .bind(&record.cause)
        .bind(record.version)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&mut *tx)
        .await?;
        prev_hash = record.hash;
    }
    tx.commit().await?;
    Ok(())
}

/// Filters for audit queries; every field set narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Changes by this actor.
    pub actor: Option<String>,
    /// Changes or decisions about this subject.
    pub subject: Option<String>,
    /// Changes or decisions in this tenant.
    pub tenant: Option<String>,
    /// Changes or decisions naming this permission.
    pub permission: Option<String>,
    /// From this time (Unix epoch milliseconds, inclusive).
    pub since_ms: Option<i64>,
    /// Until this time (exclusive).
    pub until_ms: Option<i64>,
}

fn mentions(detail: &serde_json::Value, key: &str, value: &str) -> bool {
    match detail {
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
            (k == key && v.as_str() == Some(value))
                // before/after maps are keyed by item name (roles: `tenant/role`).
                || (key == "subject" && k == "subjects" && v.get(value).is_some())
                || mentions(v, key, value)
        }),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions(v, key, value)),
        serde_json::Value::String(s) => key == "permission" && s == value,
        _ => false,
    }
}

fn tenant_mentioned(detail: &serde_json::Value, tenant: &str) -> bool {
    mentions(detail, "tenant", tenant)
        || mentions(detail, "name", tenant)
        || ["before", "after"].iter().any(|side| {
            detail.get(side).is_some_and(|d| {
                d.get("tenants").is_some_and(|t| t.get(tenant).is_some())
                    || d.get("roles")
                        .and_then(|r| r.as_object())
                        .is_some_and(|roles| {
                            roles
                                .keys()
                                .any(|k| k.split_once('/').is_some_and(|(t, _)| t == tenant))
                        })
            })
        })
}

fn permission_mentioned(detail: &serde_json::Value, permission: &str) -> bool {
    let text = detail.to_string();
    // Any rule whose pattern covers the permission, or the permission itself.
    let needle = format!("\"{permission}\"");
    if text.contains(&needle) {
        return true;
    }
    let mut prefix = permission;
    while let Some((head, _)) = prefix.rsplit_once('.') {
        if text.contains(&format!("\"{head}.*\"")) {
            return true;
        }
        prefix = head;
    }
    text.contains("\"*\"")
}

pub(crate) async fn query_changes(
    pool: &AnyPool,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at_ms, actor, action, version, detail, comment, prev_hash, hash FROM rbac_audit \
         WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR at_ms >= $2) AND ($3 IS NULL OR at_ms < $3) \
         ORDER BY id",
    )
    .bind(q.actor.as_deref())
    .bind(q.since_ms)
    .bind(q.until_ms)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let record = change_from_row(&row)?;
        let keep = q
            .subject
            .as_deref()
            .is_none_or(|s| mentions(&record.detail, "subject", s))
            && q.tenant
                .as_deref()
                .is_none_or(|t| tenant_mentioned(&record.detail, t))
            && q.permission
                .as_deref()
                .is_none_or(|p| permission_mentioned(&record.detail, p));
        if keep {
            out.push(record);
        }
    }
    Ok(out)
}

fn change_from_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord, StoreError> {
    let detail: String = row.try_get(5)?;
    Ok(AuditRecord {
        id: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        version: row.try_get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        comment: row.try_get(6)?,
        prev_hash: row.try_get(7)?,
        hash: row.try_get(8)?,
    })
}

fn decision_from_row(row: &sqlx::any::AnyRow) -> Result<DecisionRecord, StoreError> {
    Ok(DecisionRecord {
        id: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        subject: row.try_get(2)?,
        tenant: row.try_get(3)?,
        permission: row.try_get(4)?,
        allowed: row.try_get::<i64, _>(5)? != 0,
        cause: row.try_get(6)?,
        version: row.try_get(7)?,
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

pub(crate) async fn query_decisions(
    pool: &AnyPool,
    q: &AuditQuery,
) -> Result<Vec<DecisionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, at_ms, subject, tenant, permission, allowed, cause, version, prev_hash, hash \
         FROM rbac_decisions \
         WHERE ($1 IS NULL OR subject = $1) AND ($2 IS NULL OR tenant = $2) \
         AND ($3 IS NULL OR permission = $3) AND ($4 IS NULL OR at_ms >= $4) AND ($5 IS NULL OR at_ms < $5) \
         ORDER BY id",
    )
    .bind(q.subject.as_deref())
    .bind(q.tenant.as_deref())
    .bind(q.permission.as_deref())
    .bind(q.since_ms)
    .bind(q.until_ms)
    .fetch_all(pool)
    .await?;
    rows.iter().map(decision_from_row).collect()
}

/// The state of both chains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Policy-change records checked.
    pub changes: i64,
    /// The id of the first policy-change record whose hash or link is wrong, if any.
    pub first_broken_change: Option<i64>,
    /// Decision records checked.
    pub decisions: i64,
    /// The id of the first decision record whose hash or link is wrong, if any.
    pub first_broken_decision: Option<i64>,
}

impl ChainReport {
    /// Whether both chains are intact.
    pub fn is_intact(&self) -> bool {
        self.first_broken_change.is_none() && self.first_broken_decision.is_none()
    }
}

/// Walks a chain in id order: (id, prev_hash, hash, recomputed hash) per record. Returns how
/// many were read and the first broken id (a gap, a wrong link or a wrong hash).
fn first_break(records: impl Iterator<Item = (i64, String, String, String)>) -> (i64, Option<i64>) {
    let mut prev = GENESIS.to_owned();
    let mut count = 0;
    for (expected_id, (id, prev_hash, hash, recomputed)) in (1..).zip(records) {
        count += 1;
        if id != expected_id || prev_hash != prev || hash != recomputed {
            return (count, Some(id.min(expected_id)));
        }
        prev = hash;
    }
    (count, None)
}

pub(crate) async fn verify(pool: &AnyPool) -> Result<ChainReport, StoreError> {
    let all = AuditQuery::default();
    let changes = query_changes(pool, &all).await?;
    let (changes, first_broken_change) = first_break(changes.into_iter().map(|r| {
        let recomputed = r.expected_hash();
        (r.id, r.prev_hash, r.hash, recomputed)
    }));
    let decisions = query_decisions(pool, &all).await?;
    let (decisions, first_broken_decision) = first_break(decisions.into_iter().map(|r| {
        let recomputed = r.expected_hash();
        (r.id, r.prev_hash, r.hash, recomputed)
    }));
    Ok(ChainReport {
        changes,
        first_broken_change,
        decisions,
        first_broken_decision,
    })
}
