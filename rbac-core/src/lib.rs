//! Role-based, multi-tenant authorization for business applications.
//!
//! A [`Policy`] declares the application's permissions (`finance.invoices.read`), roles with
//! inheritance, grants and denies (wildcards such as `finance.*`), tenants with their own roles
//! and tenant-scoped rules, and which subject holds which role where. An [`Engine`] compiles it
//! into an immutable [`Snapshot`] and answers `(subject, tenant, permission)` checks with a
//! [`Decision`] in a few nanoseconds, without locks, while new policies are swapped in.
//!
//! ```
//! use rbac_core::{Cause, Engine, Policy};
//!
//! let policy = Policy::from_toml_str(r#"
//!     [permissions.finance.invoices]
//!     read = "Read invoices"
//!     approve = "Approve invoices"
//!
//!     [roles.viewer]
//!     grants = ["finance.invoices.read"]
//!     [roles.accountant]
//!     inherits = ["viewer"]
//!     grants = ["finance.*"]
//!     denies = ["finance.invoices.approve"]
//!
//!     [tenants.acme]
//!     [tenants.globex]
//!     [subjects.alice.tenants]
//!     acme = ["accountant"]
//! "#)?;
//! let engine = Engine::new(&policy);
//!
//! assert!(engine.check("alice", "acme", "finance.invoices.read").is_allowed());
//! // Deny wins over allow; tenants never leak into each other; unknown names are denies.
//! assert_eq!(engine.check("alice", "acme", "finance.invoices.approve").cause(), Cause::ExplicitDeny);
//! assert!(!engine.check("alice", "globex", "finance.invoices.read").is_allowed());
//! assert_eq!(engine.check("alice", "acme", "finance.nope").cause(), Cause::UnknownPermission);
//!
//! let why = engine.explain("alice", "acme", "finance.invoices.approve");
//! assert_eq!(why.to_string(), "deny: `alice` in tenant `acme`, `finance.invoices.approve`: \
//!     role `accountant` denies `finance.invoices.approve` (global rule); a deny wins over every grant");
//! # Ok::<(), rbac_core::PolicyError>(())
//! ```
//!
//! # The model
//!
//! - **Permissions** are dotted names of 1 to 8 lowercase segments, declared in the policy's
//!   registry. Grants and denies name a permission or a trailing wildcard (`finance.*`, `*`);
//!   naming an undeclared permission is a load error, checking one is a deny.
//! - **Roles** inherit from any number of roles (a cycle is a load error naming it). A subject's
//!   effective permissions in a scope are everything its roles and their ancestors grant, minus
//!   everything any of them denies: deny wins, at any depth and across roles.
//! - **Tenants**: a subject holds global roles (in force everywhere) and roles per tenant. A
//!   tenant may define custom roles and add rules to a global role that apply only inside it.
//!   Nothing in one tenant grants anything in another. The tenant `""` is the global scope.
//! - Conventions such as `root` (`grants = ["*"]`), `super_admin` or `admin` are ordinary roles.
//!
//! # Modules
//!
//! | module | what |
//! |---|---|
//! | [`name`] | name and pattern validation |
//! | [`document`] | the serde shape of a policy |
//! | [`casbin`] | casbin model and CSV import and export |
//! | [`lines`] | line-numbered CSV records (casbin policies, batch queries) |
//! | [`resource`] | declared resources (tables, typed columns) and subject attributes |
//! | [`rows`] | row-level policies: in-memory check, SQL filter (`sqlx::QueryBuilder`), explain |
//! | [`fields`] | field-level policies: redact, check writes, SQL projection |
//! | `store` | policies in SQLite or PostgreSQL, live engines, the audit trail (features `sqlite`, `postgres`) |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | yes | the `store` module on embedded SQLite |
//! | `postgres` | no | the `store` module on PostgreSQL, with `LISTEN/NOTIFY` |
//! | `sql` | with `store` | `RowFilter::push_sql` into any sqlx `QueryBuilder` (SQLite, PostgreSQL) |

pub mod casbin;
mod decision;
mod displace;
pub mod document;
mod engine;
pub mod fields;
pub mod lines;
pub mod name;
mod pages;
mod policy;
pub mod resource;
pub mod rows;
mod snapshot;
#[cfg(feature = "store")]
pub mod store;

pub use decision::{Cause, Decision, Effect, Explanation, Rule};
pub use document::{PolicyDocument, RoleDef, SubjectDef, TenantDef};
pub use engine::Engine;
pub use policy::{Issue, Item, Policy, PolicyError, Problem, ValidationErrors};
pub use snapshot::{
    BATCH_AHEAD, PermissionId, QueryIds, SetLayout, Snapshot, SnapshotStats, SubjectId, TenantId,
};

/// The tenant name of the global scope.
pub const GLOBAL: &str = "";
