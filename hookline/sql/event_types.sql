-- name: create_event_type
-- A new event type, with schema version 1 when a schema is given. Nothing when the name is
-- taken. $1 tenant_id, $2 name, $3 description, $4 schema or NULL, $5 example or NULL
WITH t AS (
    INSERT INTO event_types (tenant_id, name, description, latest_version)
    VALUES ($1, $2, $3, CASE WHEN $4::jsonb IS NULL THEN NULL ELSE 1 END)
    ON CONFLICT (tenant_id, name) DO NOTHING
    RETURNING *
), s AS (
    INSERT INTO event_type_schemas (event_type_id, version, schema, example)
    SELECT id, 1, $4, $5 FROM t WHERE $4::jsonb IS NOT NULL
)
SELECT name, description, latest_version, deprecated_at, created_at, updated_at FROM t;

-- name: get_event_type
-- One event type by name. $1 tenant_id, $2 name
SELECT name, description, latest_version, deprecated_at, created_at, updated_at
FROM event_types WHERE tenant_id = $1 AND name = $2;

-- name: list_event_types
-- A page of event types by name. $1 tenant_id, $2 cursor (last name seen) or NULL, $3 limit,
-- $4 deprecated filter or NULL
SELECT name, description, latest_version, deprecated_at, created_at, updated_at
FROM event_types
WHERE tenant_id = $1 AND ($2::text IS NULL OR name > $2)
  AND ($4::boolean IS NULL OR (deprecated_at IS NOT NULL) = $4)
ORDER BY name LIMIT $3;

-- name: update_event_type
-- Change the description and/or deprecation; a type deprecated twice keeps its first time.
-- $1 tenant_id, $2 name, $3 description or NULL (unchanged), $4 deprecated or NULL (unchanged)
UPDATE event_types SET
    description = COALESCE($3, description),
    deprecated_at = CASE
        WHEN $4::boolean IS NULL THEN deprecated_at
        WHEN $4 THEN COALESCE(deprecated_at, now())
        ELSE NULL
    END,
    updated_at = now()
WHERE tenant_id = $1 AND name = $2
RETURNING name, description, latest_version, deprecated_at, created_at, updated_at;

-- name: add_schema_version
-- The next schema version of a type; the row lock on the type numbers concurrent additions
-- one after the other. $1 tenant_id, $2 name, $3 schema, $4 example or NULL
WITH t AS (
    UPDATE event_types SET latest_version = COALESCE(latest_version, 0) + 1, updated_at = now()
    WHERE tenant_id = $1 AND name = $2
    RETURNING id, latest_version
)
INSERT INTO event_type_schemas (event_type_id, version, schema, example)
SELECT id, latest_version, $3, $4 FROM t
RETURNING version, schema, example, created_at;

-- name: get_schema_version
-- One schema version of a type. $1 tenant_id, $2 name, $3 version
SELECT s.version, s.schema, s.example, s.created_at
FROM event_type_schemas s JOIN event_types t ON t.id = s.event_type_id
WHERE t.tenant_id = $1 AND t.name = $2 AND s.version = $3;

-- name: list_schema_versions
-- A page of a type's schema versions, newest first; no rows when the type does not exist.
-- $1 tenant_id, $2 name, $3 cursor (last version seen) or NULL, $4 limit
SELECT s.version, s.schema, s.example, s.created_at
FROM event_type_schemas s JOIN event_types t ON t.id = s.event_type_id
WHERE t.tenant_id = $1 AND t.name = $2 AND ($3::integer IS NULL OR s.version < $3)
ORDER BY s.version DESC LIMIT $4;

-- name: event_types_for_check
-- The tenant's policy for unknown types and those of the given names it knows: one row with
-- NULL name when it knows none of them. $1 tenant_id, $2 type names
SELECT ten.unknown_event_types AS policy, t.id, t.name, t.latest_version
FROM tenants ten
LEFT JOIN event_types t ON t.tenant_id = ten.id AND t.name = ANY($2::text[])
WHERE ten.id = $1;

-- name: schemas_for_check
-- Schema documents of (type id, version) pairs, for validators not cached yet.
-- $1 tenant_id, $2 event type ids, $3 versions (same length)
SELECT s.event_type_id, s.version, s.schema
FROM unnest($2::text[], $3::integer[]) AS w(event_type_id, version)
JOIN event_type_schemas s USING (event_type_id, version)
JOIN event_types t ON t.id = s.event_type_id
WHERE t.tenant_id = $1;

-- name: example_for_type
-- The example of a type's given version, or of its latest one. $1 tenant_id, $2 name,
-- $3 version or NULL (latest)
SELECT s.version, s.example
FROM event_types t JOIN event_type_schemas s
  ON s.event_type_id = t.id AND s.version = COALESCE($3, t.latest_version)
WHERE t.tenant_id = $1 AND t.name = $2;

