-- Metrics: the ledger's totals, folded at scrape time (docs/metrics.md).
--
-- A scrape must not read every event: at a million events that is hundreds of
-- milliseconds. So each scrape first folds the events appended since the last one
-- into small tables (events per kind; histogram buckets of job duration and queue
-- wait) and then reads those. Every event is folded once, by whichever process
-- scrapes first; all processes read the same totals. Nothing is added to the
-- runners' path: the fold's cost is paid by the scrape, per new event.
--
-- Commit order is not id order: an event with a smaller id can become visible after
-- one with a larger id (its transaction was longer). The fold therefore remembers the
-- ids it passed without seeing (django_future_metricgap) and looks for them again at
-- each fold. A gap is dropped once every transaction that was running when it was
-- noted has ended (and a minute has passed): its ids were rolled back, or pruned.
--
-- All reads of the events happen in one statement, so in one snapshot: what is
-- folded and what is noted as a gap cannot disagree.

-- Upper bounds (seconds) of the histograms' buckets, up to a day; the last is +Inf.
CREATE OR REPLACE FUNCTION django_future_metric_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
                 1800, 3600, 7200, 14400, 43200, 86400, 'Infinity']::double precision[]
$$;

-- The bucket of a value: the smallest bound at or above it.
CREATE OR REPLACE FUNCTION django_future_metric_le(value double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT min(b) FROM unnest(django_future_metric_bounds()) AS b WHERE value <= b
$$;

-- Fold at most max_events new events (ids above the mark, oldest first) and every
-- gap's events that have appeared. Returns how many events were folded, or NULL when
-- another transaction is folding right now (its result is read instead: a scrape never
-- waits for another).
CREATE OR REPLACE FUNCTION django_future_metrics_fold(max_events integer)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('django_future_metrics_fold')) THEN
        RETURN NULL;
    END IF;
    INSERT INTO django_future_metricmark (id, upto) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

    WITH mark AS (
        SELECT upto FROM django_future_metricmark WHERE id = 1
    ), ahead AS (
        SELECT e.id, e.job_id, e.seq, e.kind, e.at, e.data
        FROM django_future_jobevent e
        WHERE e.id > (SELECT upto FROM mark)
        ORDER BY e.id
        LIMIT max_events
    ), found AS (
        SELECT e.id, e.job_id, e.seq, e.kind, e.at, e.data
        FROM django_future_metricgap g
        JOIN django_future_jobevent e ON e.id >= g.lo AND e.id < g.hi
    ), new AS (
        SELECT * FROM ahead UNION ALL SELECT * FROM found
    ), top AS (
        SELECT GREATEST((SELECT upto FROM mark), (SELECT max(id) FROM ahead)) AS upto
    ), seen AS (
        SELECT COALESCE(range_agg(int8range(id, id + 1)), '{}'::int8multirange) AS ids
        FROM new
    ), pending AS (
        -- the old gaps and the ids passed over now, less what was seen
        SELECT unnest(int8multirange(int8range(g.lo, g.hi)) - seen.ids) AS r,
               g.xid_bound, g.noted_at
        FROM django_future_metricgap g, seen
        UNION ALL
        SELECT unnest(int8multirange(int8range((SELECT upto FROM mark) + 1, top.upto + 1))
                      - seen.ids),
               pg_snapshot_xmax(pg_current_snapshot())::text::bigint, statement_timestamp()
        FROM top, seen
    ), cleared AS (
        DELETE FROM django_future_metricgap RETURNING id
    ), noted AS (
        INSERT INTO django_future_metricgap (lo, hi, xid_bound, noted_at)
        SELECT lower(r), upper(r), xid_bound, noted_at
        FROM pending
        WHERE NOT isempty(r)
          AND NOT (xid_bound <= pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                   AND noted_at < statement_timestamp() - interval '1 minute')
        RETURNING id
    ), moved AS (
        UPDATE django_future_metricmark m SET upto = top.upto FROM top WHERE m.id = 1
        RETURNING m.id
    ), kinds AS (
        INSERT INTO django_future_metricevents AS t (kind, events)
        SELECT kind, count(*) FROM new GROUP BY kind
        ON CONFLICT (kind) DO UPDATE SET events = t.events + excluded.events
        RETURNING kind
    ), observed AS (
        -- how long each finished attempt ran (recorded by the runner)
        -- (a number only: an event written by hand with something else is not counted)
        SELECT 'duration' AS histogram, (data->>'seconds')::double precision AS value
        FROM new
        WHERE kind IN ('completed', 'failed') AND jsonb_typeof(data->'seconds') = 'number'
        UNION ALL
        -- how long each started job had been due: from its due time (the scheduled
        -- event's slot start, or the latest retry's due time) to its start
        SELECT 'wait', GREATEST(0, extract(epoch FROM new.at - due.at)::double precision)
        FROM new
        CROSS JOIN LATERAL (
            SELECT CASE p.kind WHEN 'retry' THEN (p.data->>'due')::timestamptz
                               ELSE (p.data->>'time_slot_start')::timestamptz END AS at
            FROM django_future_jobevent p
            WHERE p.job_id = new.job_id AND p.seq < new.seq
              AND p.kind IN ('scheduled', 'retry')
            ORDER BY p.seq DESC
            LIMIT 1
        ) due
        WHERE new.kind = 'started' AND due.at IS NOT NULL
    ), buckets AS (
        INSERT INTO django_future_metricbucket AS t (histogram, le, jobs, seconds)
        SELECT histogram, django_future_metric_le(value), count(*), sum(value)
        FROM observed
        WHERE value IS NOT NULL
        GROUP BY 1, 2
        ON CONFLICT (histogram, le) DO UPDATE
            SET jobs = t.jobs + excluded.jobs, seconds = t.seconds + excluded.seconds
        RETURNING histogram
    )
    SELECT count(*) + 0 * ((SELECT count(*) FROM cleared) + (SELECT count(*) FROM noted)
                           + (SELECT count(*) FROM moved) + (SELECT count(*) FROM kinds)
                           + (SELECT count(*) FROM buckets))
    INTO folded
    FROM new;
    RETURN folded;
END;
$$;
