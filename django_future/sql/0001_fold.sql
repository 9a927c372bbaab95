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
-- back together.
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
    WHEN 'started' THEN
        IF s.status <> 'scheduled' THEN
            RAISE EXCEPTION 'django_future: job % cannot start: it is %', e.job_id, s.status;
        END IF;
        s.status := 'running';
        s.execution_start := e.at;
        s.runner := e.runner;
    WHEN 'completed' THEN
        IF s.status <> 'running' THEN
            RAISE EXCEPTION 'django_future: job % cannot complete: it is %', e.job_id, s.status;
        END IF;
        s.status := 'complete';
        s.execution_end := e.at;
        s.return_value := e.data->>'return_value';
    WHEN 'failed' THEN
        IF s.status <> 'running' THEN
            RAISE EXCEPTION 'django_future: job % cannot fail: it is %', e.job_id, s.status;
        END IF;
        s.status := 'failed';
        s.execution_end := e.at;
        s.error := e.data->>'error';
    WHEN 'expired' THEN
        IF s.status <> 'scheduled' THEN
            RAISE EXCEPTION 'django_future: job % cannot expire: it is %', e.job_id, s.status;
        END IF;
        s.status := 'expired';
    WHEN 'deleted' THEN
        IF s.status NOT IN ('complete', 'failed', 'expired') THEN
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
        INSERT INTO django_future_scheduledjob (
            id, callable_name, content_type_id, object_id, args, kwargs,
            time_slot_start, time_slot_end, status, execution_start, execution_end,
            runner, error, return_value, created_at, last_seq
        ) VALUES (
            nxt.id, nxt.callable_name, nxt.content_type_id, nxt.object_id, nxt.args, nxt.kwargs,
            nxt.time_slot_start, nxt.time_slot_end, nxt.status, nxt.execution_start,
            nxt.execution_end, nxt.runner, nxt.error, nxt.return_value, nxt.created_at,
            nxt.last_seq
        );
    ELSIF nxt.id IS NULL THEN
        DELETE FROM django_future_scheduledjob WHERE id = e.job_id;
    ELSE
        UPDATE django_future_scheduledjob SET
            status = nxt.status,
            execution_start = nxt.execution_start,
            execution_end = nxt.execution_end,
            runner = nxt.runner,
            error = nxt.error,
            return_value = nxt.return_value,
            last_seq = nxt.last_seq
        WHERE id = e.job_id;
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
