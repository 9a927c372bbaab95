-- Frozen for migration 0002_pass_cutoff: the live files of django_future/sql/ below,
-- as they stood when it was written. Do not edit: the live files are where the
-- current definitions are (see django_future/sql/__init__.py).

-- ---- claim.sql

-- Claiming: the runner starts the oldest due jobs, skipping rows other runners
-- hold (FOR UPDATE SKIP LOCKED), and folds their "started" events itself (see
-- append.sql for why, and for the django_future.folded setting).
--
-- One job is started with plain statements, a batch with one set-based
-- statement: each is the faster way for its size (pgbench, 4 clients: a single
-- claim and completion took about 10% less server time the plain way; a batch
-- of 50 about 35% less the set-based way). A batch's statement calls
-- django_future_started (fold.sql), which the planner writes into the UPDATE
-- as plain expressions; its WHERE clause already makes the fold's checks (only
-- scheduled, due jobs are started).
--
-- The runner claims with django_future_claim ("claim" in queries.sql) only
-- when it has no completion to record; otherwise its step
-- (django_future_complete_and_claim, complete.sql) records the completions
-- and claims in one statement.

-- Start up to how_many due jobs for this runner: append event_kind to each and
-- fold it. A job is due if it was due at due_by (a cron pass: when the pass
-- started, so that the pass ends) or, without it, at claim_at; it must not have
-- expired by claim_at. A NULL claim_at is the database's clock.
CREATE OR REPLACE FUNCTION django_future_start_due(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text,
    due_by timestamptz
) RETURNS void
LANGUAGE plpgsql AS $start_due$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    due_at timestamptz := COALESCE(due_by, cutoff);
    payload jsonb := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    cur django_future_scheduledjob;
BEGIN
    IF how_many <> 1 AND event_kind <> 'started' THEN
        -- The runner no longer writes "claimed" (fold.sql); batches inline "started".
        RAISE EXCEPTION 'django_future: a batch is started with "started" events, not "%"',
            event_kind;
    END IF;
    PERFORM set_config('django_future.folded', 'on', true);
    IF how_many = 1 THEN
        SELECT * INTO cur
        FROM django_future_scheduledjob j
        WHERE j.status = 'scheduled'
          AND j.time_slot_start <= due_at
          AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
        ORDER BY j.time_slot_start, j.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            PERFORM django_future_append_folded(cur, event_kind, runner_name, payload);
        END IF;
    ELSE
        WITH due AS (
            SELECT j AS job
            FROM django_future_scheduledjob j
            WHERE j.status = 'scheduled'
              AND j.time_slot_start <= due_at
              AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
            ORDER BY j.time_slot_start, j.id
            LIMIT how_many
            FOR UPDATE SKIP LOCKED
        ), appended AS (
            INSERT INTO django_future_jobevent AS e (job_id, seq, kind, at, runner, data, hash)
            SELECT (due.job).id, (due.job).last_seq + 1, event_kind, statement_timestamp(),
                   runner_name, payload,
                   django_future_event_hash((due.job).last_hash, (due.job).id,
                                            (due.job).last_seq + 1, event_kind,
                                            statement_timestamp(), runner_name, payload)
            FROM due
            RETURNING e
        )
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (f.status, f.time_slot_start, f.execution_start, f.execution_end,
               f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
               f.last_seq, f.last_hash)
        FROM due
        JOIN appended a ON (a.e).job_id = (due.job).id
        CROSS JOIN LATERAL (
            SELECT (n).* FROM (SELECT django_future_started(
                due.job, (a.e).seq, (a.e).at, (a.e).runner, runner_pk, (a.e).hash) AS n) s) f
        WHERE j.id = (due.job).id;
    END IF;
    PERFORM set_config('django_future.folded', '', true);
END
$start_due$;


-- Claim up to how_many due jobs for this runner, then return every job it holds.
-- (Callers that return these rows read the table, not this function's result: a
-- prepared or cached plan over a function's row type does not notice a column
-- added to the table.)
CREATE OR REPLACE FUNCTION django_future_claim(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text,
    due_by timestamptz
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $claim$
BEGIN
    PERFORM django_future_start_due(claim_at, runner_name, runner_pk, how_many, event_kind,
                                    due_by);
    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.time_slot_start, j.id;
END
$claim$;

-- ---- complete.sql

-- Completing: the runner records the completions of the jobs it ran, each only
-- if its job is still running at the seq the runner saw (a job recovered
-- elsewhere meanwhile is left alone), and folds the "completed" events itself
-- (see append.sql for why, and for the django_future.folded setting).
--
-- django_future_complete_and_claim is the runner's step, the one statement it
-- sends per job: record the last job's completion, then start the next job.
-- One statement rather than two in one transaction: it is prepared once per
-- connection and sent alone. The completions come as one JSON array of [id,
-- seq, return value, seconds] (cheaper for the runner to send than four typed
-- arrays). It returns the jobs it claimed, preceded by the current row of each
-- job whose completion it refused; in the normal case there is none.
--
-- For one job (how_many = 1, at most one completion) each half is one UPDATE
-- that locks the row, folds the event into it and returns what the event
-- needs, followed by the event's INSERT: each row is written once, where a
-- locking SELECT followed by an UPDATE writes it twice (the lock is a write of
-- its own: the row's xmax and a WAL record). The UPDATE calls
-- django_future_started and django_future_completed (fold.sql) and
-- django_future_event_hash (hash.sql), which the planner inlines, so that it
-- computes each column by a plain expression. Its WHERE clause makes the
-- fold's checks (the job is scheduled and due; running at the seq the runner
-- saw). It sets its flag by assignment, not PERFORM: PL/pgSQL runs a PERFORM
-- as a query of its own, with an executor started and stopped, twice per job.
-- Batches and several completions go through
-- django_future_complete_and_claim_many, which calls django_future_complete
-- and django_future_start_due (claim.sql).
--
-- The completion is recorded before the claim, in that order on purpose: a
-- claim's FOR UPDATE can keep a lock on a row it passed over (the newest
-- version of a row updated meanwhile, locked, then found no longer due), so a
-- runner that claimed first could hold another runner's finished job while
-- waiting to record its own: two such runners deadlock.

-- Record the completions of jobs this runner ran (arrays of ids, the seq each
-- job was at when it started, return values, and how many seconds each call
-- took): one with plain statements, several with one set-based statement that
-- calls django_future_completed. Returns the ids recorded. queries.sql calls
-- it as "complete", when a slow batch keeps finished work waiting or as the
-- runner stops.
CREATE OR REPLACE FUNCTION django_future_complete(
    ids bigint[], seqs integer[], return_values text[], seconds double precision[],
    runner_name text
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $complete$
DECLARE
    cur django_future_scheduledjob;
BEGIN
    PERFORM set_config('django_future.folded', 'on', true);
    IF cardinality(ids) = 1 THEN
        SELECT * INTO cur
        FROM django_future_scheduledjob j
        WHERE j.id = ids[1] AND j.last_seq = seqs[1] AND j.status = 'running'
        FOR UPDATE;
        IF FOUND THEN
            PERFORM django_future_append_folded(
                cur, 'completed', runner_name,
                jsonb_build_object('return_value', return_values[1], 'seconds', seconds[1]));
            RETURN NEXT cur.id;
        END IF;
    ELSE
        RETURN QUERY
        WITH mine AS (
            SELECT j AS job,
                   jsonb_build_object('return_value', d.return_value, 'seconds', d.seconds)
                       AS payload
            FROM unnest(ids, seqs, return_values, seconds) AS d(id, seq, return_value, seconds)
            JOIN django_future_scheduledjob j ON j.id = d.id AND j.last_seq = d.seq
            WHERE j.status = 'running'
            ORDER BY j.id
            FOR UPDATE OF j
        ), appended AS (
            INSERT INTO django_future_jobevent AS e (job_id, seq, kind, at, runner, data, hash)
            SELECT (mine.job).id, (mine.job).last_seq + 1, 'completed', statement_timestamp(),
                   runner_name, mine.payload,
                   django_future_event_hash((mine.job).last_hash, (mine.job).id,
                                            (mine.job).last_seq + 1, 'completed',
                                            statement_timestamp(), runner_name, mine.payload)
            FROM mine
            RETURNING e
        )
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (f.status, f.time_slot_start, f.execution_start, f.execution_end,
               f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
               f.last_seq, f.last_hash)
        FROM mine
        JOIN appended a ON (a.e).job_id = (mine.job).id
        CROSS JOIN LATERAL (
            SELECT (n).* FROM (SELECT django_future_completed(
                mine.job, (a.e).seq, (a.e).at, (a.e).data->>'return_value', (a.e).hash) AS n) s) f
        WHERE j.id = (mine.job).id
        RETURNING j.id;
    END IF;
    PERFORM set_config('django_future.folded', '', true);
END
$complete$;


-- The step for batches and for several completions: the completions (as
-- django_future_complete), then the claim (as django_future_claim, "started").
CREATE OR REPLACE FUNCTION django_future_complete_and_claim_many(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer,
    due_by timestamptz
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $complete_and_claim_many$
DECLARE
    ids bigint[];
    seqs integer[];
    return_values text[];
    seconds double precision[];
    recorded bigint[];
BEGIN
    SELECT array_agg((d->>0)::bigint), array_agg((d->>1)::integer), array_agg(d->>2),
           array_agg((d->>3)::double precision)
    INTO ids, seqs, return_values, seconds
    FROM jsonb_array_elements(done) d;
    recorded := ARRAY(
        SELECT c FROM django_future_complete(ids, seqs, return_values, seconds, runner_name) c
    );
    IF cardinality(recorded) < cardinality(ids) THEN
        RETURN QUERY
            SELECT * FROM django_future_scheduledjob j
            WHERE j.id = ANY(ids) AND NOT j.id = ANY(recorded);
    END IF;
    PERFORM django_future_start_due(claim_at, runner_name, runner_pk, how_many, 'started',
                                    due_by);
    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.time_slot_start, j.id;
END
$complete_and_claim_many$;


-- The runner's step ("complete_and_claim" in queries.sql); see the top of this file.
CREATE OR REPLACE FUNCTION django_future_complete_and_claim(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer,
    due_by timestamptz
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $complete_and_claim$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    due_at timestamptz := COALESCE(due_by, cutoff);  -- see django_future_start_due
    finished jsonb;
    payload jsonb;
    flag text;  -- set_config's result, unused (see the top of this file)
BEGIN
    IF how_many <> 1 OR jsonb_array_length(done) > 1 THEN
        RETURN QUERY SELECT * FROM django_future_complete_and_claim_many(
            done, claim_at, runner_name, runner_pk, how_many, due_by);
        RETURN;
    END IF;
    flag := set_config('django_future.folded', 'on', true);  -- see append.sql

    IF jsonb_array_length(done) = 1 THEN
        -- [id, seq, return value, seconds]: recorded only while the job is still
        -- running at the seq the runner saw.
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
              AND d.time_slot_start <= due_at
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

-- ---- views.sql

-- The audit views. Documented in docs/audit.md; every query there is run by the tests.

-- One row per event, with what the job was (from its "scheduled" event, so it
-- still answers after the job's row is deleted) and its current status (NULL
-- once deleted).
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
    e.data,
    e.hash
FROM django_future_jobevent e
JOIN django_future_jobevent s ON s.job_id = e.job_id AND s.seq = 1
LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id;


-- Every live job as it stands, with its last event.
CREATE OR REPLACE VIEW django_future_job_state AS
SELECT
    j.id AS job_id,
    j.callable_name,
    j.status,
    j.time_slot_start AS due_at,
    j.time_slot_end AS expires_at,
    j.attempts,
    j.max_attempts,
    j.runner,
    j.execution_start,
    j.execution_end,
    j.execution_end - j.execution_start AS run_time,
    j.error,
    j.return_value,
    e.kind AS last_event,
    e.at AS last_event_at
FROM django_future_scheduledjob j
JOIN django_future_jobevent e ON e.job_id = j.id AND e.seq = j.last_seq;


-- One row per attempt (each "started" event): when it was due (the job's slot,
-- or the retry's due time), when it started and ended, how, and where. The run
-- time is the one the runner measured when the outcome carries it ("seconds"):
-- a batch starts together and its completions are written together, so for
-- batched jobs the events' times include the wait behind earlier jobs of the
-- batch. Outcomes without it ("abandoned" ones) fall back to the time between
-- the events.
CREATE OR REPLACE VIEW django_future_attempts AS
SELECT
    job_id, started_seq,
    row_number() OVER (PARTITION BY job_id ORDER BY started_seq) AS attempt,
    callable_name, runner, due_at, started_at, finished_at, outcome, exception, wait_time,
    run_time
FROM (
    SELECT
        st.job_id,
        st.seq AS started_seq,
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
        WHERE f.job_id = st.job_id AND f.seq > st.seq
          AND f.kind IN ('completed', 'failed', 'abandoned', 'released')
        ORDER BY f.seq
        LIMIT 1
    ) fin ON true
    WHERE st.kind = 'started'
) starts
-- A start handed back before its job was called ("released") is no attempt.
WHERE outcome <> 'released';


-- Every failed or abandoned attempt, with its error and whether a retry followed.
CREATE OR REPLACE VIEW django_future_failures AS
SELECT
    f.job_id,
    f.seq,
    f.kind,
    f.at,
    f.runner,
    s.data->>'callable_name' AS callable_name,
    f.data->>'exception' AS exception,
    f.data->>'error' AS error,
    r.data->>'due' IS NOT NULL AS will_retry,
    (r.data->>'due')::timestamptz AS retry_at
FROM django_future_jobevent f
JOIN django_future_jobevent s ON s.job_id = f.job_id AND s.seq = 1
LEFT JOIN django_future_jobevent r ON r.job_id = f.job_id AND r.seq = f.seq + 1 AND r.kind = 'retry'
WHERE f.kind IN ('failed', 'abandoned');


-- What each runner (host:pid) did, and whether it is alive now.
CREATE OR REPLACE VIEW django_future_runner_activity AS
SELECT
    a.*,
    -- What is known of the runner process (its newest row), not whether it lives:
    -- a runner killed with kill -9 keeps its lease until the lease runs out.
    p.heartbeat_at AS last_heartbeat_at,
    p.lease_expires_at,
    p.stopped_at
FROM (
    SELECT
        runner,
        count(*) FILTER (WHERE kind = 'started') AS started,
        count(*) FILTER (WHERE kind = 'completed') AS completed,
        count(*) FILTER (WHERE kind = 'failed') AS failed,
        count(*) FILTER (WHERE kind = 'abandoned') AS recovered_from_others,
        count(*) FILTER (WHERE kind = 'expired') AS expired,
        count(*) FILTER (WHERE kind = 'released') AS released,
        min(at) AS first_event,
        max(at) AS last_event
    FROM django_future_jobevent
    WHERE runner IS NOT NULL
    GROUP BY runner
) a
LEFT JOIN LATERAL (
    SELECT r.heartbeat_at, r.lease_expires_at, r.stopped_at
    FROM django_future_runnerprocess r
    WHERE r.identity = a.runner
    ORDER BY r.id DESC
    LIMIT 1
) p ON true;


-- Waiting (due to started) and run (started to finished) times per callable.
CREATE OR REPLACE VIEW django_future_callable_timings AS
SELECT
    callable_name,
    count(*) AS attempts,
    count(*) FILTER (WHERE outcome = 'completed') AS completed,
    count(*) FILTER (WHERE outcome IN ('failed', 'abandoned')) AS failed,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM wait_time)) AS wait_p50_s,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM wait_time)) AS wait_p95_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM run_time)) AS run_p50_s,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM run_time)) AS run_p95_s
FROM django_future_attempts
GROUP BY callable_name;
