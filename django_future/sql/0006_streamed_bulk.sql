-- schedule_jobs() streams its jobs in chunks, and "scheduled" is inlined.
--
-- Until 0006, schedule_jobs checked every job in Python, reserved all their
-- ids in one query, copied them into a scratch table, and then one statement
-- appended and folded every event: the database idle while Python worked, and
-- Python idle while the database did. From 0006 it sends a few hundred jobs at
-- a time in pipeline mode, one call of django_future_schedule_lines each, and
-- prepares the next chunk while the database writes this one. The database
-- assigns the ids.
--
-- The database's part was then most of the time, and a quarter of it the
-- PL/pgSQL fold, called once per job. So "scheduled" gets what 0005 gave
-- "started" and "completed": what it makes of a job is one SQL function,
-- django_future_scheduled, which the fold calls and the bulk writer's INSERT
-- inlines. The commit that added this file gives the measurements.

-- The columns of a job's first row, all but its id: what "scheduled" sets. A
-- type of its own, so that a column added to the table changes nothing here.
CREATE TYPE django_future_created AS (
    callable_name varchar(255),
    content_type_id integer,
    object_id varchar(255),
    args jsonb,
    kwargs jsonb,
    time_slot_start timestamptz,
    time_slot_end timestamptz,
    atomic boolean,
    max_attempts integer,
    retry_delay interval,
    retry_max_delay interval,
    attempts integer,
    status varchar(20),
    created_at timestamptz,
    last_seq integer,
    last_hash varchar(64)
);

-- "scheduled": the job as its event's data describes it. Keys left out take
-- their defaults (no content object, no arguments, not atomic, no retries):
-- from 0006 schedule_job leaves them out when they have them. STABLE, not
-- IMMUTABLE, because reading a time from text is (and a function declared
-- IMMUTABLE over STABLE ones is never inlined; see 0005).
CREATE FUNCTION django_future_scheduled(data jsonb, at timestamptz, hash text)
RETURNS django_future_created
LANGUAGE sql STABLE AS $scheduled$
    SELECT ROW(data->>'callable_name', (data->>'content_type_id')::integer,
               data->>'object_id', COALESCE(data->'args', '[]'::jsonb),
               COALESCE(data->'kwargs', '{}'::jsonb), (data->>'time_slot_start')::timestamptz,
               (data->>'time_slot_end')::timestamptz, COALESCE((data->>'atomic')::boolean, false),
               COALESCE((data->>'retries')::integer, 0) + 1,
               make_interval(secs => (data->>'retry_delay')::double precision),
               make_interval(secs => (data->>'retry_max_delay')::double precision),
               0, 'scheduled', at, 1, hash)::django_future_created
$scheduled$;

-- The fold of 0005, with "scheduled" handed to the function above.
CREATE OR REPLACE FUNCTION django_future_fold(
    s django_future_scheduledjob, e django_future_jobevent
) RETURNS django_future_scheduledjob
LANGUAGE plpgsql IMMUTABLE AS $fold$
DECLARE
    n django_future_created;
    p django_future_progress;
BEGIN
    IF e.kind = 'scheduled' THEN
        IF s.id IS NOT NULL OR e.seq <> 1 THEN
            RAISE EXCEPTION 'django_future: job % already has events; "scheduled" must be its first event (seq 1, got %)',
                e.job_id, e.seq USING ERRCODE = 'serialization_failure';
        END IF;
        n := django_future_scheduled(e.data, e.at, e.hash);
        s.id := e.job_id;
        s.callable_name := n.callable_name;
        s.content_type_id := n.content_type_id;
        s.object_id := n.object_id;
        s.args := n.args;
        s.kwargs := n.kwargs;
        s.time_slot_start := n.time_slot_start;
        s.time_slot_end := n.time_slot_end;
        s.atomic := n.atomic;
        s.max_attempts := n.max_attempts;
        s.retry_delay := n.retry_delay;
        s.retry_max_delay := n.retry_max_delay;
        s.attempts := n.attempts;
        s.status := n.status;
        s.created_at := n.created_at;
        s.last_seq := n.last_seq;
        s.last_hash := n.last_hash;
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
        p := django_future_started(s, e.seq, e.at, e.runner, (e.data->>'runner_id')::bigint,
                                   e.hash);
    WHEN 'completed' THEN
        IF s.status <> 'running' THEN
            RAISE EXCEPTION 'django_future: job % cannot complete: it is %', e.job_id, s.status;
        END IF;
        p := django_future_completed(s, e.seq, e.at, e.data->>'return_value', e.hash);
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
        IF s.status NOT IN ('claimed', 'running') THEN
            RAISE EXCEPTION 'django_future: job % cannot be released: it is %', e.job_id, s.status;
        END IF;
        IF s.status = 'running' THEN
            -- Started with its batch, handed back before it was called: the attempt
            -- did not happen.
            s.attempts := s.attempts - 1;
            s.execution_start := NULL;
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

    IF e.kind IN ('started', 'completed') THEN
        s.status := p.status;
        s.time_slot_start := p.time_slot_start;
        s.execution_start := p.execution_start;
        s.execution_end := p.execution_end;
        s.runner := p.runner;
        s.runner_process_id := p.runner_process_id;
        s.attempts := p.attempts;
        s.error := p.error;
        s.return_value := p.return_value;
        s.last_seq := p.last_seq;
        s.last_hash := p.last_hash;
        RETURN s;
    END IF;
    s.last_seq := e.seq;
    s.last_hash := e.hash;
    RETURN s;
END
$fold$;

-- Schedule one chunk: "lines" holds one job per line, each the JSON data of its
-- "scheduled" event (JSON text has no raw newline). Appends the events with
-- their hashes and creates the jobs' rows (as 0003's writers do, with
-- django_future.folded set meanwhile); returns the new ids in the order of the
-- lines.
CREATE FUNCTION django_future_schedule_lines(lines text)
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
             status, created_at, last_seq, last_hash)
        SELECT g.id, (c.n).callable_name, (c.n).content_type_id, (c.n).object_id, (c.n).args,
               (c.n).kwargs, (c.n).time_slot_start, (c.n).time_slot_end, (c.n).atomic,
               (c.n).max_attempts, (c.n).retry_delay, (c.n).retry_max_delay, (c.n).attempts,
               (c.n).status, (c.n).created_at, (c.n).last_seq, (c.n).last_hash
        FROM given g
        CROSS JOIN LATERAL (
            SELECT django_future_scheduled(g.data, statement_timestamp(), g.hash) AS n) c
    )
    SELECT array_agg(g.id ORDER BY g.n) INTO ids FROM given g;
    PERFORM set_config('django_future.folded', '', true);
    IF ids IS NOT NULL THEN
        PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
    END IF;
    RETURN ids;
END
$schedule_lines$;

-- 0003's writer, django_future_schedule_bulk, has no caller in this release but
-- stays for one: during a deploy, processes still running the previous release
-- call it after this migration has run.
