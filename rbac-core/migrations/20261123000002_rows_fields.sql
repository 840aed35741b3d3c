-- Row-level and field-level policies (same SQL for SQLite and PostgreSQL, like the first
-- migration): declared resources with typed columns, and per role layer (tenant '' = global)
-- a row filter and a field rule per resource.

CREATE TABLE rbac_resources (
    name          TEXT PRIMARY KEY,
    description   TEXT,
    table_name    TEXT NOT NULL,
    tenant_column TEXT NOT NULL
);

CREATE TABLE rbac_resource_columns (
    resource TEXT NOT NULL,
    name     TEXT NOT NULL,
    type     TEXT NOT NULL,
    PRIMARY KEY (resource, name)
);

-- JSON-only fields (not filterable), in declaration order.
CREATE TABLE rbac_resource_fields (
    resource TEXT NOT NULL,
    position BIGINT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (resource, position)
);

CREATE TABLE rbac_role_rows (
    tenant   TEXT NOT NULL,
    role     TEXT NOT NULL,
    resource TEXT NOT NULL,
    filter   TEXT NOT NULL,
    PRIMARY KEY (tenant, role, resource)
);

-- One row per list given (`read`, `read_deny`, `write`, `write_deny`), the list as a JSON array
-- of field names, so that an empty list stays distinct from an absent one.
CREATE TABLE rbac_role_fields (
    tenant   TEXT NOT NULL,
    role     TEXT NOT NULL,
    resource TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('read', 'read_deny', 'write', 'write_deny')),
    fields   TEXT NOT NULL,
    PRIMARY KEY (tenant, role, resource, kind)
);
