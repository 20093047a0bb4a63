-- A lane's tail (the last sequence number given out) gets its own row. Ingest numbers a
-- lane's deliveries under a row lock held until commit, so that numbers follow commit
-- order; that lock used to be on the lanes row, which workers lock too (to lease a lane and
-- to record what its attempts did), so the ingest of a hot lane waited on the worker's
-- transactions and the worker on ingest's. Now writers of deliveries lock the tail and
-- workers the lane: the two only meet when ingest wakes a lane that had nothing to send.
--   endpoint_id, key  the lane's identity, as in lanes
--   lane_id           the lanes row; a new lane takes its id here, with its tail
--   next_seq          the last sequence number given out in the lane
CREATE TABLE lane_tails (
    endpoint_id  text NOT NULL,
    key          text NOT NULL,
    lane_id      bigint NOT NULL DEFAULT nextval('lanes_id_seq'),
    next_seq     bigint NOT NULL,
    PRIMARY KEY (endpoint_id, key)
);
INSERT INTO lane_tails (endpoint_id, key, lane_id, next_seq)
SELECT endpoint_id, key, id, next_seq FROM lanes;
-- after the copy (checking it row by row would cost more than building it)
ALTER TABLE lane_tails ADD CONSTRAINT lane_tails_lane_id_fkey
    FOREIGN KEY (lane_id) REFERENCES lanes ON DELETE CASCADE;
CREATE UNIQUE INDEX lane_tails_lane_idx ON lane_tails (lane_id);
ALTER TABLE lanes DROP COLUMN next_seq;

