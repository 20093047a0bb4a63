-- A retry schedule of an endpoint's own (seconds between attempts), overriding
-- HOOKLINE_RETRY_SCHEDULE; NULL follows the installation's.
ALTER TABLE endpoints ADD COLUMN retry_schedule double precision[]
    CHECK (cardinality(retry_schedule) <= 50);
