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
