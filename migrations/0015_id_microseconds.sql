-- Ids made within the same millisecond sorted at random (the 20 digits after the time were
-- all random), so "newest first" could show two things created one after the other in
-- either order. The three digits after the milliseconds now hold the microseconds within
-- it (0-999), then 17 random hex digits: the same length and the same order between
-- milliseconds as before, so existing ids keep sorting with new ones.
CREATE OR REPLACE FUNCTION hookline_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT prefix || '_'
        || lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0')
        || lpad(to_hex((floor(extract(epoch FROM t) * 1000000)::bigint % 1000)::int), 3, '0')
        || substr(md5(gen_random_uuid()::text), 1, 17)
    FROM (SELECT clock_timestamp() AS t) AS now
$$;
