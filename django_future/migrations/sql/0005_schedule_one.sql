-- Frozen for migration 0005_schedule_one: the live files of django_future/sql/ below,
-- as they stood when it was written. Do not edit: the live files are where the
-- current definitions are (see django_future/sql/__init__.py).

-- ---- schedule.sql

-- Scheduling one job: schedule_job() per call.
--
-- schedule_job used to send an INSERT of the "scheduled" event and leave the
-- rest to the triggers: stamp_event read the job's previous event to chain the
-- hash (there is none), fold_events turned the statement's transition table
-- into an array, read and locked the (absent) row, computed the hash a second
-- time to check it, folded and inserted the row; then schedule_job read the row
-- back with a second query. django_future_schedule_one does the same work once,
-- as the runner's claim and bulk scheduling do (see append.sql for the
-- django_future.folded setting): it computes the event's hash, folds the event
-- with django_future_fold (fold.sql, the fold that the trigger calls), appends
-- the event and inserts the row the fold returned, and returns that row, so
-- that schedule_job needs no second query.
--
-- The event is the one the INSERT made: the same data (the given data and the
-- window, resolved on the database's clock), time (the statement's) and hash
-- (chained to no previous event). The row is inserted whole, as the fold
-- returns it, so that a column added to the job table and to the fold needs no
-- change here.

-- Schedule one job whose "scheduled" event carries ``payload`` (without its
-- window). The window opens at start_at, or start_in from the database's
-- clock, and closes at end_at, or end_in after it opens (NULL both: never).
-- Returns the job's row; no row, and nothing written, if the window would
-- close before it opens ("schedule" in queries.sql).
CREATE OR REPLACE FUNCTION django_future_schedule_one(
    payload jsonb, start_at timestamptz, start_in interval, end_at timestamptz,
    end_in interval
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $schedule_one$
DECLARE
    opens timestamptz := COALESCE(start_at, statement_timestamp() + start_in);
    closes timestamptz := COALESCE(end_at, opens + end_in);
    e django_future_jobevent;
    job django_future_scheduledjob;
BEGIN
    IF closes < opens THEN
        RETURN;
    END IF;
    e.job_id := nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id'));
    e.seq := 1;
    e.kind := 'scheduled';
    e.at := statement_timestamp();
    e.data := payload || jsonb_build_object('time_slot_start', opens, 'time_slot_end', closes);
    e.hash := django_future_event_hash(NULL, e.job_id, 1, 'scheduled', e.at, NULL, e.data);
    job := django_future_fold(NULL, e);  -- raises if the event may not make a job
    PERFORM set_config('django_future.folded', 'on', true);
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    VALUES (e.job_id, e.seq, e.kind, e.at, NULL, e.data, e.hash);
    INSERT INTO django_future_scheduledjob SELECT job.*;
    PERFORM set_config('django_future.folded', '', true);
    PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
    RETURN NEXT job;
END
$schedule_one$;
