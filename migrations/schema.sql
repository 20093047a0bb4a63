-- The schema after every migration (hookline/schema_snapshot.py; `make schema`).

TABLE api_keys (
    id text NOT NULL DEFAULT hookline_id('key'::text),
    tenant_id text NOT NULL,
    key_hash bytea NOT NULL,
    prefix text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    revoked_at timestamp with time zone,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON public.api_keys USING btree (key_hash);
CREATE UNIQUE INDEX api_keys_pkey ON public.api_keys USING btree (id);

TABLE attempt_rollups (
    endpoint_id text NOT NULL,
    minute timestamp with time zone NOT NULL,
    tenant_id text NOT NULL,
    attempts integer NOT NULL,
    succeeded integer NOT NULL,
    failed integer NOT NULL,
    dead_lettered integer NOT NULL,
    duration_ms double precision NOT NULL,
    latency integer[] NOT NULL,
    CONSTRAINT attempt_rollups_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT attempt_rollups_latency_check CHECK ((cardinality(latency) = 13)),
    CONSTRAINT attempt_rollups_pkey PRIMARY KEY (endpoint_id, minute)
);
CREATE INDEX attempt_rollups_minute_idx ON public.attempt_rollups USING btree (minute);
CREATE UNIQUE INDEX attempt_rollups_pkey ON public.attempt_rollups USING btree (endpoint_id, minute);
CREATE INDEX attempt_rollups_tenant_idx ON public.attempt_rollups USING btree (tenant_id, minute);

TABLE attempt_rollups_hourly (
    endpoint_id text NOT NULL,
    hour timestamp with time zone NOT NULL,
    tenant_id text NOT NULL,
    attempts integer NOT NULL,
    succeeded integer NOT NULL,
    failed integer NOT NULL,
    dead_lettered integer NOT NULL,
    duration_ms double precision NOT NULL,
    latency integer[] NOT NULL,
    CONSTRAINT attempt_rollups_hourly_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT attempt_rollups_hourly_latency_check CHECK ((cardinality(latency) = 13)),
    CONSTRAINT attempt_rollups_hourly_pkey PRIMARY KEY (endpoint_id, hour)
);
CREATE UNIQUE INDEX attempt_rollups_hourly_pkey ON public.attempt_rollups_hourly USING btree (endpoint_id, hour);
CREATE INDEX attempt_rollups_hourly_tenant_idx ON public.attempt_rollups_hourly USING btree (tenant_id, hour);

TABLE attempts (
    id text NOT NULL DEFAULT hookline_id('att'::text),
    delivery_id text NOT NULL,
    tenant_id text NOT NULL,
    n integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    duration_ms real NOT NULL,
    status_code integer,
    error text,
    request_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    response_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    response_body text NOT NULL DEFAULT ''::text,
    next_attempt_at timestamp with time zone,
    CONSTRAINT attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE,
    CONSTRAINT attempts_pkey PRIMARY KEY (id)
);
CREATE INDEX attempts_delivery_idx ON public.attempts USING btree (delivery_id, n);
CREATE UNIQUE INDEX attempts_pkey ON public.attempts USING btree (id);

TABLE deliveries (
    id text NOT NULL DEFAULT hookline_id('dlv'::text),
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    endpoint_id text NOT NULL,
    lane_id bigint NOT NULL,
    seq bigint NOT NULL,
    status text NOT NULL DEFAULT 'pending'::text,
    attempts integer NOT NULL DEFAULT 0,
    retries_used integer NOT NULL DEFAULT 0,
    next_attempt_at timestamp with time zone NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT deliveries_event_id_endpoint_id_key UNIQUE (event_id, endpoint_id),
    CONSTRAINT deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES events(id) ON DELETE CASCADE,
    CONSTRAINT deliveries_lane_id_fkey FOREIGN KEY (lane_id) REFERENCES lanes(id) ON DELETE CASCADE,
    CONSTRAINT deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'retrying'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
);
CREATE INDEX deliveries_endpoint_idx ON public.deliveries USING btree (endpoint_id, id DESC);
CREATE UNIQUE INDEX deliveries_event_id_endpoint_id_key ON public.deliveries USING btree (event_id, endpoint_id);
CREATE INDEX deliveries_failed_idx ON public.deliveries USING btree (tenant_id, id DESC) WHERE (status = 'failed'::text);
CREATE INDEX deliveries_head_idx ON public.deliveries USING btree (lane_id, seq) WHERE (status = ANY (ARRAY['pending'::text, 'retrying'::text]));
CREATE INDEX deliveries_lane_idx ON public.deliveries USING btree (lane_id);
CREATE UNIQUE INDEX deliveries_pkey ON public.deliveries USING btree (id);
CREATE INDEX deliveries_tenant_idx ON public.deliveries USING btree (tenant_id, id DESC);

TABLE endpoint_pace (
    endpoint_id text NOT NULL,
    tat timestamp with time zone NOT NULL,
    free_at timestamp with time zone NOT NULL,
    CONSTRAINT endpoint_pace_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT endpoint_pace_pkey PRIMARY KEY (endpoint_id)
);
CREATE UNIQUE INDEX endpoint_pace_pkey ON public.endpoint_pace USING btree (endpoint_id);

TABLE endpoint_secrets (
    endpoint_id text NOT NULL,
    secret text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamp with time zone,
    kind text NOT NULL,
    CONSTRAINT endpoint_secrets_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT endpoint_secrets_kind_check CHECK ((kind = ANY (ARRAY['hmac'::text, 'ed25519'::text]))),
    CONSTRAINT endpoint_secrets_pkey PRIMARY KEY (endpoint_id, created_at)
);
CREATE UNIQUE INDEX endpoint_secrets_pkey ON public.endpoint_secrets USING btree (endpoint_id, created_at);

TABLE endpoints (
    id text NOT NULL DEFAULT hookline_id('ep'::text),
    tenant_id text NOT NULL,
    subscriber_id text NOT NULL,
    url text NOT NULL,
    description text NOT NULL DEFAULT ''::text,
    event_types text[],
    ordering text NOT NULL DEFAULT 'strict'::text,
    on_exhausted text NOT NULL DEFAULT 'dead_letter'::text,
    payload text NOT NULL DEFAULT 'thin'::text,
    format text NOT NULL DEFAULT 'standard'::text,
    timeout real,
    rate_limit integer,
    max_in_flight integer NOT NULL DEFAULT 10,
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    status text NOT NULL DEFAULT 'active'::text,
    status_reason text NOT NULL DEFAULT ''::text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    schema_version integer,
    retry_schedule double precision[],
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since timestamp with time zone,
    health_warning smallint NOT NULL DEFAULT 0,
    disabled_at timestamp with time zone,
    disable_after double precision,
    sensitive_headers text[] NOT NULL DEFAULT '{}'::text[],
    CONSTRAINT endpoints_disable_after_check CHECK ((disable_after > (0)::double precision)),
    CONSTRAINT endpoints_format_check CHECK ((format = ANY (ARRAY['standard'::text, 'cloudevents'::text]))),
    CONSTRAINT endpoints_max_in_flight_check CHECK (((max_in_flight >= 1) AND (max_in_flight <= 1000))),
    CONSTRAINT endpoints_on_exhausted_check CHECK ((on_exhausted = ANY (ARRAY['dead_letter'::text, 'pause'::text]))),
    CONSTRAINT endpoints_ordering_check CHECK ((ordering = ANY (ARRAY['strict'::text, 'keyed'::text, 'none'::text]))),
    CONSTRAINT endpoints_payload_check CHECK ((payload = ANY (ARRAY['thin'::text, 'full'::text]))),
    CONSTRAINT endpoints_pkey PRIMARY KEY (id),
    CONSTRAINT endpoints_rate_limit_check CHECK ((rate_limit > 0)),
    CONSTRAINT endpoints_retry_schedule_check CHECK ((cardinality(retry_schedule) <= 50)),
    CONSTRAINT endpoints_schema_version_check CHECK ((schema_version > 0)),
    CONSTRAINT endpoints_status_check CHECK ((status = ANY (ARRAY['active'::text, 'paused'::text, 'disabled'::text]))),
    CONSTRAINT endpoints_subscriber_id_fkey FOREIGN KEY (subscriber_id) REFERENCES subscribers(id) ON DELETE CASCADE,
    CONSTRAINT endpoints_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE,
    CONSTRAINT endpoints_timeout_check CHECK (((timeout > (0)::double precision) AND (timeout <= (30)::double precision)))
);
CREATE UNIQUE INDEX endpoints_pkey ON public.endpoints USING btree (id);
CREATE INDEX endpoints_subscriber_idx ON public.endpoints USING btree (subscriber_id);
CREATE INDEX endpoints_tenant_idx ON public.endpoints USING btree (tenant_id, id);

TABLE event_fetches (
    id bigint NOT NULL DEFAULT nextval('event_fetches_id_seq'::regclass),
    event_id text NOT NULL,
    endpoint_id text,
    address text NOT NULL,
    fetched_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT event_fetches_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE SET NULL,
    CONSTRAINT event_fetches_event_id_fkey FOREIGN KEY (event_id) REFERENCES events(id) ON DELETE CASCADE,
    CONSTRAINT event_fetches_pkey PRIMARY KEY (id)
);
CREATE INDEX event_fetches_endpoint_idx ON public.event_fetches USING btree (endpoint_id) WHERE (endpoint_id IS NOT NULL);
CREATE INDEX event_fetches_event_idx ON public.event_fetches USING btree (event_id, id);
CREATE UNIQUE INDEX event_fetches_pkey ON public.event_fetches USING btree (id);

TABLE event_type_schemas (
    event_type_id text NOT NULL,
    version integer NOT NULL,
    schema jsonb NOT NULL,
    example jsonb,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT event_type_schemas_event_type_id_fkey FOREIGN KEY (event_type_id) REFERENCES event_types(id) ON DELETE CASCADE,
    CONSTRAINT event_type_schemas_pkey PRIMARY KEY (event_type_id, version),
    CONSTRAINT event_type_schemas_version_check CHECK ((version > 0))
);
CREATE UNIQUE INDEX event_type_schemas_pkey ON public.event_type_schemas USING btree (event_type_id, version);

TABLE event_types (
    id text NOT NULL DEFAULT hookline_id('etp'::text),
    tenant_id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT ''::text,
    latest_version integer,
    deprecated_at timestamp with time zone,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT event_types_latest_version_check CHECK ((latest_version > 0)),
    CONSTRAINT event_types_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT event_types_pkey PRIMARY KEY (id),
    CONSTRAINT event_types_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE,
    CONSTRAINT event_types_tenant_id_name_key UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX event_types_pkey ON public.event_types USING btree (id);
CREATE UNIQUE INDEX event_types_tenant_id_name_key ON public.event_types USING btree (tenant_id, name);

TABLE events (
    id text NOT NULL DEFAULT hookline_id('evt'::text),
    tenant_id text NOT NULL,
    producer_id text,
    type text NOT NULL,
    subject text,
    url text,
    ordering_key text,
    subscriber_id text,
    data jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    schema_version integer,
    expires_at timestamp with time zone,
    cancelled_at timestamp with time zone,
    CONSTRAINT events_expires_at_range CHECK (((expires_at >= '1970-01-01 00:00:00+00'::timestamp with time zone) AND (expires_at <= '9999-12-31 00:00:00+00'::timestamp with time zone))) NOT VALID,
    CONSTRAINT events_pkey PRIMARY KEY (id),
    CONSTRAINT events_subscriber_id_fkey FOREIGN KEY (subscriber_id) REFERENCES subscribers(id) ON DELETE SET NULL,
    CONSTRAINT events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE,
    CONSTRAINT events_tenant_id_producer_id_key UNIQUE (tenant_id, producer_id)
);
CREATE INDEX events_expiring_idx ON public.events USING btree (expires_at) WHERE ((expires_at IS NOT NULL) AND (cancelled_at IS NULL));
CREATE UNIQUE INDEX events_pkey ON public.events USING btree (id);
CREATE UNIQUE INDEX events_tenant_id_producer_id_key ON public.events USING btree (tenant_id, producer_id);
CREATE INDEX events_tenant_idx ON public.events USING btree (tenant_id, id DESC);
CREATE INDEX events_tenant_type_idx ON public.events USING btree (tenant_id, type, id DESC);

TABLE idempotency_keys (
    tenant_id text NOT NULL,
    key text NOT NULL,
    route text NOT NULL,
    request_hash bytea NOT NULL,
    status integer,
    response bytea,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, key),
    CONSTRAINT idempotency_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE INDEX idempotency_keys_age_idx ON public.idempotency_keys USING btree (created_at);
CREATE UNIQUE INDEX idempotency_keys_pkey ON public.idempotency_keys USING btree (tenant_id, key);

TABLE lane_tails (
    endpoint_id text NOT NULL,
    key text NOT NULL,
    lane_id bigint NOT NULL DEFAULT nextval('lanes_id_seq'::regclass),
    next_seq bigint NOT NULL,
    CONSTRAINT lane_tails_lane_id_fkey FOREIGN KEY (lane_id) REFERENCES lanes(id) ON DELETE CASCADE,
    CONSTRAINT lane_tails_pkey PRIMARY KEY (endpoint_id, key)
);
CREATE UNIQUE INDEX lane_tails_lane_idx ON public.lane_tails USING btree (lane_id);
CREATE UNIQUE INDEX lane_tails_pkey ON public.lane_tails USING btree (endpoint_id, key);

TABLE lanes (
    id bigint NOT NULL DEFAULT nextval('lanes_id_seq'::regclass),
    endpoint_id text NOT NULL,
    key text NOT NULL,
    ready_at timestamp with time zone,
    lease_until timestamp with time zone,
    lease_no bigint NOT NULL DEFAULT 0,
    tenant_id text NOT NULL,
    deferred boolean NOT NULL DEFAULT false,
    CONSTRAINT lanes_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT lanes_endpoint_id_key_key UNIQUE (endpoint_id, key),
    CONSTRAINT lanes_pkey PRIMARY KEY (id)
);
CREATE INDEX lanes_deferred_idx ON public.lanes USING btree (endpoint_id, ready_at) WHERE deferred;
CREATE UNIQUE INDEX lanes_endpoint_id_key_key ON public.lanes USING btree (endpoint_id, key);
CREATE INDEX lanes_leased_idx ON public.lanes USING btree (endpoint_id) WHERE (lease_until IS NOT NULL);
CREATE UNIQUE INDEX lanes_pkey ON public.lanes USING btree (id);
CREATE INDEX lanes_tenant_ready_idx ON public.lanes USING btree (tenant_id, ready_at) WHERE (ready_at IS NOT NULL);

TABLE operational_notices (
    id bigint NOT NULL DEFAULT nextval('operational_notices_id_seq'::regclass),
    tenant_id text NOT NULL,
    endpoint_id text NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT operational_notices_pkey PRIMARY KEY (id),
    CONSTRAINT operational_notices_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX operational_notices_pkey ON public.operational_notices USING btree (id);

TABLE portal_links (
    token_hash bytea NOT NULL,
    tenant_id text NOT NULL,
    subscriber_id text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    CONSTRAINT portal_links_pkey PRIMARY KEY (token_hash),
    CONSTRAINT portal_links_subscriber_id_fkey FOREIGN KEY (subscriber_id) REFERENCES subscribers(id) ON DELETE CASCADE,
    CONSTRAINT portal_links_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX portal_links_pkey ON public.portal_links USING btree (token_hash);
CREATE INDEX portal_links_subscriber_idx ON public.portal_links USING btree (subscriber_id, expires_at);

TABLE replays (
    id text NOT NULL DEFAULT hookline_id('rpl'::text),
    tenant_id text NOT NULL,
    endpoint_id text,
    event_types text[],
    statuses text[] NOT NULL,
    since timestamp with time zone,
    until timestamp with time zone,
    missed boolean NOT NULL DEFAULT false,
    rate integer NOT NULL,
    state text NOT NULL DEFAULT 'running'::text,
    total bigint NOT NULL,
    queued bigint NOT NULL DEFAULT 0,
    stage text NOT NULL DEFAULT 'deliveries'::text,
    after_id text,
    lease_until timestamp with time zone,
    lease_no bigint NOT NULL DEFAULT 0,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    finished_at timestamp with time zone,
    CONSTRAINT replays_check CHECK (((NOT missed) OR ((endpoint_id IS NOT NULL) AND (since IS NOT NULL)))),
    CONSTRAINT replays_check1 CHECK ((since < until)),
    CONSTRAINT replays_endpoint_id_fkey FOREIGN KEY (endpoint_id) REFERENCES endpoints(id) ON DELETE CASCADE,
    CONSTRAINT replays_pkey PRIMARY KEY (id),
    CONSTRAINT replays_rate_check CHECK ((rate > 0)),
    CONSTRAINT replays_stage_check CHECK ((stage = ANY (ARRAY['deliveries'::text, 'missed'::text]))),
    CONSTRAINT replays_state_check CHECK ((state = ANY (ARRAY['running'::text, 'paused'::text, 'cancelled'::text, 'done'::text]))),
    CONSTRAINT replays_statuses_check CHECK ((statuses <@ ARRAY['failed'::text, 'cancelled'::text, 'succeeded'::text])),
    CONSTRAINT replays_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE INDEX replays_finished_idx ON public.replays USING btree (finished_at) WHERE (finished_at IS NOT NULL);
CREATE UNIQUE INDEX replays_pkey ON public.replays USING btree (id);
CREATE INDEX replays_running_idx ON public.replays USING btree (lease_until) WHERE (state = 'running'::text);
CREATE INDEX replays_tenant_idx ON public.replays USING btree (tenant_id, id DESC);

TABLE schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now(),
    complete boolean NOT NULL DEFAULT true,
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
);
CREATE UNIQUE INDEX schema_migrations_pkey ON public.schema_migrations USING btree (version);

TABLE sessions (
    token_hash bytea NOT NULL,
    tenant_id text NOT NULL,
    user_id text,
    subscriber_id text,
    csrf_token text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT sessions_check CHECK (((user_id IS NULL) <> (subscriber_id IS NULL))),
    CONSTRAINT sessions_pkey PRIMARY KEY (token_hash),
    CONSTRAINT sessions_subscriber_id_fkey FOREIGN KEY (subscriber_id) REFERENCES subscribers(id) ON DELETE CASCADE,
    CONSTRAINT sessions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE,
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX sessions_expiry_idx ON public.sessions USING btree (expires_at);
CREATE UNIQUE INDEX sessions_pkey ON public.sessions USING btree (token_hash);

TABLE subscribers (
    id text NOT NULL DEFAULT hookline_id('sub'::text),
    tenant_id text NOT NULL,
    uid text NOT NULL,
    name text NOT NULL DEFAULT ''::text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT subscribers_pkey PRIMARY KEY (id),
    CONSTRAINT subscribers_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE,
    CONSTRAINT subscribers_tenant_id_uid_key UNIQUE (tenant_id, uid)
);
CREATE UNIQUE INDEX subscribers_pkey ON public.subscribers USING btree (id);
CREATE UNIQUE INDEX subscribers_tenant_id_uid_key ON public.subscribers USING btree (tenant_id, uid);

TABLE tenants (
    id text NOT NULL DEFAULT hookline_id('ten'::text),
    name text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    unknown_event_types text NOT NULL DEFAULT 'accept'::text,
    retry_schedule double precision[],
    delivery_timeout real,
    disable_after double precision,
    operational_endpoint_id text,
    retention integer,
    purge_cursor text,
    CONSTRAINT tenants_delivery_timeout_check CHECK (((delivery_timeout > (0)::double precision) AND (delivery_timeout <= (30)::double precision))),
    CONSTRAINT tenants_disable_after_check CHECK ((disable_after > (0)::double precision)),
    CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT tenants_operational_endpoint_id_fkey FOREIGN KEY (operational_endpoint_id) REFERENCES endpoints(id) ON DELETE SET NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_retention_check CHECK (((retention >= 3600) AND (retention <= (3650 * 86400)))),
    CONSTRAINT tenants_retry_schedule_check CHECK ((cardinality(retry_schedule) <= 50)),
    CONSTRAINT tenants_unknown_event_types_check CHECK ((unknown_event_types = ANY (ARRAY['accept'::text, 'refuse'::text])))
);
CREATE INDEX tenants_operational_endpoint_idx ON public.tenants USING btree (operational_endpoint_id) WHERE (operational_endpoint_id IS NOT NULL);
CREATE UNIQUE INDEX tenants_pkey ON public.tenants USING btree (id);

TABLE users (
    id text NOT NULL DEFAULT hookline_id('usr'::text),
    tenant_id text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email);
CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id);

CREATE OR REPLACE FUNCTION public.hookline_add_counts(a integer[], b integer[])
 RETURNS integer[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT ARRAY[a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5],
                 a[6] + b[6], a[7] + b[7], a[8] + b[8], a[9] + b[9], a[10] + b[10],
                 a[11] + b[11], a[12] + b[12], a[13] + b[13]]
$function$;

CREATE OR REPLACE FUNCTION public.hookline_batch_taken()
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE unique_violation USING MESSAGE = 'a producer event id of the batch is taken';
END
$function$;

CREATE OR REPLACE FUNCTION public.hookline_blocked_endpoints()
 RETURNS SETOF text
 LANGUAGE sql
 STABLE
AS $function$
    SELECT b.endpoint_id
    FROM (SELECT endpoint_id, count(*) AS n FROM lanes
          WHERE lease_until > now() GROUP BY endpoint_id) b
    JOIN endpoints e ON e.id = b.endpoint_id
    WHERE b.n >= CASE WHEN e.ordering = 'strict' THEN 1 ELSE e.max_in_flight END
    UNION
    SELECT endpoint_id FROM endpoint_pace WHERE free_at > now()
$function$;

CREATE OR REPLACE FUNCTION public.hookline_head_due(lane bigint)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
AS $function$
    SELECT d.next_attempt_at FROM deliveries d
    WHERE d.lane_id = lane AND d.status IN ('pending', 'retrying')
    ORDER BY d.seq LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION public.hookline_id(prefix text)
 RETURNS text
 LANGUAGE sql
 PARALLEL SAFE
AS $function$
    SELECT prefix || '_'
        || lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0')
        || lpad(to_hex((floor(extract(epoch FROM t) * 1000000)::bigint % 1000)::int), 3, '0')
        || substr(md5(gen_random_uuid()::text), 1, 17)
    FROM (SELECT clock_timestamp() AS t) AS now
$function$;

CREATE OR REPLACE FUNCTION public.hookline_id_floor(prefix text, at timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT prefix || '_' || lpad(to_hex(greatest(
        0, (extract(epoch FROM at) * 1000)::bigint - 60000)), 12, '0')
$function$;

CREATE OR REPLACE FUNCTION public.hookline_iso_time(moment timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
    SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$function$;

CREATE OR REPLACE FUNCTION public.hookline_lane_key(ordering text, ordering_key text, subject text, event_id text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT CASE ordering WHEN 'strict' THEN ''
                         WHEN 'keyed' THEN coalesce(ordering_key, subject, '')
                         ELSE event_id END
$function$;

CREATE OR REPLACE FUNCTION public.hookline_latency_bounds()
 RETURNS real[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT '{5,10,25,50,100,250,500,1000,2500,5000,10000,30000}'::real[]
$function$;

CREATE OR REPLACE FUNCTION public.hookline_replay_deliveries(p_tenant text, p_endpoint text, p_statuses text[], p_types text[], p_since timestamp with time zone, p_until timestamp with time zone, p_after text, p_lim bigint)
 RETURNS TABLE(id text, lane_id bigint)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT d.id, d.lane_id
    FROM deliveries d JOIN events ev ON ev.id = d.event_id
    WHERE d.tenant_id = p_tenant
      AND (p_endpoint IS NULL OR d.endpoint_id = p_endpoint)
      AND d.status = ANY (p_statuses)
      AND d.id > coalesce(greatest(p_after, hookline_id_floor('dlv', p_since)), '')
      AND (p_types IS NULL OR ev.type = ANY (p_types))
      AND (p_since IS NULL OR ev.created_at >= p_since) AND ev.created_at < p_until
      AND ev.cancelled_at IS NULL AND (ev.expires_at IS NULL OR ev.expires_at > now())
    ORDER BY d.id
    LIMIT p_lim
$function$;

CREATE OR REPLACE FUNCTION public.hookline_replay_missed(p_tenant text, p_endpoint text, p_types text[], p_since timestamp with time zone, p_until timestamp with time zone, p_after text, p_lim bigint)
 RETURNS TABLE(event_id text, subject text, ordering_key text)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT ev.id, ev.subject, ev.ordering_key
    FROM endpoints e JOIN events ev ON ev.tenant_id = e.tenant_id
    WHERE e.tenant_id = p_tenant AND e.id = p_endpoint
      AND ev.id > coalesce(greatest(p_after, hookline_id_floor('evt', p_since)), '')
      AND ev.created_at >= p_since AND ev.created_at < p_until
      AND ev.cancelled_at IS NULL AND (ev.expires_at IS NULL OR ev.expires_at > now())
      AND (p_types IS NULL OR ev.type = ANY (p_types))
      AND (e.event_types IS NULL OR ev.type = ANY (e.event_types))
      AND (ev.subscriber_id IS NULL OR ev.subscriber_id = e.subscriber_id)
      AND (e.schema_version IS NULL OR e.schema_version = ev.schema_version)
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.event_id = ev.id AND d.endpoint_id = e.id)
    ORDER BY ev.id
    LIMIT p_lim
$function$;

CREATE OR REPLACE FUNCTION public.hookline_retry_schedule(endpoint_schedule double precision[], tenant_schedule double precision[], installation double precision[])
 RETURNS double precision[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT coalesce(endpoint_schedule, tenant_schedule, installation)
$function$;

CREATE OR REPLACE FUNCTION public.hookline_take_lane_numbers(tenant text, endpoint_ids text[], lane_keys text[], counts bigint[])
 RETURNS TABLE(endpoint_id text, key text, lane_id bigint, next_seq bigint, unsure boolean)
 LANGUAGE sql
AS $function$
    WITH tail AS (
        INSERT INTO lane_tails AS l (endpoint_id, key, next_seq)
        SELECT w.endpoint_id, w.key, w.n
        FROM unnest(endpoint_ids, lane_keys, counts) AS w(endpoint_id, key, n)
        ORDER BY w.endpoint_id, w.key
        ON CONFLICT ON CONSTRAINT lane_tails_pkey
            DO UPDATE SET next_seq = l.next_seq + excluded.next_seq
        RETURNING l.lane_id, l.endpoint_id, l.key, l.next_seq, l.xmax = 0 AS created
    ), opened AS (
        INSERT INTO lanes (id, tenant_id, endpoint_id, key, ready_at)
        SELECT t.lane_id, tenant, t.endpoint_id, t.key, now() FROM tail t WHERE t.created
    ), woken AS (
        UPDATE lanes l SET ready_at = now()
        FROM (SELECT x.id FROM lanes x
              WHERE x.id IN (SELECT t.lane_id FROM tail t WHERE NOT t.created)
                AND x.ready_at IS NULL
              ORDER BY x.endpoint_id, x.key
              FOR NO KEY UPDATE) w
        WHERE l.id = w.id AND l.ready_at IS NULL
        RETURNING l.id
    )
    SELECT t.endpoint_id, t.key, t.lane_id, t.next_seq,
           NOT t.created AND t.lane_id NOT IN (SELECT w.id FROM woken w)
    FROM tail t
$function$;
