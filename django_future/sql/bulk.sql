-- Bulk scheduling: one chunk of schedule_jobs() per call.
--
-- schedule_jobs sends a few hundred jobs at a time in pipeline mode, one call
-- of django_future_schedule_lines each, and prepares the next chunk while the
-- database writes this one. The database assigns the ids. The function appends
-- the "scheduled" events with their hashes and creates the jobs' rows in one
-- statement, folding them itself (see append.sql for the django_future.folded
-- setting). What "scheduled" makes of a job is django_future_scheduled
-- (fold.sql), which the INSERT inlines, and the new rows are checked as the
-- fold checks them (fold.sql, "checked when its events make them"). A chunk
-- that holds a job with a unique key goes to django_future_schedule_unique_lines
-- instead (unique.sql): this INSERT has no answer to a key already held.

-- Schedule one chunk: "lines" holds one job per line, each the JSON data of its
-- "scheduled" event (JSON text has no raw newline). Returns the new ids in the
-- order of the lines ("schedule_lines" in queries.sql).
CREATE OR REPLACE FUNCTION django_future_schedule_lines(lines text)
RETURNS bigint[]
LANGUAGE plpgsql AS $schedule_lines$
DECLARE
    -- Looked up once: per row, pg_get_serial_sequence's catalog lookups were a
    -- tenth of this function's time.
    job_ids regclass := pg_get_serial_sequence('django_future_scheduledjob', 'id')::regclass;
    ids bigint[];
BEGIN
    PERFORM set_config('django_future.folded', 'on', true);
    -- Each job's id, data and hash once; both INSERTs read them from here.
    WITH given AS MATERIALIZED (
        SELECT j.id, j.data, j.n,
               django_future_event_hash(NULL, j.id, 1, 'scheduled', statement_timestamp(),
                                        NULL, j.data) AS hash
        FROM (SELECT nextval(job_ids) AS id, line.data::jsonb AS data, line.n
              FROM string_to_table(lines, E'\n') WITH ORDINALITY AS line(data, n)) j
    ), appended AS (
        INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
        SELECT g.id, 1, 'scheduled', statement_timestamp(), NULL, g.data, g.hash
        FROM given g
    ), created AS (
        INSERT INTO django_future_scheduledjob
            (id, callable_name, content_type_id, object_id, args, kwargs, time_slot_start,
             time_slot_end, atomic, max_attempts, retry_delay, retry_max_delay, attempts,
             status, created_at, last_seq, last_hash, queue, priority, unique_key, unique_while,
             lock)
        SELECT g.id, (c.n).callable_name, (c.n).content_type_id, (c.n).object_id, (c.n).args,
               (c.n).kwargs, (c.n).time_slot_start, (c.n).time_slot_end, (c.n).atomic,
               (c.n).max_attempts, (c.n).retry_delay, (c.n).retry_max_delay, (c.n).attempts,
               (c.n).status, (c.n).created_at, (c.n).last_seq, (c.n).last_hash, (c.n).queue,
               (c.n).priority, (c.n).unique_key, (c.n).unique_while, (c.n).lock
        FROM given g
        CROSS JOIN LATERAL (
            SELECT django_future_scheduled(g.data, statement_timestamp(), g.hash) AS n) c
        RETURNING id, max_attempts, time_slot_start, time_slot_end, queue, priority
    ), refused AS (
        -- The rows as stored: checking them here reads each value once, where checking
        -- the event's data again would parse its times a second time. The call is in
        -- the WHERE clause, after the cheap test, because EXISTS below drops a
        -- subquery's select list unevaluated.
        SELECT FROM created r
        WHERE (r.max_attempts < 1 OR r.time_slot_end < r.time_slot_start
               OR r.priority NOT BETWEEN -100 AND 100 OR r.queue = '')
          AND django_future_refuse(
                  CASE WHEN r.max_attempts < 1
                  THEN format('django_future: job %s: retries must be 0 or more, got %s',
                              r.id, r.max_attempts - 1)
                  WHEN r.priority NOT BETWEEN -100 AND 100
                  THEN format('django_future: job %s: priority must be from -100 to 100, got %s',
                              r.id, r.priority)
                  WHEN r.queue = ''
                  THEN format('django_future: job %s: the queue name is empty', r.id)
                  ELSE format('django_future: job %s cannot expire (%s) before it is due (%s)',
                              r.id, r.time_slot_end, r.time_slot_start)
                  END, true)
    )
    SELECT array_agg(g.id ORDER BY g.n) INTO ids
    FROM given g
    WHERE NOT EXISTS (SELECT FROM refused);  -- reads refused, so that it runs
    PERFORM set_config('django_future.folded', '', true);
    IF ids IS NOT NULL THEN
        PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
    END IF;
    RETURN ids;
END
$schedule_lines$;
