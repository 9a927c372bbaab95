-- Named SQL used at run time. Each query starts with a "-- name: <name>" line,
-- followed by a one-line description; ``django_future.sql.query(name)`` loads it.
-- Parameters are psycopg named placeholders. The fold trigger turns every
-- INSERT below into the matching change of the job's row.

-- name: schedule
-- Append a job's first event; the fold creates its row. Relative times are
-- resolved on the database clock so that every runner and every web process
-- agree on "now". Returns no row (and writes nothing) if the job would expire
-- before it is due.
WITH slot AS (
    SELECT start, COALESCE(%(end_at)s::timestamptz, start + %(end_in)s::interval) AS finish
    FROM (
        SELECT COALESCE(%(start_at)s::timestamptz,
                        statement_timestamp() + %(start_in)s::interval) AS start
    ) s
)
INSERT INTO django_future_jobevent (job_id, seq, kind, at, data)
SELECT
    nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')),
    1,
    'scheduled',
    statement_timestamp(),
    %(data)s::jsonb || jsonb_build_object('time_slot_start', start, 'time_slot_end', finish)
FROM slot
WHERE finish IS NULL OR finish >= start
RETURNING job_id;

-- name: append
-- Append the next event of one live job (seq = last_seq + 1). Returns nothing
-- if the job's row is gone; a concurrent append of the same step fails on the
-- (job_id, seq) unique constraint or in the fold.
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1, %(kind)s, statement_timestamp(), %(runner)s, %(data)s::jsonb
FROM django_future_scheduledjob
WHERE id = %(job_id)s
RETURNING seq;

-- name: expire
-- Append "expired" to every scheduled job whose window closed before now.
-- Rows another runner is working on are skipped, not waited for.
WITH gone AS (
    SELECT id, last_seq, time_slot_end
    FROM django_future_scheduledjob
    WHERE status = 'scheduled'
      AND time_slot_end < COALESCE(%(now)s::timestamptz, statement_timestamp())
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1, 'expired', statement_timestamp(), %(runner)s,
       jsonb_build_object('time_slot_end', time_slot_end,
                          'now', COALESCE(%(now)s::timestamptz, statement_timestamp()))
FROM gone
RETURNING job_id;

-- name: claim
-- Claim the oldest due jobs: lock them, skipping rows other runners hold, and
-- append "started" with this runner's identity, all in one statement.
WITH due AS (
    SELECT id, last_seq
    FROM django_future_scheduledjob
    WHERE status = 'scheduled'
      AND time_slot_start <= COALESCE(%(now)s::timestamptz, statement_timestamp())
      AND (time_slot_end IS NULL
           OR time_slot_end >= COALESCE(%(now)s::timestamptz, statement_timestamp()))
    ORDER BY time_slot_start, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1, 'started', statement_timestamp(), %(runner)s, '{}'::jsonb
FROM due
RETURNING job_id;

-- name: verify
-- Jobs whose row differs from what their events fold to (missing, extra or changed).
SELECT coalesce(j.id, r.job_id) AS job_id,
       to_jsonb(j) AS projection,
       CASE WHEN r.id IS NULL THEN NULL ELSE to_jsonb(r) - 'job_id' END AS folded
FROM (
    SELECT ids.job_id, f.*
    FROM (SELECT DISTINCT job_id FROM django_future_jobevent) ids
    CROSS JOIN LATERAL django_future_replay(ids.job_id) f
) r
FULL JOIN django_future_scheduledjob j ON j.id = r.id
WHERE (r.id IS NULL AND j.id IS NOT NULL)
   OR (r.id IS NOT NULL AND j.id IS NULL)
   OR (r.id IS NOT NULL AND to_jsonb(j) IS DISTINCT FROM (to_jsonb(r) - 'job_id'))
ORDER BY 1;

-- name: rebuild
-- Write every live job's row exactly as its events fold to (after the table was emptied).
INSERT INTO django_future_scheduledjob
SELECT f.*
FROM (SELECT DISTINCT job_id FROM django_future_jobevent) ids
CROSS JOIN LATERAL django_future_replay(ids.job_id) f
WHERE f.id IS NOT NULL;
