-- A job's rows are checked when its events make them, not on every update.
--
-- Until 0009 the job table carried five CHECK constraints (attempts,
-- max_attempts and last_seq not negative, the window not reversed) and the
-- ledger one (seq not negative). PostgreSQL reads each constraint's stored
-- expression tree from text and plans it again for every statement that writes
-- the table, whichever columns it changes: the runner's step, which updates a
-- job twice and appends two events per job, paid for all six every time
-- (perf: 5.6% of the server's CPU in the step, most of it parsing).
--
-- Every row of the job table is written by the fold or by a writer that makes
-- the same transitions (the guard refuses anything else), so the checks move
-- to where a value can first go wrong:
--
-- * "scheduled" refuses a negative number of retries and a window that
--   closes before it opens, both in the fold and in the bulk writer
--   (django_future_schedule_lines), each on the values as parsed once;
-- * "retry" (the fold) refuses a due time after the window closed;
-- * attempts and last_seq only ever count up from 0 and 1 in the transitions,
--   and an event's seq must follow its job's last (the fold, and the
--   ledger's unique (job_id, seq)).
--
-- The runner's one-job step also sets its transaction-local flag by assignment
-- rather than PERFORM: PL/pgSQL runs a PERFORM as a query of its own, with an
-- executor started and stopped, twice per job; an assignment of a plain
-- expression it evaluates directly.
--
-- The commit that added this file gives the measurements.

-- Raise check_violation with ``message``, from inside a query; its type is
-- ``value``'s, so that it fits wherever a value is expected. STABLE, not
-- IMMUTABLE: the planner runs an IMMUTABLE function whose arguments are
-- constants while it plans, which would raise for a row that never comes.
CREATE FUNCTION django_future_refuse(message text, value anyelement)
RETURNS anyelement
LANGUAGE plpgsql STABLE AS $refuse$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'check_violation';
END
$refuse$;

-- 0006's fold: "scheduled" checks the new job's retries and window, and "retry"
-- its due time against the window.
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
        IF n.max_attempts < 1 THEN
            RAISE EXCEPTION 'django_future: job %: retries must be 0 or more, got %',
                e.job_id, n.max_attempts - 1 USING ERRCODE = 'check_violation';
        END IF;
        IF n.time_slot_end < n.time_slot_start THEN
            RAISE EXCEPTION 'django_future: job % cannot expire (%) before it is due (%)',
                e.job_id, n.time_slot_end, n.time_slot_start USING ERRCODE = 'check_violation';
        END IF;
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
        IF (e.data->>'due')::timestamptz > s.time_slot_end THEN
            RAISE EXCEPTION 'django_future: job % cannot be retried at %: its window closed at %',
                e.job_id, e.data->>'due', s.time_slot_end USING ERRCODE = 'check_violation';
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

-- 0006's bulk writer, checking the jobs it creates as "scheduled" does in the fold.
CREATE OR REPLACE FUNCTION django_future_schedule_lines(lines text)
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
        RETURNING id, max_attempts, time_slot_start, time_slot_end
    ), refused AS (
        -- The rows as stored: checking them here reads each value once, where checking
        -- the event's data again would parse its times a second time. The call is in
        -- the WHERE clause, after the cheap test, because EXISTS below drops a
        -- subquery's select list unevaluated.
        SELECT FROM created r
        WHERE (r.max_attempts < 1 OR r.time_slot_end < r.time_slot_start)
          AND django_future_refuse(
                  CASE WHEN r.max_attempts < 1
                  THEN format('django_future: job %s: retries must be 0 or more, got %s',
                              r.id, r.max_attempts - 1)
                  ELSE format('django_future: job %s cannot expire (%s) before it is due (%s)',
                              r.id, r.time_slot_end, r.time_slot_start)
                  END, true)
    )
    SELECT array_agg(g.id ORDER BY g.n) INTO ids
    FROM given g
    WHERE NOT EXISTS (SELECT FROM refused);  -- reads refused, so that it runs
    PERFORM set_config('django_future.folded', '', true);
    IF ids IS NOT NULL THEN
        PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
    END IF;
    RETURN ids;
END
$schedule_lines$;

-- 0005's step, with its flag set by assignment (see the top of this file).
CREATE OR REPLACE FUNCTION django_future_complete_and_claim(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $complete_and_claim$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    finished jsonb;
    payload jsonb;
    flag text;  -- set_config's result, unused (see the top of this file)
BEGIN
    IF how_many <> 1 OR jsonb_array_length(done) > 1 THEN
        RETURN QUERY SELECT * FROM django_future_complete_and_claim_many(
            done, claim_at, runner_name, runner_pk, how_many);
        RETURN;
    END IF;
    flag := set_config('django_future.folded', 'on', true);  -- see 0003

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
                = (SELECT (n).status, (n).time_slot_start, (n).execution_start,
                          (n).execution_end, (n).runner, (n).runner_process_id, (n).attempts,
                          (n).error, (n).return_value, (n).last_seq, (n).last_hash
                   FROM (SELECT django_future_completed(
                             j, j.last_seq + 1, statement_timestamp(), payload->>'return_value',
                             django_future_event_hash(j.last_hash, j.id, j.last_seq + 1,
                                                      'completed', statement_timestamp(),
                                                      runner_name, payload)) AS n) folded)
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

    -- The oldest due job, started for this runner: the new row's last_seq and
    -- last_hash are the event's, which the INSERT copies.
    payload := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    RETURN QUERY
    WITH started AS (
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (SELECT (n).status, (n).time_slot_start, (n).execution_start,
                      (n).execution_end, (n).runner, (n).runner_process_id, (n).attempts,
                      (n).error, (n).return_value, (n).last_seq, (n).last_hash
               FROM (SELECT django_future_started(
                         j, j.last_seq + 1, statement_timestamp(), runner_name, runner_pk,
                         django_future_event_hash(j.last_hash, j.id, j.last_seq + 1, 'started',
                                                  statement_timestamp(), runner_name,
                                                  payload)) AS n) folded)
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
    flag := set_config('django_future.folded', '', true);
END
$complete_and_claim$;