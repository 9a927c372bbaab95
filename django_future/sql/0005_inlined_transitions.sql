-- The runner's two hot transitions, inlined into its one-job step.
--
-- The profile of 0004's step (perf, 4 runners, embedded PostgreSQL 18) showed
-- most of the database's work per job outside the rows themselves:
--
-- * django_future_event_hash was declared IMMUTABLE, but its body calls STABLE
--   functions (concat_ws, extract, convert_to), so the planner never inlined
--   it: every call ran a SQL function of its own, set up again for each
--   execution of the calling statement.
-- * django_future_fold, a PL/pgSQL function, was called through a function
--   scan in the UPDATE: the job's row and the event copied in, the result
--   materialised and taken apart again, for each job.
--
-- From here:
--
-- * The hash is declared STABLE, which is what its body is. Its result does
--   not change; only the planner may now write its expression into the
--   caller's plan.
-- * What "started" and "completed" do to a job's row is defined by two SQL
--   functions, django_future_started and django_future_completed, which return
--   the columns they set (type django_future_progress). The fold
--   checks that the event may follow and calls them; the runner's step calls
--   them directly, in its UPDATE, where its WHERE clause has made the same
--   checks (the job is scheduled and due; running at the seq the runner saw).
--   Being SQL, they are inlined: the UPDATE computes each column by a plain
--   expression. There is still one definition of each transition, and verify
--   and rebuild replay through the fold as before.
--
-- The commit that added this file gives the measurements.

ALTER FUNCTION django_future_event_hash(text, bigint, integer, text, timestamptz, text, jsonb)
    STABLE;

-- The columns of a job's row that its events change once it is scheduled: what
-- the two transitions below return. A type of its own rather than the table's
-- row type, so that a column added to the table changes nothing here.
CREATE TYPE django_future_progress AS (
    status varchar(20),
    time_slot_start timestamptz,
    execution_start timestamptz,
    execution_end timestamptz,
    runner varchar(255),
    runner_process_id bigint,
    attempts integer,
    error text,
    return_value text,
    last_seq integer,
    last_hash varchar(64)
);

-- "started": running, one more attempt, the runner recorded.
CREATE FUNCTION django_future_started(
    s django_future_scheduledjob, seq integer, at timestamptz, runner text, runner_id bigint,
    hash text
) RETURNS django_future_progress
LANGUAGE sql IMMUTABLE AS $started$
    SELECT ROW('running', s.time_slot_start, at, NULL, runner, runner_id, s.attempts + 1,
               s.error, s.return_value, seq, hash)::django_future_progress
$started$;

-- "completed": complete, its return value kept, no error.
CREATE FUNCTION django_future_completed(
    s django_future_scheduledjob, seq integer, at timestamptz, return_value text, hash text
) RETURNS django_future_progress
LANGUAGE sql IMMUTABLE AS $completed$
    SELECT ROW('complete', s.time_slot_start, s.execution_start, at, s.runner,
               s.runner_process_id, s.attempts, NULL, return_value, seq,
               hash)::django_future_progress
$completed$;

-- The fold of 0002, with "started" and "completed" handed to the functions above.
CREATE OR REPLACE FUNCTION django_future_fold(
    s django_future_scheduledjob, e django_future_jobevent
) RETURNS django_future_scheduledjob
LANGUAGE plpgsql IMMUTABLE AS $fold$
DECLARE
    p django_future_progress;
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

-- The step of 0004, with the fold and the hash replaced by the functions they
-- now inline to. Its comments in 0004 still hold (completion before claim).
CREATE OR REPLACE FUNCTION django_future_complete_and_claim(
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
    PERFORM set_config('django_future.folded', '', true);
END
$complete_and_claim$;
