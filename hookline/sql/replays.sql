-- name: count_replay
-- How many deliveries a replay with this filter would queue now: existing ones to re-queue
-- and, with missed, events the endpoint never got. Changes nothing.
-- $1 tenant_id, $2 endpoint id or NULL, $3 statuses, $4 types or NULL, $5 since or NULL,
-- $6 until or NULL, $7 missed
SELECT (SELECT count(*) FROM hookline_replay_deliveries(
            $1, $2, $3, $4, $5, least(coalesce($6, now()), now()), NULL, NULL))
     + CASE WHEN $7 THEN (SELECT count(*) FROM hookline_replay_missed(
            $1, $2, $4, $5, least(coalesce($6, now()), now()), NULL, NULL))
            ELSE 0 END;

-- name: create_replay
-- Start a replay, counting what it will queue in the same snapshot. No row: the endpoint
-- is not the tenant's (or not the subscriber's). $1 tenant_id, $2 endpoint id or NULL,
-- $3 statuses, $4 types or NULL, $5 since or NULL, $6 until or NULL, $7 missed, $8 rate,
-- $9 subscriber id (its endpoints only; then an endpoint is required) or NULL
INSERT INTO replays (tenant_id, endpoint_id, statuses, event_types, since, until, missed, rate,
                     stage, total)
SELECT $1, $2, $3, $4, $5, $6, $7, $8,
       CASE WHEN cardinality($3::text[]) = 0 THEN 'missed' ELSE 'deliveries' END,
       (SELECT count(*) FROM hookline_replay_deliveries(
            $1, $2, $3, $4, $5, least(coalesce($6, now()), now()), NULL, NULL))
       + CASE WHEN $7 THEN (SELECT count(*) FROM hookline_replay_missed(
            $1, $2, $4, $5, least(coalesce($6, now()), now()), NULL, NULL))
              ELSE 0 END
WHERE ($2::text IS NULL AND $9::text IS NULL)
   OR EXISTS (SELECT 1 FROM endpoints
              WHERE tenant_id = $1 AND id = $2 AND ($9::text IS NULL OR subscriber_id = $9))
RETURNING *;

-- name: replay_endpoint_visible
-- Whether the tenant (and, when given, the subscriber) has this endpoint.
-- $1 tenant_id, $2 endpoint id, $3 subscriber id or NULL
SELECT EXISTS (SELECT 1 FROM endpoints
               WHERE tenant_id = $1 AND id = $2 AND ($3::text IS NULL OR subscriber_id = $3));

-- name: get_replay
-- One replay. $1 tenant_id, $2 replay id, $3 subscriber id (only replays of its endpoints)
-- or NULL
SELECT * FROM replays r
WHERE tenant_id = $1 AND id = $2
  AND ($3::text IS NULL
       OR EXISTS (SELECT 1 FROM endpoints e WHERE e.id = r.endpoint_id AND e.subscriber_id = $3));

-- name: list_replays
-- A page of replays, newest first. $1 tenant_id, $2 endpoint id or NULL, $3 state or NULL,
-- $4 cursor id or NULL, $5 limit, $6 subscriber id (only replays of its endpoints) or NULL
SELECT * FROM replays r
WHERE tenant_id = $1
  AND ($2::text IS NULL OR endpoint_id = $2)
  AND ($3::text IS NULL OR state = $3)
  AND ($4::text IS NULL OR id < $4)
  AND ($6::text IS NULL
       OR EXISTS (SELECT 1 FROM endpoints e WHERE e.id = r.endpoint_id AND e.subscriber_id = $6))
ORDER BY id DESC LIMIT $5;

-- name: set_replay_state
-- Move a replay to a state from one of the states it may come from; cancelling finishes it.
-- No row: no such replay (of the subscriber's endpoints), or it is in another state.
-- $1 tenant_id, $2 replay id, $3 new state, $4 states it may come from, $5 subscriber id
-- or NULL
UPDATE replays r
SET state = $3, updated_at = now(),
    finished_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE finished_at END
WHERE tenant_id = $1 AND id = $2 AND state = ANY ($4::text[])
  AND ($5::text IS NULL
       OR EXISTS (SELECT 1 FROM endpoints e WHERE e.id = r.endpoint_id AND e.subscriber_id = $5))
RETURNING *;
