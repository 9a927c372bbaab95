-- The fold, applied once per statement instead of once per row.
--
-- 0001 folded each new event in a BEFORE INSERT row trigger: a PL/pgSQL call,
-- a row lock and an UPDATE for every event, which made bulk scheduling and
-- batched claims cost as much per job as single ones. From 0002 on:
--
-- * A BEFORE INSERT row trigger, only for rows that arrive without a hash
--   (hand-written INSERTs, the ORM, psql), stamps the event: its time is the
--   statement's, its hash is chained to the job's previous event.
-- * An AFTER INSERT statement trigger hands every event of the statement to
--   django_future_apply_events, which checks the stamps (so a writer that
--   brings its own hash can neither forge it nor backdate the event), then
--   folds them into the projection: set-based when each job has one event in
--   the statement, one by one otherwise.
--
-- django_future_fold(state, event) stays the one definition of a job's next
-- state, called once per event; replay, verify and time travel use it too. It
-- is redefined below with one more transition (a batch's job handed back).

-- The fold of 0001, with one transition more: a job started with its batch can
-- be "released" (handed back) if its runner stops before calling it; the
-- attempt it counted is given back. Every transition 0001 allowed still folds
-- the same, so ledgers written before this migration replay unchanged.
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

    s.last_seq := e.seq;
    s.last_hash := e.hash;
    RETURN s;
END
$fold$;


-- The hash of a new event, chained to its job's previous event (which may have
-- been inserted earlier in the same statement: a volatile function sees it).
CREATE OR REPLACE FUNCTION django_future_stamp(e django_future_jobevent)
RETURNS text
LANGUAGE sql VOLATILE AS $stamp$
    SELECT django_future_event_hash(
        (SELECT p.hash FROM django_future_jobevent p
         WHERE p.job_id = e.job_id AND p.seq = e.seq - 1),
        e.job_id, e.seq, e.kind, e.at, e.runner, e.data)
$stamp$;


-- Why an event's stamps are refused: a time that is not its statement's, or
-- else a hash that does not chain to the job's previous event. Always raises.
CREATE OR REPLACE FUNCTION django_future_refuse_stamp(job bigint, seq integer, late boolean)
RETURNS void
LANGUAGE plpgsql AS $refuse$
BEGIN
    IF late THEN
        RAISE EXCEPTION 'django_future: event % of job % is not stamped with the time of its statement: events record when they were written, the database sets it',
            seq, job;
    END IF;
    RAISE EXCEPTION 'django_future: event % of job % has a hash that does not chain to the job''s previous event (leave hash out and the database sets it)',
        seq, job;
END
$refuse$;


-- Fold the events of one INSERT statement (ordered by job and seq) into the
-- projection. A single event, or a statement in which some job has several
-- events, is folded one event at a time; otherwise (every job once: bulk
-- scheduling, batched claims and completions) with a few set-based statements.
-- Both ways check each event's stamps first and call the same fold.
CREATE OR REPLACE FUNCTION django_future_apply_events(evs django_future_jobevent[])
RETURNS void
LANGUAGE plpgsql AS $apply$
DECLARE
    one django_future_jobevent;
    cur django_future_scheduledjob;
    nxt django_future_scheduledjob;
    bad record;
    has_new boolean := false;
    has_deleted boolean;
    wake boolean := false;
    expected integer;
    changed integer;
BEGIN
    IF cardinality(evs) = 0 THEN
        RETURN;  -- statement triggers fire for INSERTs of no rows too
    END IF;

    IF cardinality(evs) = 1
       OR (SELECT count(*) > count(DISTINCT e.job_id) FROM unnest(evs) e) THEN
        FOREACH one IN ARRAY evs LOOP
            SELECT * INTO cur FROM django_future_scheduledjob WHERE id = one.job_id FOR UPDATE;
            -- (an event out of sequence is left to the fold, which says so)
            IF one.at <> statement_timestamp()
               OR (one.seq = COALESCE(cur.last_seq, 0) + 1 AND one.hash IS DISTINCT FROM
                       django_future_event_hash(cur.last_hash, one.job_id, one.seq, one.kind,
                                                one.at, one.runner, one.data)) THEN
                PERFORM django_future_refuse_stamp(
                    one.job_id, one.seq, one.at <> statement_timestamp());
            END IF;
            nxt := django_future_fold(cur, one);
            IF cur.id IS NULL THEN
                INSERT INTO django_future_scheduledjob SELECT nxt.*;
            ELSIF nxt.id IS NULL THEN
                DELETE FROM django_future_scheduledjob WHERE id = one.job_id;
            ELSE
                UPDATE django_future_scheduledjob SET
                    (status, time_slot_start, execution_start, execution_end, runner,
                     runner_process_id, attempts, error, return_value, last_seq, last_hash)
                    = (nxt.status, nxt.time_slot_start, nxt.execution_start, nxt.execution_end,
                       nxt.runner, nxt.runner_process_id, nxt.attempts, nxt.error,
                       nxt.return_value, nxt.last_seq, nxt.last_hash)
                WHERE id = one.job_id;
            END IF;
            wake := wake OR nxt.status = 'scheduled';
        END LOOP;
    ELSE
        SELECT e.job_id, e.seq, e.at <> statement_timestamp() AS late INTO bad
        FROM unnest(evs) e
        LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id
        WHERE e.at <> statement_timestamp()
           OR (e.seq = COALESCE(j.last_seq, 0) + 1
               AND e.hash IS DISTINCT FROM django_future_event_hash(
                       j.last_hash, e.job_id, e.seq, e.kind, e.at, e.runner, e.data))
        LIMIT 1;
        IF FOUND THEN
            PERFORM django_future_refuse_stamp(bad.job_id, bad.seq, bad.late);
        END IF;

        SELECT bool_or(e.kind = 'scheduled'), bool_or(e.kind = 'deleted'),
               bool_or(e.kind IN ('retry', 'released')),
               count(*) FILTER (WHERE e.kind NOT IN ('scheduled', 'deleted'))
        INTO has_new, has_deleted, wake, expected
        FROM unnest(evs) e;

        IF has_new THEN
            INSERT INTO django_future_scheduledjob
            SELECT f.*
            FROM unnest(evs) e
            LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id
            CROSS JOIN LATERAL django_future_fold(j, e) f
            WHERE e.kind = 'scheduled';
        END IF;

        -- Every other kind changes a live job's row (the fold raises if the event
        -- does not follow from it).
        IF expected > 0 THEN
            UPDATE django_future_scheduledjob j SET
                (status, time_slot_start, execution_start, execution_end, runner,
                 runner_process_id, attempts, error, return_value, last_seq, last_hash)
                = (SELECT f.status, f.time_slot_start, f.execution_start, f.execution_end,
                          f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
                          f.last_seq, f.last_hash
                   FROM django_future_fold(j, e) f)
            FROM unnest(evs) e
            WHERE j.id = e.job_id AND e.kind NOT IN ('scheduled', 'deleted');
            GET DIAGNOSTICS changed = ROW_COUNT;
            IF changed <> expected THEN
                SELECT e.job_id, e.kind INTO bad FROM unnest(evs) e
                WHERE e.kind NOT IN ('scheduled', 'deleted')
                  AND NOT EXISTS (SELECT FROM django_future_scheduledjob j WHERE j.id = e.job_id)
                LIMIT 1;
                RAISE EXCEPTION 'django_future: no live job % to append "%" to (never scheduled, or deleted)',
                    bad.job_id, bad.kind;
            END IF;
        END IF;

        IF has_deleted THEN
            PERFORM django_future_fold(j, e)  -- raises unless the job may be deleted
            FROM unnest(evs) e
            LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id
            WHERE e.kind = 'deleted';
            DELETE FROM django_future_scheduledjob j
            USING unnest(evs) e
            WHERE j.id = e.job_id AND e.kind = 'deleted';
        END IF;
    END IF;

    -- Wake sleeping workers (delivered at commit) when a job became due-able.
    IF has_new OR wake THEN
        PERFORM pg_notify('django_future', '');
    END IF;
END
$apply$;

-- The row-at-a-time fold of 0001, replaced by the two above.
DROP FUNCTION IF EXISTS django_future_apply(django_future_jobevent);


-- The runner's claim and append (0001_runner.sql), now writing each event's hash
-- themselves, in the same statement: their rows need no stamping one by one.
CREATE OR REPLACE FUNCTION django_future_claim(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $claim$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    payload jsonb := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
BEGIN
    WITH due AS (
        SELECT j.id, j.last_seq, j.last_hash
        FROM django_future_scheduledjob j
        WHERE j.status = 'scheduled'
          AND j.time_slot_start <= cutoff
          AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
        ORDER BY j.time_slot_start, j.id
        LIMIT how_many
        FOR UPDATE SKIP LOCKED
    )
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    SELECT due.id, due.last_seq + 1, event_kind, statement_timestamp(), runner_name, payload,
           django_future_event_hash(due.last_hash, due.id, due.last_seq + 1, event_kind,
                                    statement_timestamp(), runner_name, payload)
    FROM due;

    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.time_slot_start, j.id;
END
$claim$;


CREATE OR REPLACE FUNCTION django_future_append(
    target bigint, event_kind text, runner_name text, payload jsonb, allowed text[],
    expected_seq integer
) RETURNS integer
LANGUAGE plpgsql AS $append$
DECLARE
    new_seq integer;
BEGIN
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    SELECT j.id, j.last_seq + 1, event_kind, statement_timestamp(), runner_name, payload,
           django_future_event_hash(j.last_hash, j.id, j.last_seq + 1, event_kind,
                                    statement_timestamp(), runner_name, payload)
    FROM django_future_scheduledjob j
    WHERE j.id = target
      AND (allowed IS NULL OR j.status = ANY(allowed))
      AND (expected_seq IS NULL OR j.last_seq = expected_seq)
    FOR UPDATE
    RETURNING seq INTO new_seq;
    RETURN new_seq;
END
$append$;


-- Record the completions of jobs this runner ran (arrays of ids, the seq each
-- job was at when it started, return values, and how many seconds each call
-- took), each only if its job is still running at that seq: a job recovered
-- elsewhere meanwhile is left alone. Returns the ids recorded.
CREATE OR REPLACE FUNCTION django_future_complete(
    ids bigint[], seqs integer[], return_values text[], seconds double precision[],
    runner_name text
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $complete$
BEGIN
    RETURN QUERY
    WITH mine AS (
        SELECT j.id, j.last_seq, j.last_hash,
               jsonb_build_object('return_value', d.return_value, 'seconds', d.seconds)
                   AS payload
        FROM unnest(ids, seqs, return_values, seconds) AS d(id, seq, return_value, seconds)
        JOIN django_future_scheduledjob j ON j.id = d.id AND j.last_seq = d.seq
        WHERE j.status = 'running'
        ORDER BY j.id
        FOR UPDATE OF j
    )
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    SELECT id, last_seq + 1, 'completed', statement_timestamp(), runner_name, payload,
           django_future_event_hash(last_hash, id, last_seq + 1, 'completed',
                                    statement_timestamp(), runner_name, payload)
    FROM mine
    RETURNING job_id;
END
$complete$;


-- The attempts view of 0001_views.sql, with the run time the runner measured
-- when the outcome carries it ("seconds"): a batch starts together and its
-- completions are written together, so for batched jobs the events' times
-- include the wait behind earlier jobs of the batch. Older outcomes, and
-- "abandoned" ones, fall back to the time between the events.
-- One row per attempt (each "started" event): when it was due (the job's slot,
-- or the retry's due time), when it started and ended, how, and where.
CREATE OR REPLACE VIEW django_future_attempts AS
SELECT
    st.job_id,
    st.seq AS started_seq,
    row_number() OVER (PARTITION BY st.job_id ORDER BY st.seq) AS attempt,
    sch.data->>'callable_name' AS callable_name,
    st.runner,
    due.at_due AS due_at,
    st.at AS started_at,
    fin.at AS finished_at,
    coalesce(fin.kind, 'running') AS outcome,
    fin.data->>'exception' AS exception,
    st.at - due.at_due AS wait_time,
    COALESCE(make_interval(secs => (fin.data->>'seconds')::double precision),
             fin.at - st.at) AS run_time
FROM django_future_jobevent st
JOIN django_future_jobevent sch ON sch.job_id = st.job_id AND sch.seq = 1
CROSS JOIN LATERAL (
    SELECT (CASE p.kind WHEN 'retry' THEN p.data->>'due' ELSE sch.data->>'time_slot_start' END)::timestamptz AS at_due
    FROM django_future_jobevent p
    WHERE p.job_id = st.job_id AND p.seq < st.seq AND p.kind IN ('scheduled', 'retry')
    ORDER BY p.seq DESC
    LIMIT 1
) due
LEFT JOIN LATERAL (
    SELECT f.kind, f.at, f.data
    FROM django_future_jobevent f
    WHERE f.job_id = st.job_id AND f.seq > st.seq AND f.kind IN ('completed', 'failed', 'abandoned')
    ORDER BY f.seq
    LIMIT 1
) fin ON true
WHERE st.kind = 'started';
