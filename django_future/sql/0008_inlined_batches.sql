-- Batches inline their transitions too.
--
-- 0005 inlined "started" and "completed" into the runner's one-job step; a
-- batch (runscheduledjobs --batch-size N) still went through 0003's set-based
-- statements, which fold each job's event with a PL/pgSQL call of
-- django_future_fold per row. Here those two statements call
-- django_future_started and django_future_completed (0005) instead, which the
-- planner writes into the UPDATE as plain expressions. Their WHERE clauses
-- already make the fold's checks: a batch starts only scheduled, due jobs, and
-- records a completion only for a job still running at the seq the runner saw.
-- The rest of both functions is 0003's, restated. The commit that added this
-- file gives the measurements.

CREATE OR REPLACE FUNCTION django_future_start_due(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text
) RETURNS void
LANGUAGE plpgsql AS $start_due$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    payload jsonb := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    cur django_future_scheduledjob;
BEGIN
    IF how_many <> 1 AND event_kind <> 'started' THEN
        -- Nothing has written "claimed" since migration 0002; batches inline "started".
        RAISE EXCEPTION 'django_future: a batch is started with "started" events, not "%"',
            event_kind;
    END IF;
    PERFORM set_config('django_future.folded', 'on', true);
    IF how_many = 1 THEN
        SELECT * INTO cur
        FROM django_future_scheduledjob j
        WHERE j.status = 'scheduled'
          AND j.time_slot_start <= cutoff
          AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
        ORDER BY j.time_slot_start, j.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            PERFORM django_future_append_folded(cur, event_kind, runner_name, payload);
        END IF;
    ELSE
        WITH due AS (
            SELECT j AS job
            FROM django_future_scheduledjob j
            WHERE j.status = 'scheduled'
              AND j.time_slot_start <= cutoff
              AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
            ORDER BY j.time_slot_start, j.id
            LIMIT how_many
            FOR UPDATE SKIP LOCKED
        ), appended AS (
            INSERT INTO django_future_jobevent AS e (job_id, seq, kind, at, runner, data, hash)
            SELECT (due.job).id, (due.job).last_seq + 1, event_kind, statement_timestamp(),
                   runner_name, payload,
                   django_future_event_hash((due.job).last_hash, (due.job).id,
                                            (due.job).last_seq + 1, event_kind,
                                            statement_timestamp(), runner_name, payload)
            FROM due
            RETURNING e
        )
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (f.status, f.time_slot_start, f.execution_start, f.execution_end,
               f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
               f.last_seq, f.last_hash)
        FROM due
        JOIN appended a ON (a.e).job_id = (due.job).id
        CROSS JOIN LATERAL (
            SELECT (n).* FROM (SELECT django_future_started(
                due.job, (a.e).seq, (a.e).at, (a.e).runner, runner_pk, (a.e).hash) AS n) s) f
        WHERE j.id = (due.job).id;
    END IF;
    PERFORM set_config('django_future.folded', '', true);
END
$start_due$;

CREATE OR REPLACE FUNCTION django_future_complete(
    ids bigint[], seqs integer[], return_values text[], seconds double precision[],
    runner_name text
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $complete$
DECLARE
    cur django_future_scheduledjob;
BEGIN
    PERFORM set_config('django_future.folded', 'on', true);
    IF cardinality(ids) = 1 THEN
        SELECT * INTO cur
        FROM django_future_scheduledjob j
        WHERE j.id = ids[1] AND j.last_seq = seqs[1] AND j.status = 'running'
        FOR UPDATE;
        IF FOUND THEN
            PERFORM django_future_append_folded(
                cur, 'completed', runner_name,
                jsonb_build_object('return_value', return_values[1], 'seconds', seconds[1]));
            RETURN NEXT cur.id;
        END IF;
    ELSE
        RETURN QUERY
        WITH mine AS (
            SELECT j AS job,
                   jsonb_build_object('return_value', d.return_value, 'seconds', d.seconds)
                       AS payload
            FROM unnest(ids, seqs, return_values, seconds) AS d(id, seq, return_value, seconds)
            JOIN django_future_scheduledjob j ON j.id = d.id AND j.last_seq = d.seq
            WHERE j.status = 'running'
            ORDER BY j.id
            FOR UPDATE OF j
        ), appended AS (
            INSERT INTO django_future_jobevent AS e (job_id, seq, kind, at, runner, data, hash)
            SELECT (mine.job).id, (mine.job).last_seq + 1, 'completed', statement_timestamp(),
                   runner_name, mine.payload,
                   django_future_event_hash((mine.job).last_hash, (mine.job).id,
                                            (mine.job).last_seq + 1, 'completed',
                                            statement_timestamp(), runner_name, mine.payload)
            FROM mine
            RETURNING e
        )
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (f.status, f.time_slot_start, f.execution_start, f.execution_end,
               f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
               f.last_seq, f.last_hash)
        FROM mine
        JOIN appended a ON (a.e).job_id = (mine.job).id
        CROSS JOIN LATERAL (
            SELECT (n).* FROM (SELECT django_future_completed(
                mine.job, (a.e).seq, (a.e).at, (a.e).data->>'return_value', (a.e).hash) AS n) s) f
        WHERE j.id = (mine.job).id
        RETURNING j.id;
    END IF;
    PERFORM set_config('django_future.folded', '', true);
END
$complete$;
