-- Policy history (same SQL for SQLite and PostgreSQL): per committed version, the items it
-- changed as they were before it (a JSON delta), so that any version since `history_since` can
-- be rebuilt exactly by walking back from the current policy. Versions committed before this
-- migration have no delta; `history_since` is the first version that can be rebuilt.

CREATE TABLE rbac_policy_history (
    version BIGINT PRIMARY KEY,
    reverse TEXT NOT NULL
);

INSERT INTO rbac_meta (key, value)
SELECT 'history_since', value FROM rbac_meta WHERE key = 'policy_version';
