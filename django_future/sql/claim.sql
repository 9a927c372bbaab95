-- Claiming: the runner starts the due jobs of highest priority, oldest first,
-- of the queues it serves, skipping rows other runners
-- hold (FOR UPDATE SKIP LOCKED), and folds their "started" events itself (see
-- append.sql for why, and for the django_future.folded setting).
--
-- Which jobs are due, and in what order, is defined once, by django_future_due
-- below, which every claim calls: the claim, batches, and the runner's step
-- (django_future_complete_and_claim, complete.sql). How jobs are started is
-- defined by django_future_start_due, which the claim and batches call; the
-- step has a copy of its statement in line, for speed (see complete.sql).
--
-- Jobs are started by one set-based statement, whatever the batch's size: an
-- UPDATE that locks the row, folds the event into it and returns what the
-- event needs, followed by the event's INSERT, so each row is written once (a
-- locking SELECT followed by an UPDATE writes it twice: the lock is a write of
-- its own, the row's xmax and a WAL record). It calls django_future_started
-- (fold.sql) and django_future_event_hash (hash.sql), which the planner writes
-- into the UPDATE as plain expressions; its WHERE clause already makes the
-- fold's checks (only scheduled, due jobs are started).
--
-- The runner claims with django_future_claim ("claim" in queries.sql) only
-- when it has no completion to record; otherwise its step
-- (django_future_complete_and_claim, complete.sql) records the completions
-- and claims in one statement.

-- The ids of the due jobs, highest priority first, then oldest first (then by
-- id), locked for the caller and skipping those that other transactions hold:
-- at most how_many. A job is due if it was due at due_at (a cron pass: when the
-- pass started, so that the pass ends) and has not expired by cutoff (the
-- clock). Only jobs of the queues in queues (NULL: every queue) and not in
-- exclude_queues (NULL: none) are taken.
--
-- The planner writes this function into its caller's query (it is SQL, a
-- single SELECT, and declared STABLE), so that a claim is one scan of the
-- partial index django_future_claimable (priority DESC, time_slot_start, id),
-- in its order, stopped at how_many (tests/sql/test_scale.py EXPLAINs it).
--
-- Locks and queue limits (locks.sql) add two tests to the scan. A job with a
-- lock is stepped over while a claimed or running job has the lock (a probe of
-- the partial index django_future_lock_held, for such jobs only: "j.lock IS
-- NULL" settles the others). The queues that are full (as many slots held as their limit) are
-- read once per claim, by an InitPlan over the two small tables, and the jobs
-- of those queues are stepped over; with no limit set it reads an empty table.
-- Stepped over, not claimed and given back: a blocked job keeps its place, and
-- gets no event, no attempt and no retry. Once the lock or a slot is free, the
-- first job in the claim's order that needs it is the next to start. This
-- test reads the statement's snapshot, which may be behind another runner's
-- claim, so the claim's UPDATE still asks django_future_acquire, the arbiter,
-- before it starts a job with a lock or in a limited queue. The race it
-- closes: under READ COMMITTED two runners claiming at once each see the
-- other's claim as not made yet, and each may find a *different* job of lock
-- L to be the first free one (the other's is row-locked and skipped by SKIP
-- LOCKED, or a job of L with a higher priority arrived between the two
-- snapshots); row locks serialize claims of one row, not of one lock. Only
-- the arbiter, which takes the lock's advisory lock and then looks with a
-- fresh snapshot, sees the latest state, so one of them wins and the other
-- skips. ``passed`` are
-- jobs whose race the caller lost in this transaction (NULL: none): it still
-- holds their rows locked, so SKIP LOCKED would hand them back to it.
-- The due time is a condition on the index's second column: jobs of a higher
-- priority that are not due yet are stepped over inside the index, without
-- reading their rows (docs/scheduling.md measures it). The queues are tested
-- on the row: a runner that serves some queues reads, and passes over, the due
-- rows of the others that come before its own in that order. It locks rows, which
-- PostgreSQL allows only in a VOLATILE function once it is run as a function
-- of its own: it must be called in a FROM clause, where it is inlined, and
-- anywhere else fails with "SELECT FOR UPDATE is not allowed in a
-- non-volatile function" rather than quietly scanning another way. It
-- returns ids, not rows: the caller's UPDATE reads the row it writes, and
-- carrying every column out of the subquery cost the runner's step 133 us of
-- database time against 120 us (a loop of 3,000 steps in one backend, median
-- of 5 rounds).
CREATE OR REPLACE FUNCTION django_future_due(
    due_at timestamptz, cutoff timestamptz, how_many integer, queues text[],
    exclude_queues text[], passed bigint[] DEFAULT NULL
) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $due$
    SELECT j.id
    FROM django_future_scheduledjob j
    WHERE j.status = 'scheduled'
      AND j.time_slot_start <= due_at
      -- The expiry and queue tests are written so that the kept (generic) plan
      -- stays the index scan. As "time_slot_end IS NULL OR time_slot_end >=
      -- cutoff", the expiry test let the planner read every scheduled job by a
      -- BitmapOr of django_future_expirable and sort them; and "queues IS NULL
      -- OR j.queue = ANY(queues)" on a column with one value made it estimate
      -- that 0.5% of the rows pass. With locks in use (a test it guesses at 50%)
      -- it then expected a one-job claim to find 1 row, and chose to read all
      -- 5,000 due jobs and sort them: 290 buffers and 3.9 ms a claim, where
      -- the index scan reads 12 and takes 0.13 ms (EXPLAIN ANALYZE of the
      -- generic plan over bench/variants/locks_in_use.sql). A CASE is one test
      -- the planner takes at 50%, whatever the column's statistics.
      AND COALESCE(j.time_slot_end, 'infinity') >= cutoff
      AND CASE WHEN queues IS NULL AND exclude_queues IS NULL THEN true
               ELSE (queues IS NULL OR j.queue = ANY(queues))
                    AND (exclude_queues IS NULL OR j.queue <> ALL(exclude_queues)) END
      AND (passed IS NULL OR j.id <> ALL(passed))
      -- Locks and limits, as this statement's snapshot sees them: the filter
      -- that steps over blocked jobs (locks.sql says why it is not the arbiter).
      AND (j.lock IS NULL
           OR NOT EXISTS (SELECT FROM django_future_scheduledjob r
                          WHERE r.lock = j.lock AND r.status IN ('claimed', 'running')))
      -- (j.queue || '': an expression, which the planner has no statistics of.
      -- On j.queue itself, whose values are few, it takes "<> ALL" for nearly
      -- always false, estimates the claim finds 1 row, and plans it as a
      -- bitmap scan of every live job and a sort: 7 ms a claim at 10,000 jobs.)
      AND j.queue || '' <> ALL(ARRAY(
          SELECT q.queue FROM django_future_queuelimit q
          WHERE q.max_running <= (SELECT count(*) FROM django_future_scheduledjob r
                                  WHERE r.queue = q.queue AND r.slot IS NOT NULL
                                    AND r.status IN ('claimed', 'running'))))
    ORDER BY j.priority DESC, j.time_slot_start, j.id
    LIMIT how_many
    FOR UPDATE SKIP LOCKED
$due$;


-- A "started" event's data: the runner's payload, and the queue slot the job
-- holds, if it holds one (locks.sql). Written into its callers' statements.
CREATE OR REPLACE FUNCTION django_future_with_slot(payload jsonb, slot integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $with_slot$
    SELECT CASE WHEN slot IS NULL THEN payload
                ELSE payload || jsonb_build_object('slot', slot) END
$with_slot$;


-- Start up to how_many due jobs for this runner: append "started" to each and
-- fold it, and return their new rows. A job is due if it was due at due_by (a
-- cron pass) or, without it, at claim_at; it must not have expired by
-- claim_at. A NULL claim_at is the database's clock. event_kind must be
-- 'started': the runner no longer writes "claimed" (fold.sql keeps it for
-- replay). queues and exclude_queues choose the queues (see django_future_due).
--
-- Its statement's plan is kept (plan_cache_mode): with how_many a parameter of
-- the LIMIT, PostgreSQL's estimate of a generic plan is higher than that of a
-- plan made for the value, so it planned the statement again at every call,
-- which cost a one-job claim about 1 ms instead of 0.1 ms.
CREATE OR REPLACE FUNCTION django_future_start_due(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text,
    due_by timestamptz, queues text[], exclude_queues text[]
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $start_due$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    due_at timestamptz := COALESCE(due_by, cutoff);
    payload jsonb := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    flag text;  -- set_config's result, unused (see complete.sql)
    lost text;
    passed bigint[];
BEGIN
    IF event_kind <> 'started' THEN
        RAISE EXCEPTION 'django_future: jobs are started with "started" events, not "%"',
            event_kind;
    END IF;
    FOR attempt IN 0 .. 5 LOOP
        -- Jobs whose lock or slot another runner won (locks.sql), here or in the
        -- caller's statement, are passed over; if nothing started because of
        -- such a race, look again for the next job, rather than tell the runner
        -- there is nothing to do.
        lost := COALESCE(current_setting('django_future.lost', true), '');
        IF lost <> '' THEN
            passed := COALESCE(passed, '{}')
                      || string_to_array(rtrim(lost, ','), ',')::bigint[];
            flag := set_config('django_future.lost', '', true);
        ELSIF attempt > 0 THEN
            EXIT;
        END IF;
        flag := set_config('django_future.folded', 'on', true);  -- see append.sql
        -- The new rows' last_seq and last_hash are their events', which the INSERT
        -- copies.
        RETURN QUERY
        WITH started AS (
            UPDATE django_future_scheduledjob j SET
                (status, time_slot_start, execution_start, execution_end, runner,
                 runner_process_id, attempts, error, return_value, last_seq, last_hash, slot)
                = (SELECT (n).status, (n).time_slot_start, (n).execution_start,
                          (n).execution_end, (n).runner, (n).runner_process_id, (n).attempts,
                          (n).error, (n).return_value, (n).last_seq, (n).last_hash, h.slot
                   FROM (SELECT
                             -- The slot django_future_acquire took for this row, just now
                             -- in the WHERE clause (locks.sql); none if it was not called.
                             CASE WHEN j.lock IS NULL
                                       AND j.queue <> ALL(ARRAY(
                                           SELECT q.queue FROM django_future_queuelimit q))
                                  THEN NULL
                                  ELSE NULLIF(current_setting('django_future.slot', true),
                                              '')::integer END AS slot) h
                   CROSS JOIN LATERAL (SELECT django_future_started(
                             j, j.last_seq + 1, statement_timestamp(), runner_name, runner_pk,
                             django_future_event_hash(
                                 j.last_hash, j.id, j.last_seq + 1, 'started',
                                 statement_timestamp(), runner_name,
                                 django_future_with_slot(payload, h.slot))) AS n) folded)
            WHERE j.id = ANY(ARRAY(SELECT d FROM django_future_due(due_at, cutoff, how_many,
                                                                  queues, exclude_queues,
                                                                  passed) d))
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
        EXIT WHEN FOUND;
    END LOOP;
END
$start_due$;


-- Claim up to how_many due jobs for this runner, then return every job it holds,
-- in the order they were claimed in.
-- (Callers that return these rows read the table, not this function's result: a
-- prepared or cached plan over a function's row type does not notice a column
-- added to the table.)
CREATE OR REPLACE FUNCTION django_future_claim(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text,
    due_by timestamptz, queues text[], exclude_queues text[]
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $claim$
BEGIN
    PERFORM django_future_start_due(claim_at, runner_name, runner_pk, how_many, event_kind,
                                    due_by, queues, exclude_queues);
    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.priority DESC, j.time_slot_start, j.id;
END
$claim$;
