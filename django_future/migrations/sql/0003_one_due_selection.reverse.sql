-- Frozen for migration 0003_one_due_selection.reverse: the live files of django_future/sql/ below,
-- as they stood when it was written. Do not edit: the live files are where the
-- current definitions are (see django_future/sql/__init__.py).

-- ---- append.sql

-- Appending one event to one job, the two ways.
--
-- django_future_append leaves the fold to the fold trigger (fold_trigger.sql);
-- the ledger's single appends (cancelling, failures, and the like) go through
-- it, by the "append" query of queries.sql.
--
-- django_future_append_folded is for the package's own hot writers (the
-- runner's claim and completion, in claim.sql and complete.sql), which append
-- their events and fold them in the same statement, with the same fold. On the
-- runner's path the fold trigger was most of the database's work per job:
-- pgtrigger's entry check, a transition table turned into an array, the job's
-- row read and locked a second time, the hash computed a second time to check
-- it, all to fold one event whose writer had just locked the row and computed
-- the hash itself (pgbench, 4 clients, one claim and one completion per job:
-- about 1,300-1,450 us of server time per job through the trigger, 850-900 us
-- with the writer folding).
--
-- While such a writer appends, it sets the transaction-local setting
-- django_future.folded to 'on', which the fold_events trigger and the job
-- table's guard read in their WHEN clauses (models.py), and sets it back to ''
-- before it returns; if it fails, the transaction or savepoint rolls back and
-- the setting with it. Setting django_future.folded by hand skips the fold and
-- the stamp check for what one then inserts: unsupported, and what
-- `manage.py ledger verify` would report.

-- Append the next event of one live job (seq = last_seq + 1), with its hash,
-- if its status is one of allowed and its last seq is expected_seq (NULL:
-- any). Locks the row first, so a concurrent change is seen. Returns the new
-- seq, or NULL if the job is gone or not as expected.
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


-- Append one event to a job its caller has locked, and fold it: the job's new
-- row. The caller has set django_future.folded (see above).
CREATE OR REPLACE FUNCTION django_future_append_folded(
    cur django_future_scheduledjob, event_kind text, runner_name text, payload jsonb
) RETURNS django_future_scheduledjob
LANGUAGE plpgsql AS $append_folded$
DECLARE
    ev django_future_jobevent;
    nxt django_future_scheduledjob;
BEGIN
    ev.job_id := cur.id;
    ev.seq := cur.last_seq + 1;
    ev.kind := event_kind;
    ev.at := statement_timestamp();
    ev.runner := runner_name;
    ev.data := payload;
    ev.hash := django_future_event_hash(cur.last_hash, ev.job_id, ev.seq, ev.kind, ev.at,
                                        ev.runner, ev.data);
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    VALUES (ev.job_id, ev.seq, ev.kind, ev.at, ev.runner, ev.data, ev.hash);
    nxt := django_future_fold(cur, ev);
    UPDATE django_future_scheduledjob SET
        (status, time_slot_start, execution_start, execution_end, runner,
         runner_process_id, attempts, error, return_value, last_seq, last_hash)
        = (nxt.status, nxt.time_slot_start, nxt.execution_start, nxt.execution_end,
           nxt.runner, nxt.runner_process_id, nxt.attempts, nxt.error,
           nxt.return_value, nxt.last_seq, nxt.last_hash)
    WHERE id = cur.id;
    RETURN nxt;
END
$append_folded$;

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
