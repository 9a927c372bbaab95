-- Completing: the runner records the completions of the jobs it ran, each only
-- if its job is still running at the seq the runner saw (a job recovered
-- elsewhere meanwhile is left alone), and folds the "completed" events itself
-- (see append.sql for why, and for the django_future.folded setting).
--
-- django_future_complete_and_claim is the runner's step, the one statement it
-- sends per job: record the last job's completion, then start the next job.
-- One statement rather than two in one transaction: it is prepared once per
-- connection and sent alone. The completions come as one JSON array of [id,
-- seq, return value, seconds] or [id, seq, return value, seconds, result]
-- (cheaper for the runner to send than typed arrays): the result, the
-- callable's return value as JSON, is there only when the runner could encode
-- it, and the "completed" event then carries it as "result", besides the text
-- of "return_value". It returns the jobs it claimed, preceded by the current row of each
-- job whose completion it refused; in the normal case there is none.
--
-- Each completion is recorded by an UPDATE that locks the job's row, folds the
-- event into it and returns what the event needs, followed by the event's
-- INSERT: each row is written once, where a locking SELECT followed by an
-- UPDATE writes it twice (the lock is a write of its own: the row's xmax and
-- a WAL record). The UPDATE calls django_future_completed (fold.sql) and
-- django_future_event_hash (hash.sql), which the planner inlines, so that it
-- computes each column by a plain expression; its WHERE clause makes the
-- fold's checks (the job is running at the seq the runner saw). Jobs are
-- started the same way (claim.sql).
--
-- The statements are written twice, and the job-row column list four times in
-- this file and claim.sql, for speed: django_future_complete records any
-- number of completions and django_future_start_due starts any number of
-- jobs, and batches and several completions go through them (by
-- django_future_complete_and_claim_many), but the one-job step, the hottest
-- path of the package, has its own copy of each statement, in line. Calling
-- the two functions from the step instead cost it more time in the database
-- per job: a loop of 3,000 steps in one backend, CPU per step, median of 10
-- rounds: 146.7 us with both in line, 153.3 us (1.05x) calling
-- django_future_start_due, 173.3 us (1.18x) calling both. Keep the copies in
-- step with the functions: the same columns, the same WHERE clauses. (Which
-- jobs are due is not copied: the step calls django_future_due, which the
-- planner writes into its statement, with the same plan as a copy.)
--
-- The step sets its flag by assignment, not PERFORM: PL/pgSQL runs a PERFORM
-- as a query of its own, with an executor started and stopped, twice per job.
--
-- The completion is recorded before the claim, in that order on purpose: a
-- claim's FOR UPDATE can keep a lock on a row it passed over (the newest
-- version of a row updated meanwhile, locked, then found no longer due), so a
-- runner that claimed first could hold another runner's finished job while
-- waiting to record its own: two such runners deadlock.

-- Record the completions of jobs this runner ran (arrays of ids, the seq each
-- job was at when it started, return values, how many seconds each call took,
-- and results as JSON, NULL where there is none), with one set-based statement that calls django_future_completed,
-- whatever their number. Returns the ids recorded. queries.sql calls it as
-- "complete", when a slow batch keeps finished work waiting or as the runner
-- stops, and django_future_complete_and_claim_many for batches.
CREATE OR REPLACE FUNCTION django_future_complete(
    ids bigint[], seqs integer[], return_values text[], seconds double precision[],
    results jsonb[], runner_name text
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $complete$
DECLARE
    flag text;  -- set_config's result, unused (see the top of this file)
BEGIN
    flag := set_config('django_future.folded', 'on', true);  -- see append.sql
    RETURN QUERY
    WITH completed AS (
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash)
            = (SELECT (n).status, (n).time_slot_start, (n).execution_start,
                      (n).execution_end, (n).runner, (n).runner_process_id, (n).attempts,
                      (n).error, (n).return_value, (n).last_seq, (n).last_hash
               FROM (SELECT django_future_completed(
                         j, j.last_seq + 1, statement_timestamp(), d.payload->>'return_value',
                         django_future_event_hash(j.last_hash, j.id, j.last_seq + 1,
                                                  'completed', statement_timestamp(),
                                                  runner_name, d.payload)) AS n) folded)
        FROM (
            SELECT u.id, u.seq,
                   jsonb_build_object('return_value', u.return_value, 'seconds', u.seconds)
                   || CASE WHEN u.result IS NULL THEN '{}'::jsonb
                      ELSE jsonb_build_object('result', u.result) END AS payload
            FROM unnest(ids, seqs, return_values, seconds, results)
                AS u(id, seq, return_value, seconds, result)
        ) d
        WHERE j.id = d.id
          AND j.last_seq = d.seq
          AND j.status = 'running'
        -- The lock and the slot the jobs held (locks.sql) go with their status.
        -- No NOTIFY: committing a transaction that sent one takes a lock that
        -- serializes every such commit (PostgreSQL keeps notifications in commit
        -- order): with every job locked, four runners flushed the WAL once per
        -- job instead of about 0.6 times. This runner claims next anyway, and
        -- sleeping workers look again within a second while jobs wait for a
        -- lock ("next_due", queries.sql).
        RETURNING j.id, j.last_seq, j.last_hash, d.payload
    )
    INSERT INTO django_future_jobevent AS e (job_id, seq, kind, at, runner, data, hash)
    SELECT c.id, c.last_seq, 'completed', statement_timestamp(), runner_name, c.payload,
           c.last_hash
    FROM completed c
    RETURNING e.job_id;
    flag := set_config('django_future.folded', '', true);
END
$complete$;


-- The step for batches and for several completions: the completions (as
-- django_future_complete), then the claim (as django_future_claim, "started").
CREATE OR REPLACE FUNCTION django_future_complete_and_claim_many(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer,
    due_by timestamptz, queues text[], exclude_queues text[]
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $complete_and_claim_many$
DECLARE
    ids bigint[];
    seqs integer[];
    return_values text[];
    seconds double precision[];
    results jsonb[];
    recorded bigint[];
BEGIN
    SELECT array_agg((d->>0)::bigint), array_agg((d->>1)::integer), array_agg(d->>2),
           array_agg((d->>3)::double precision), array_agg(d->4)
    INTO ids, seqs, return_values, seconds, results
    FROM jsonb_array_elements(done) d;
    recorded := ARRAY(
        SELECT c FROM django_future_complete(ids, seqs, return_values, seconds, results,
                                             runner_name) c
    );
    IF cardinality(recorded) < cardinality(ids) THEN
        RETURN QUERY
            SELECT * FROM django_future_scheduledjob j
            WHERE j.id = ANY(ids) AND NOT j.id = ANY(recorded);
    END IF;
    PERFORM django_future_start_due(claim_at, runner_name, runner_pk, how_many, 'started',
                                    due_by, queues, exclude_queues);
    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.priority DESC, j.time_slot_start, j.id;
END
$complete_and_claim_many$;


-- The runner's step ("complete_and_claim" in queries.sql); see the top of this file.
--
-- Its statements' plans are kept (plan_cache_mode), as django_future_start_due's
-- are (claim.sql): the queue filter's parameters ("queues IS NULL OR ...") make
-- PostgreSQL estimate a generic plan of the claim far above a plan made for the
-- values, so without the setting it planned the claim again at every call: 1,638
-- us of the backend's CPU per step against 441 us (dev.py compare --step, 8,000 jobs).
CREATE OR REPLACE FUNCTION django_future_complete_and_claim(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer,
    due_by timestamptz, queues text[], exclude_queues text[]
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $complete_and_claim$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    due_at timestamptz := COALESCE(due_by, cutoff);  -- see django_future_due
    finished jsonb;
    payload jsonb;
    flag text;  -- set_config's result, unused (see the top of this file)
BEGIN
    IF how_many <> 1 OR jsonb_array_length(done) > 1 THEN
        RETURN QUERY SELECT * FROM django_future_complete_and_claim_many(
            done, claim_at, runner_name, runner_pk, how_many, due_by, queues, exclude_queues);
        RETURN;
    END IF;
    flag := set_config('django_future.folded', 'on', true);  -- see append.sql

    IF jsonb_array_length(done) = 1 THEN
        -- [id, seq, return value, seconds(, result)], recorded as
        -- django_future_complete records it, in line (see the top of this file).
        finished := done->0;
        payload := jsonb_build_object('return_value', finished->>2,
                                      'seconds', (finished->>3)::double precision);
        IF jsonb_array_length(finished) > 4 THEN
            payload := payload || jsonb_build_object('result', finished->4);
        END IF;
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
            -- As django_future_complete: its lock and slot go, without NOTIFY.
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

    -- The first due job, started for this runner as django_future_start_due
    -- (claim.sql) starts jobs, in line (see the top of this file).
    payload := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    RETURN QUERY
    WITH started AS (
        UPDATE django_future_scheduledjob j SET
            (status, time_slot_start, execution_start, execution_end, runner,
             runner_process_id, attempts, error, return_value, last_seq, last_hash, slot)
            = (SELECT (n).status, (n).time_slot_start, (n).execution_start,
                      (n).execution_end, (n).runner, (n).runner_process_id, (n).attempts,
                      (n).error, (n).return_value, (n).last_seq, (n).last_hash, h.slot
               FROM (SELECT
                         -- The slot taken in the WHERE clause (as in claim.sql).
                         CASE WHEN j.lock IS NULL
                                   AND j.queue <> ALL(ARRAY(
                                       SELECT q.queue FROM django_future_queuelimit q))
                              THEN NULL
                              ELSE NULLIF(current_setting('django_future.slot', true),
                                          '')::integer END AS slot) h
               CROSS JOIN LATERAL (SELECT django_future_started(
                         j, j.last_seq + 1, statement_timestamp(), runner_name, runner_pk,
                         django_future_event_hash(j.last_hash, j.id, j.last_seq + 1, 'started',
                                                  statement_timestamp(), runner_name,
                                                  django_future_with_slot(payload, h.slot)))
                         AS n) folded)
        WHERE j.id = (SELECT d FROM django_future_due(due_at, cutoff, 1, queues,
                                                      exclude_queues) d)
          -- The arbiter (locks.sql), for jobs with a lock or in a limited queue only.
          AND ((j.lock IS NULL
                AND j.queue <> ALL(ARRAY(SELECT q.queue FROM django_future_queuelimit q)))
               OR django_future_acquire(j.id, j.lock, j.queue))
        RETURNING j.*
    ), start_event AS (
        INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
        SELECT s.id, s.last_seq, 'started', statement_timestamp(), runner_name,
               django_future_with_slot(payload, s.slot), s.last_hash
        FROM started s
    )
    SELECT * FROM started;
    flag := set_config('django_future.folded', '', true);
    IF NOT FOUND AND current_setting('django_future.lost', true) <> '' THEN
        -- Another runner won the race for the job's lock or slot: claim again,
        -- passing that job over, as django_future_start_due does (locks.sql).
        RETURN QUERY SELECT * FROM django_future_start_due(
            claim_at, runner_name, runner_pk, 1, 'started', due_by, queues, exclude_queues);
    END IF;
END
$complete_and_claim$;
