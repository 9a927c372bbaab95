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
