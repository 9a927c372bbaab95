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
-- django_future_replay(job_id, until) folds a job's history from nothing (up
-- to an instant, for time travel); verify, rebuild and django_future_jobs_as_of
-- use it, so they cannot disagree with live appends.
--
-- Each event carries a hash chained to its job's previous event
-- (django_future_event_hash), set by the same trigger: an event changed or
-- removed behind the triggers' back breaks the chain, and verify says where.

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
        s.last_hash := e.hash;
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
    s.last_hash := e.hash;
    RETURN s;
END
$fold$;


CREATE OR REPLACE FUNCTION django_future_event_hash(
    prev text, job_id bigint, seq integer, kind text, at timestamptz, runner text, data jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE AS $hash$
    SELECT encode(sha256(convert_to(concat_ws('|',
        coalesce(prev, ''), job_id, seq, kind,
        (extract(epoch FROM at) * 1000000)::bigint,  -- independent of the TimeZone setting
        coalesce(runner, ''), data::text), 'UTF8')), 'hex')
$hash$;


CREATE OR REPLACE FUNCTION django_future_apply(e django_future_jobevent)
RETURNS text
LANGUAGE plpgsql AS $apply$
DECLARE
    cur django_future_scheduledjob;
    nxt django_future_scheduledjob;
BEGIN
    SELECT * INTO cur FROM django_future_scheduledjob WHERE id = e.job_id FOR UPDATE;
    e.hash := django_future_event_hash(cur.last_hash, e.job_id, e.seq, e.kind, e.at, e.runner, e.data);
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
            last_seq = nxt.last_seq,
            last_hash = nxt.last_hash
        WHERE id = e.job_id;
    END IF;

    IF nxt.status = 'scheduled' THEN
        PERFORM pg_notify('django_future', '');
    END IF;
    RETURN e.hash;
END
$apply$;


CREATE OR REPLACE FUNCTION django_future_replay(job bigint, until timestamptz DEFAULT 'infinity')
RETURNS django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $replay$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE job_id = job AND at <= until ORDER BY seq LOOP
        s := django_future_fold(s, e);
    END LOOP;
    RETURN s;
END
$replay$;


-- For verify: the replay, or why the events cannot be folded (a gap, a
-- transition that does not follow), without aborting the whole check.
CREATE OR REPLACE FUNCTION django_future_try_replay(
    job bigint, OUT folded django_future_scheduledjob, OUT error text
)
LANGUAGE plpgsql STABLE AS $try$
BEGIN
    folded := django_future_replay(job);
EXCEPTION WHEN OTHERS THEN
    error := SQLERRM;
END
$try$;


-- Time travel: every job as it stood at an instant, folded from the events up
-- to it (jobs deleted by then are absent; jobs not yet scheduled too).
CREATE OR REPLACE FUNCTION django_future_jobs_as_of(instant timestamptz)
RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $as_of$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
    current_job bigint;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE at <= instant ORDER BY job_id, seq LOOP
        IF current_job IS DISTINCT FROM e.job_id THEN
            IF s.id IS NOT NULL THEN
                RETURN NEXT s;
            END IF;
            s := NULL;
            current_job := e.job_id;
        END IF;
        s := django_future_fold(s, e);
    END LOOP;
    IF s.id IS NOT NULL THEN
        RETURN NEXT s;
    END IF;
END
$as_of$;


