-- One schema for SQLite and PostgreSQL: only TEXT and BIGINT columns, ids assigned by the store
-- inside its write lock (no AUTOINCREMENT / BIGSERIAL), times as Unix epoch milliseconds.
-- The empty tenant '' stands for the global scope.

CREATE TABLE rbac_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO rbac_meta (key, value) VALUES ('policy_version', 0);

CREATE TABLE rbac_permissions (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

CREATE TABLE rbac_tenants (
    name        TEXT PRIMARY KEY,
    description TEXT
);

-- A role's layer: global (tenant '') or inside one tenant.
CREATE TABLE rbac_roles (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE rbac_role_parents (
    tenant   TEXT NOT NULL,
    role     TEXT NOT NULL,
    position BIGINT NOT NULL,
    parent   TEXT NOT NULL,
    PRIMARY KEY (tenant, role, position)
);

CREATE TABLE rbac_role_rules (
    tenant   TEXT NOT NULL,
    role     TEXT NOT NULL,
    effect   TEXT NOT NULL CHECK (effect IN ('grant', 'deny')),
    position BIGINT NOT NULL,
    pattern  TEXT NOT NULL,
    PRIMARY KEY (tenant, role, effect, position)
);

CREATE TABLE rbac_subjects (
    name TEXT PRIMARY KEY
);

CREATE TABLE rbac_assignments (
    subject  TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    position BIGINT NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (subject, tenant, position)
);
CREATE INDEX rbac_assignments_by_role ON rbac_assignments (tenant, role);

-- Policy changes, hash-chained: hash = sha256(prev_hash, id, at_ms, actor, action, detail, comment).
CREATE TABLE rbac_audit (
    id        BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    version   BIGINT NOT NULL,
    detail    TEXT NOT NULL,
    comment   TEXT,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX rbac_audit_by_time ON rbac_audit (at_ms);

-- Decisions, written by the background audit writer; a chain of their own.
CREATE TABLE rbac_decisions (
    id         BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    subject    TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    permission TEXT NOT NULL,
    allowed    BIGINT NOT NULL,
    cause      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX rbac_decisions_by_time ON rbac_decisions (at_ms);
