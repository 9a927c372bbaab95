-- The fold: the one definition of "a job's state after this event".
--
-- django_future_fold(state, event) is pure: it takes the job's row as it was
-- (all NULL before the first event) and returns the row as it must be after
-- the event, or a NULL id when the event removes the row. It raises on any
-- event that does not follow from the state (wrong sequence number, or a
-- transition the job's status does not allow).
--
-- django_future_apply(event) is what the AFTER INSERT trigger on the ledger
-- calls: it locks the job's row, folds, and writes the result. Because it runs
-- inside the INSERT statement, the event and the projection commit or roll
-- back together. When a job becomes due-able (scheduled, retried, released) it
-- sends NOTIFY django_future, delivered at commit, to wake sleeping workers.
--
-- django_future_replay(job_id) folds a job's whole history from nothing; the
-- verify and rebuild paths use it, so they cannot disagree with live appends.

CREATE OR REPLACE FUNCTION django_future_fold(
    s django_future_scheduledjob, e django_future_jobevent
) RETURNS django_future_scheduledjob
LANGUAGE plpgsql IMMUTABLE AS $fold$
BEGIN
    IF e.kind = 'scheduled' THEN
        IF s.id IS NOT NULL OR e.seq <> 1 THEN
            RAISE EXCEPTION 'django_future: job % already has events; "scheduled" must be its first event (seq 1, got %)',
                e.job_id, e.seq USING ERRCODE = 'serialization_failure';
        END IF;
        s.id := e.job_id;
        s.callable_name := e.data->>'callable_name';
        s.content_type_id := (e.data->>'content_type_id')::integer;
        s.object_id := e.data->>'object_id';
        s.args := COALESCE(e.data->'args', '[]'::jsonb);
        s.kwargs := COALESCE(e.data->'kwargs', '{}'::jsonb);
        s.time_slot_start := (e.data->>'time_slot_start')::timestamptz;
        s.time_slot_end := (e.data->>'time_slot_end')::timestamptz;
        s.atomic := COALESCE((e.data->>'atomic')::boolean, false);
        s.max_attempts := COALESCE((e.data->>'retries')::integer, 0) + 1;
        s.retry_delay := make_interval(secs => (e.data->>'retry_delay')::double precision);
        s.retry_max_delay := make_interval(secs => (e.data->>'retry_max_delay')::double precision);
        s.attempts := 0;
        s.status := 'scheduled';
        s.created_at := e.at;
        s.last_seq := e.seq;
        RETURN s;
    END IF;

    IF s.id IS NULL THEN
        RAISE EXCEPTION 'django_future: no live job % to append "%" to (never scheduled, or deleted)',
            e.job_id, e.kind;
    END IF;
    IF e.seq <> s.last_seq + 1 THEN
        RAISE EXCEPTION 'django_future: job % is at event %, so the next event must be %, got %',
            e.job_id, s.last_seq, s.last_seq + 1, e.seq USING ERRCODE = 'serialization_failure';
    END IF;

    CASE e.kind
    WHEN 'claimed' THEN
        IF s.status <> 'scheduled' THEN
            RAISE EXCEPTION 'django_future: job % cannot be claimed: it is %', e.job_id, s.status;
        END IF;
        s.status := 'claimed';
        s.runner := e.runner;
        s.runner_process_id := (e.data->>'runner_id')::bigint;
    WHEN 'started' THEN
        IF s.status NOT IN ('scheduled', 'claimed') THEN
            RAISE EXCEPTION 'django_future: job % cannot start: it is %', e.job_id, s.status;
        END IF;
        s.status := 'running';
        s.execution_start := e.at;
        s.execution_end := NULL;
        s.runner := e.runner;
        s.runner_process_id := (e.data->>'runner_id')::bigint;
        s.attempts := s.attempts + 1;
    WHEN 'completed' THEN
        IF s.status <> 'running' THEN
            RAISE EXCEPTION 'django_future: job % cannot complete: it is %', e.job_id, s.status;
        END IF;
        s.status := 'complete';
        s.execution_end := e.at;
        s.return_value := e.data->>'return_value';
        s.error := NULL;
    WHEN 'failed', 'abandoned' THEN
        IF s.status <> 'running' THEN
            RAISE EXCEPTION 'django_future: job % cannot be %: it is %', e.job_id, e.kind, s.status;
        END IF;
        s.status := 'failed';
        s.execution_end := e.at;
        s.error := e.data->>'error';
    WHEN 'retry' THEN
        IF s.status <> 'failed' THEN
            RAISE EXCEPTION 'django_future: job % cannot be retried: it is %', e.job_id, s.status;
        END IF;
        IF s.attempts >= s.max_attempts THEN
            RAISE EXCEPTION 'django_future: job % has no attempts left (% of %)',
                e.job_id, s.attempts, s.max_attempts;
        END IF;
        s.status := 'scheduled';
        s.time_slot_start := (e.data->>'due')::timestamptz;
        s.execution_start := NULL;
        s.execution_end := NULL;
        s.runner := NULL;
        s.runner_process_id := NULL;
    WHEN 'released' THEN
        IF s.status <> 'claimed' THEN
            RAISE EXCEPTION 'django_future: job % cannot be released: it is %', e.job_id, s.status;
        END IF;
        s.status := 'scheduled';
        s.runner := NULL;
        s.runner_process_id := NULL;
    WHEN 'expired' THEN
        IF s.status <> 'scheduled' THEN
            RAISE EXCEPTION 'django_future: job % cannot expire: it is %', e.job_id, s.status;
        END IF;
        s.status := 'expired';
    WHEN 'cancelled' THEN
        IF s.status <> 'scheduled' THEN
            RAISE EXCEPTION 'django_future: job % cannot be cancelled: it is %', e.job_id, s.status
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        s.status := 'cancelled';
    WHEN 'deleted' THEN
        IF s.status NOT IN ('complete', 'failed', 'expired', 'cancelled') THEN
            RAISE EXCEPTION 'django_future: job % cannot be deleted: it is %', e.job_id, s.status;
        END IF;
        s.id := NULL;
        RETURN s;
    ELSE
        RAISE EXCEPTION 'django_future: unknown event kind "%"', e.kind;
    END CASE;

    s.last_seq := e.seq;
    RETURN s;
END
$fold$;


CREATE OR REPLACE FUNCTION django_future_apply(e django_future_jobevent)
RETURNS void
LANGUAGE plpgsql AS $apply$
DECLARE
    cur django_future_scheduledjob;
    nxt django_future_scheduledjob;
BEGIN
    SELECT * INTO cur FROM django_future_scheduledjob WHERE id = e.job_id FOR UPDATE;
    nxt := django_future_fold(cur, e);

    IF cur.id IS NULL THEN
        INSERT INTO django_future_scheduledjob
        SELECT nxt.*;
    ELSIF nxt.id IS NULL THEN
        DELETE FROM django_future_scheduledjob WHERE id = e.job_id;
    ELSE
        -- Only what events after "scheduled" can change.
        UPDATE django_future_scheduledjob SET
            status = nxt.status,
            time_slot_start = nxt.time_slot_start,
            execution_start = nxt.execution_start,
            execution_end = nxt.execution_end,
            runner = nxt.runner,
            runner_process_id = nxt.runner_process_id,
            attempts = nxt.attempts,
            error = nxt.error,
            return_value = nxt.return_value,
            last_seq = nxt.last_seq
        WHERE id = e.job_id;
    END IF;

    IF nxt.status = 'scheduled' THEN
        PERFORM pg_notify('django_future', '');
    END IF;
END
$apply$;


CREATE OR REPLACE FUNCTION django_future_replay(job bigint)
RETURNS django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $replay$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE job_id = job ORDER BY seq LOOP
        s := django_future_fold(s, e);
    END LOOP;
    RETURN s;
END
$replay$;


-- The audit view: one row per event, with what the job was (taken from its
-- "scheduled" event, so it still answers after the job's row is deleted) and
-- its current status (NULL once deleted).
CREATE OR REPLACE VIEW django_future_job_history AS
SELECT
    e.id AS event_id,
    e.job_id,
    e.seq,
    e.kind,
    e.at,
    e.runner,
    s.data->>'callable_name' AS callable_name,
    s.data->>'content_type' AS content_type,
    s.data->>'object_id' AS object_id,
    s.data->'args' AS args,
    s.data->'kwargs' AS kwargs,
    (s.data->>'time_slot_start')::timestamptz AS due_at,
    j.status AS current_status,
    e.data->>'exception' AS exception,
    e.data->>'error' AS error,
    e.data->>'return_value' AS return_value,
    e.data
FROM django_future_jobevent e
JOIN django_future_jobevent s ON s.job_id = e.job_id AND s.seq = 1
LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id;
