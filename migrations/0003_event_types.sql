-- Event types: a tenant's catalog of event names, each with numbered JSON Schema versions,
-- and the tenant's choice of what ingest does with a type that is not in the catalog.

-- 'accept': an unknown type is ingested unchecked (the default: sending first and
-- cataloguing later must work); 'refuse': ingest answers 422 for it.
ALTER TABLE tenants ADD COLUMN unknown_event_types text NOT NULL DEFAULT 'accept'
    CHECK (unknown_event_types IN ('accept', 'refuse'));

-- deprecated_at is advisory: a deprecated type is still ingested and delivered; listings
-- show it so producers and subscribers can move off it.
-- latest_version is the number of schema versions (versions are 1..latest, never removed);
-- NULL while the type has none. Adding a version bumps it under the row lock, so two
-- concurrent additions get consecutive numbers.
CREATE TABLE event_types (
    id              text PRIMARY KEY DEFAULT hookline_id('etp'),
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '',
    latest_version  integer CHECK (latest_version > 0),
    deprecated_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- Immutable once written: events are stamped with the version they were checked against,
-- and in-process validator caches key on (event_type_id, version).
CREATE TABLE event_type_schemas (
    event_type_id  text NOT NULL REFERENCES event_types ON DELETE CASCADE,
    version        integer NOT NULL CHECK (version > 0),
    schema         jsonb NOT NULL,          -- a JSON Schema (draft 2020-12) document
    example        jsonb,                   -- an event `data` object valid under schema
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type_id, version)
);
