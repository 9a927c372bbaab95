-- Unique jobs: schedule_job(..., unique_key=...) and keyed items of schedule_jobs().
--
-- Which jobs hold their key
-- -------------------------
-- A job scheduled with a unique key holds it while it is "pending", or, if it
-- was scheduled with unique_while="active", while it is pending or running.
-- While a job holds a key, no second job can hold it: the partial unique index
-- django_future_unique_key (declared in models.py) covers exactly the rows that
-- hold their key, and this file's functions ask it with ON CONFLICT, so that of
-- any number of racing transactions one inserts and the others wait for it and
-- then find its job. The database answers the race; no lock is taken first.
--
-- "Pending" is the job as it was scheduled, never touched since: status
-- 'scheduled' and last_seq = 1. A job that has started once does not hold its
-- key again when it goes back to 'scheduled' (a retry after a failure, an
-- "abandoned" job recovered and retried, or a "released" one handed back by a
-- stopping runner), which is what makes those transitions safe: the runner's
-- statements that write them never meet the index, even when a newer job took
-- the key meanwhile. For a debounce this is the point: the request that came
-- after the job started is a new one and gets a job of its own; the older job's
-- retry still runs, so nothing asked for is lost (the cost, in that rare case,
-- is one more run).
--
-- An "active" job holds its key from its "scheduled" event to the end of its
-- last attempt: 'scheduled', 'claimed' or 'running', first time or not. It
-- never lets go of it in between, because the runner writes "failed" and its
-- "retry" in one transaction, and "abandoned" and its "retry" too (a concurrent
-- insert waits on the unique index for that transaction, and then meets the
-- retried job), and "released" goes from 'running' to 'scheduled' directly. So
-- an active job's retry cannot meet a newer holder either.
--
-- The holder's own choice decides: a call with unique_while="active" whose key
-- is held by a pending-mode job gets that job; once that job starts, the key is
-- free for either kind.
--
-- The predicate below is written three times and must stay the same: in the
-- index (models.py, ScheduledJob.Meta.constraints) and in the ON CONFLICT and
-- the SELECT of django_future_schedule_keyed. tests/scheduler/test_unique.py
-- proves that the index answers the ON CONFLICT.
--
-- Jobs without a key never come here: schedule_job and schedule_jobs send them
-- through schedule.sql and bulk.sql as before, so the key costs them nothing
-- but the index's test of a NULL key on each write of a job's row.

-- One keyed job whose "scheduled" event carries ``payload``, its window already
-- in it (time_slot_start, time_slot_end): its row with created true, or, if a
-- job holds the key, that job's row with created false and nothing written.
-- A payload without a key (an item of a bulk chunk that holds keyed ones) is
-- scheduled like any other job.
CREATE OR REPLACE FUNCTION django_future_schedule_keyed(payload jsonb)
RETURNS TABLE (created boolean, job django_future_scheduledjob)
LANGUAGE plpgsql AS $schedule_keyed$
DECLARE
    e django_future_jobevent;
    n django_future_scheduledjob;
    wanted text := payload->>'unique_key';
BEGIN
    e.job_id := nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id'));
    e.seq := 1;
    e.kind := 'scheduled';
    e.at := statement_timestamp();
    e.data := payload;
    e.hash := django_future_event_hash(NULL, e.job_id, 1, 'scheduled', e.at, NULL, e.data);
    n := django_future_fold(NULL, e);  -- raises if the event may not make a job
    -- Each statement of this (volatile) function reads a new snapshot: the SELECT
    -- sees the holder that the INSERT waited for and met. If the holder started
    -- between the two (a pending-mode job), the key is free again: try again.
    FOR attempt IN 1..10 LOOP
        PERFORM set_config('django_future.folded', 'on', true);
        -- The row first: the event is appended only if the row was made.
        INSERT INTO django_future_scheduledjob SELECT n.*
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND (
            (status = 'scheduled' AND last_seq = 1)
            OR (unique_while = 'active' AND status IN ('scheduled', 'claimed', 'running')))
        DO NOTHING;
        IF FOUND THEN
            INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
            VALUES (e.job_id, e.seq, e.kind, e.at, NULL, e.data, e.hash);
            PERFORM set_config('django_future.folded', '', true);
            PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
            created := true;
            job := n;
            RETURN NEXT;
            RETURN;
        END IF;
        PERFORM set_config('django_future.folded', '', true);
        SELECT j.* INTO job
        FROM django_future_scheduledjob j
        WHERE j.unique_key = wanted AND (
            (j.status = 'scheduled' AND j.last_seq = 1)
            OR (j.unique_while = 'active' AND j.status IN ('scheduled', 'claimed', 'running')));
        IF FOUND THEN
            created := false;
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'django_future: the unique key % changed hands ten times while a job was scheduled with it; try again',
        quote_literal(wanted) USING ERRCODE = 'serialization_failure';
END
$schedule_keyed$;

-- schedule_job with a unique key: as django_future_schedule_one (schedule.sql),
-- the window resolved on the database's clock, and no row (nothing written) if
-- it would close before it opens; else django_future_schedule_keyed's answer
-- ("schedule_unique" in queries.sql).
CREATE OR REPLACE FUNCTION django_future_schedule_unique(
    payload jsonb, start_at timestamptz, start_in interval, end_at timestamptz,
    end_in interval
) RETURNS TABLE (created boolean, job django_future_scheduledjob)
LANGUAGE plpgsql AS $schedule_unique$
DECLARE
    opens timestamptz := COALESCE(start_at, statement_timestamp() + start_in);
    closes timestamptz := COALESCE(end_at, opens + end_in);
BEGIN
    IF closes < opens THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM django_future_schedule_keyed(
        payload || jsonb_build_object('time_slot_start', opens, 'time_slot_end', closes));
END
$schedule_unique$;

-- A chunk of schedule_jobs() that holds at least one keyed job: as
-- django_future_schedule_lines (bulk.sql), one job per line, but each through
-- django_future_schedule_keyed, one after another, so that a later line meets
-- the key an earlier one took. Returns, in line order, each new job's id, or
-- for a line whose key was held, the holder's id ("schedule_unique_lines" in
-- queries.sql). One statement per job instead of one per chunk: slower than
-- the keyless bulk path, which chunks without keys keep.
CREATE OR REPLACE FUNCTION django_future_schedule_unique_lines(lines text)
RETURNS bigint[]
LANGUAGE plpgsql AS $schedule_unique_lines$
DECLARE
    ids bigint[] := '{}';
    line text;
    got bigint;
BEGIN
    FOR line IN SELECT l.data FROM string_to_table(lines, E'\n') WITH ORDINALITY AS l(data, n)
                ORDER BY l.n LOOP
        SELECT (k.job).id INTO got FROM django_future_schedule_keyed(line::jsonb) k;
        ids := ids || got;
    END LOOP;
    RETURN ids;
END
$schedule_unique_lines$;
