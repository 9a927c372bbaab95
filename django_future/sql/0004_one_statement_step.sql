-- The runner's step for one job (record the last job's completion, start the
-- next), with each row written once.
--
-- Until 0004 a runner working one job at a time went through
-- django_future_complete and django_future_start_due (0003): each read and
-- locked its job with SELECT ... FOR UPDATE, then appended and folded through
-- django_future_append_folded, which updated the row it had just locked. The
-- lock is a write of its own (the row's xmax, and a WAL record), and every
-- nested call copied the job's row in and out. Here each half is one UPDATE
-- that locks the row, folds the event into it and returns what the event
-- needs, followed by the event's INSERT: the shape of our rows written by hand
-- in the benchmark. The fold (django_future_fold) and the hash chain
-- (django_future_event_hash) are the same functions as everywhere else.
-- The commit that added this file says how it was measured against 0003's path.
--
-- The completion is recorded before the claim, in that order on purpose: a
-- claim's FOR UPDATE can keep a lock on a row it passed over (the newest
-- version of a row updated meanwhile, locked, then found no longer due), so a
-- runner that claimed first could hold another runner's finished job while
-- waiting to record its own: two such runners deadlock. The benchmark's floors
-- met exactly that when their single statement ran the claim first.
--
-- Batches (how_many > 1) and several completions keep 0003's set-based path,
-- renamed django_future_complete_and_claim_many.

ALTER FUNCTION django_future_complete_and_claim(jsonb, timestamptz, text, bigint, integer)
    RENAME TO django_future_complete_and_claim_many;

-- Same arguments and result as before (0003): the row of the job whose
-- completion was refused (taken meanwhile), if any, then the claimed job.
-- The event rows below are built with ROW(...) in django_future_jobevent's
-- column order (id, job_id, seq, kind, at, runner, hash, data): a column added
-- to that table must be added here too, or this function fails loudly.
CREATE FUNCTION django_future_complete_and_claim(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $complete_and_claim$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    finished jsonb;
    payload jsonb;
BEGIN
    IF how_many <> 1 OR jsonb_array_length(done) > 1 THEN
        RETURN QUERY SELECT * FROM django_future_complete_and_claim_many(
            done, claim_at, runner_name, runner_pk, how_many);
        RETURN;
    END IF;
    PERFORM set_config('django_future.folded', 'on', true);  -- see 0003

    IF jsonb_array_length(done) = 1 THEN
        -- [id, seq, return value, seconds]: recorded only while the job is still
        -- running at the seq the runner saw (as in 0002 and 0003).
        finished := done->0;
        payload := jsonb_build_object('return_value', finished->>2,
                                      'seconds', (finished->>3)::double precision);
        WITH completed AS (
            UPDATE django_future_scheduledjob j SET
                (status, time_slot_start, execution_start, execution_end, runner,
                 runner_process_id, attempts, error, return_value, last_seq, last_hash)
                = (SELECT f.status, f.time_slot_start, f.execution_start, f.execution_end,
                          f.runner, f.runner_process_id, f.attempts, f.error,
                          f.return_value, f.last_seq, f.last_hash
                   FROM django_future_fold(j, ROW(
                       NULL, j.id, j.last_seq + 1, 'completed', statement_timestamp(),
                       runner_name,
                       django_future_event_hash(j.last_hash, j.id, j.last_seq + 1,
                                                'completed', statement_timestamp(),
                                                runner_name, payload),
                       payload)::django_future_jobevent) f)
            WHERE j.id = (finished->>0)::bigint
              AND j.last_seq = (finished->>1)::integer
              AND j.status = 'running'
            RETURNING j.id, j.last_seq, j.last_hash
        )
        INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
        SELECT c.id, c.last_seq, 'completed', statement_timestamp(), runner_name, payload,
               c.last_hash
        FROM completed c;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM django_future_scheduledjob j
                         WHERE j.id = (finished->>0)::bigint;
        END IF;
    END IF;

    -- The oldest due job, started for this runner: the fold's result is the new
    -- row (its last_seq and last_hash are the event's), which the INSERT copies.
    payload := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    RETURN QUERY
    WITH started AS (
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (SELECT f.status, f.time_slot_start, f.execution_start, f.execution_end,
                      f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
                      f.last_seq, f.last_hash
               FROM django_future_fold(j, ROW(
                   NULL, j.id, j.last_seq + 1, 'started', statement_timestamp(), runner_name,
                   django_future_event_hash(j.last_hash, j.id, j.last_seq + 1, 'started',
                                            statement_timestamp(), runner_name, payload),
                   payload)::django_future_jobevent) f)
        WHERE j.id = (
            SELECT d.id
            FROM django_future_scheduledjob d
            WHERE d.status = 'scheduled'
              AND d.time_slot_start <= cutoff
              AND (d.time_slot_end IS NULL OR d.time_slot_end >= cutoff)
            ORDER BY d.time_slot_start, d.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
        RETURNING j.*
    ), start_event AS (
        INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
        SELECT s.id, s.last_seq, 'started', statement_timestamp(), runner_name, payload,
               s.last_hash
        FROM started s
    )
    SELECT * FROM started;
    PERFORM set_config('django_future.folded', '', true);
END
$complete_and_claim$;
