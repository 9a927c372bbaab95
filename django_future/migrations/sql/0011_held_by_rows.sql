-- Frozen for migration 0011_held_by_rows: the live files of django_future/sql/ below,
-- as they stood when it was written. Do not edit: the live files are where the
-- current definitions are (see django_future/sql/__init__.py).

-- ---- fold.sql

-- The fold: the one definition of "a job's state after this event".
--
-- django_future_fold(state, event) is pure: it takes the job's row as it was
-- (all NULL before the first event) and returns the row as it must be after
-- the event, or a NULL id when the event removes the row. It raises on any
-- event that does not follow from the state (wrong sequence number, or a
-- transition the job's status does not allow). The fold trigger
-- (fold_trigger.sql), the writers that fold their own events (claim.sql,
-- complete.sql, bulk.sql) and replay, verify, rebuild and time
-- travel (replay.sql) all reach a job's next state through it or through the
-- transition functions it calls, so they cannot disagree.
--
-- What "scheduled", "started" and "completed" do to a job's row is defined by
-- three SQL functions (django_future_scheduled, _started, _completed) that
-- return the columns they set, as the composite types of types.sql. The fold
-- checks that the event may follow and calls them; the hot writers (the
-- runner's step and batches, bulk scheduling) call them directly in their
-- UPDATE or INSERT, whose WHERE clauses make the same checks. Being
-- SQL, and declared no stricter than their bodies, they are inlined by the
-- planner: the writer computes each column by a plain expression instead of a
-- PL/pgSQL call per job (a PL/pgSQL function called through a function scan
-- copies the row in and out and materialises its result, for each job).
--
-- A job's rows are checked when its events make them, not by CHECK
-- constraints: PostgreSQL parses and plans a table's constraints again for
-- every statement that writes it, whichever columns it changes, twice per job
-- in the runner's step (perf: 5.6% of the server's CPU there). Every row of
-- the job table is written by the fold or by a writer that makes the same
-- transitions (the guard declared in models.py refuses anything else), so:
--
-- * "scheduled" refuses a negative number of retries, a window that closes
--   before it opens, a priority outside -100..100 and an empty queue name, in
--   the fold and in the bulk writer (bulk.sql), and django_future_scheduled
--   itself a queue name longer than 100 characters (and a unique key longer
--   than 255); the fold refuses an empty unique key, or one held while anything
--   but "pending" or "active" (keyed jobs are written through the fold only:
--   unique.sql), and a lock name that is empty or longer than 100;
-- * "retry" refuses a due time after the window closed;
-- * attempts and last_seq only ever count up from 0 and 1, and an event's seq
--   must follow its job's last (the fold, and the ledger's unique (job_id, seq)).

-- Raise check_violation with ``message``, from inside a query; its type is
-- ``value``'s, so that it fits wherever a value is expected. STABLE, not
-- IMMUTABLE: the planner runs an IMMUTABLE function whose arguments are
-- constants while it plans, which would raise for a row that never comes.
CREATE OR REPLACE FUNCTION django_future_refuse(message text, value anyelement)
RETURNS anyelement
LANGUAGE plpgsql STABLE AS $refuse$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'check_violation';
END
$refuse$;

-- "scheduled": the job as its event's data describes it. Keys left out take
-- their defaults (no content object, no arguments, not atomic, no retries,
-- queue "default", priority 0): schedule_job leaves them out when they have
-- them, and ledgers written before queues existed replay as they were. STABLE, not IMMUTABLE,
-- because reading a time from text is (and a function declared IMMUTABLE over
-- STABLE ones is never inlined).
CREATE OR REPLACE FUNCTION django_future_scheduled(data jsonb, at timestamptz, hash text)
RETURNS django_future_created
LANGUAGE sql STABLE AS $scheduled$
    SELECT ROW(data->>'callable_name', (data->>'content_type_id')::integer,
               data->>'object_id', COALESCE(data->'args', '[]'::jsonb),
               COALESCE(data->'kwargs', '{}'::jsonb), (data->>'time_slot_start')::timestamptz,
               (data->>'time_slot_end')::timestamptz, COALESCE((data->>'atomic')::boolean, false),
               COALESCE((data->>'retries')::integer, 0) + 1,
               make_interval(secs => (data->>'retry_delay')::double precision),
               make_interval(secs => (data->>'retry_max_delay')::double precision),
               0, 'scheduled', at, 1, hash,
               -- A longer name would be cut to fit the type's varchar(100) unsaid.
               CASE WHEN length(data->>'queue') > 100
               THEN django_future_refuse(format(
                   'django_future: the queue name %s... is longer than 100 characters',
                   left(data->>'queue', 20)), NULL::text)
               ELSE COALESCE(data->>'queue', 'default') END,
               COALESCE((data->>'priority')::integer, 0),
               -- The same for a unique key longer than the type's varchar(255).
               CASE WHEN length(data->>'unique_key') > 255
               THEN django_future_refuse(format(
                   'django_future: the unique key %s... is longer than 255 characters',
                   left(data->>'unique_key', 20)), NULL::text)
               ELSE data->>'unique_key' END,
               -- Only a job with a key holds it; "pending" unless it said otherwise
               -- (unique.sql says what each means).
               CASE WHEN data->>'unique_key' IS NOT NULL
               THEN COALESCE(data->>'unique_while', 'pending') END,
               -- The lock (locks.sql): none when left out; never empty or longer than 100.
               CASE WHEN data->>'lock' = '' OR length(data->>'lock') > 100
               THEN django_future_refuse(format(
                   'django_future: the lock name %s is empty or longer than 100 characters',
                   quote_literal(left(data->>'lock', 20))), NULL::text)
               ELSE data->>'lock' END)::django_future_created
$scheduled$;

-- "started": running, one more attempt, the runner recorded.
CREATE OR REPLACE FUNCTION django_future_started(
    s django_future_scheduledjob, seq integer, at timestamptz, runner text, runner_id bigint,
    hash text
) RETURNS django_future_progress
LANGUAGE sql IMMUTABLE AS $started$
    SELECT ROW('running', s.time_slot_start, at, NULL, runner, runner_id, s.attempts + 1,
               s.error, s.return_value, seq, hash)::django_future_progress
$started$;

-- "completed": complete, its return value kept, no error.
CREATE OR REPLACE FUNCTION django_future_completed(
    s django_future_scheduledjob, seq integer, at timestamptz, return_value text, hash text
) RETURNS django_future_progress
LANGUAGE sql IMMUTABLE AS $completed$
    SELECT ROW('complete', s.time_slot_start, s.execution_start, at, s.runner,
               s.runner_process_id, s.attempts, NULL, return_value, seq,
               hash)::django_future_progress
$completed$;

-- The fold itself. "claimed" is no longer written by the runner (it starts
-- jobs directly), but the fold keeps the transition so that such events still
-- replay; a job started with its batch can be "released" (handed back) if its
-- runner stops before calling it, and the attempt it counted is given back.
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
        IF n.priority NOT BETWEEN -100 AND 100 THEN
            RAISE EXCEPTION 'django_future: job %: priority must be from -100 to 100, got %',
                e.job_id, n.priority USING ERRCODE = 'check_violation';
        END IF;
        IF n.queue = '' THEN
            RAISE EXCEPTION 'django_future: job %: the queue name is empty', e.job_id
                USING ERRCODE = 'check_violation';
        END IF;
        IF n.unique_key = '' OR n.unique_while NOT IN ('pending', 'active') THEN
            RAISE EXCEPTION 'django_future: job %: a unique key must be a non-empty text held while "pending" or "active", got % while %',
                e.job_id, quote_literal(n.unique_key), quote_literal(n.unique_while)
                USING ERRCODE = 'check_violation';
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
        s.queue := n.queue;
        s.priority := n.priority;
        s.unique_key := n.unique_key;
        s.unique_while := n.unique_while;
        s.lock := n.lock;
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
        -- The queue slot the run holds, if its queue has a limit (locks.sql).
        s.slot := (e.data->>'slot')::integer;
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

-- ---- fold_trigger.sql

-- The fold trigger's function: every event reaches the job table through it,
-- except those of the writers that fold their own (see append.sql).
--
-- The triggers themselves are declared on JobEvent in models.py (pgtrigger):
--
-- * stamp_event, a BEFORE INSERT row trigger, only for rows that arrive
--   without a hash (hash.sql): their time is the statement's, their hash is
--   chained to the job's previous event;
-- * fold_events, an AFTER INSERT statement trigger, hands every event of the
--   statement to django_future_apply_events, which checks the stamps (so a
--   writer that brings its own hash can neither forge it nor backdate the
--   event), then folds them into the job table with django_future_fold
--   (fold.sql): set-based when each job has one event in the statement, one
--   by one otherwise. It runs inside the INSERT statement, so the event and
--   the job's row commit or roll back together. When a job becomes due-able
--   (scheduled, retried, released) it sends NOTIFY django_future, delivered
--   at commit, to wake sleeping runners.
--
-- fold_events and the job table's guard (written_by_ledger_only) stand aside
-- while the transaction-local setting django_future.folded is 'on', which only
-- the writers that fold their own events set, and clear before they return.

-- Fold the events of one INSERT statement (ordered by job and seq) into the
-- projection. A single event, or a statement in which some job has several
-- events, is folded one event at a time; otherwise (every job once: expiry,
-- recovery, a bulk INSERT into the ledger) with a few set-based statements.
-- Both ways check each event's stamps first and call the same fold.
--
-- Each way writes the job-row column list in its UPDATE, for speed: folding a
-- single event with the set-based statements instead (and a statement in
-- which a job has several events in rounds, every job's first event, then
-- every job's second, ...) made a single append, such as a cancel or a
-- failure, cost 1.75x the database time (a loop of 3,000 appends in one
-- backend, 6 rounds, minimum), and still 1.11x with the statements' plans
-- kept (plan_cache_mode = force_generic_plan). The runner's writers, which
-- fold their own events, do not come here (see append.sql).
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
                     runner_process_id, attempts, error, return_value, last_seq, last_hash,
                     slot)
                    = (nxt.status, nxt.time_slot_start, nxt.execution_start, nxt.execution_end,
                       nxt.runner, nxt.runner_process_id, nxt.attempts, nxt.error,
                       nxt.return_value, nxt.last_seq, nxt.last_hash, nxt.slot)
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
                 runner_process_id, attempts, error, return_value, last_seq, last_hash, slot)
                = (SELECT f.status, f.time_slot_start, f.execution_start, f.execution_end,
                          f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
                          f.last_seq, f.last_hash, f.slot
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

    -- A run that ended (or a job cancelled) gave up its lock and its slot with
    -- the update above (locks.sql). These events are rare (failures, recovery,
    -- hand-backs), so when they free a lock or a slot they wake the sleeping
    -- workers, which the runner's completions do not (complete.sql says why).
    IF NOT wake AND EXISTS (
        SELECT FROM unnest(evs) e
        JOIN django_future_scheduledjob j ON j.id = e.job_id
        WHERE (j.lock IS NOT NULL OR j.slot IS NOT NULL)
          AND e.kind IN ('completed', 'failed', 'abandoned', 'released', 'cancelled')
    ) THEN
        wake := true;
    END IF;

    -- Wake sleeping workers (delivered at commit) when a job became due-able.
    IF has_new OR wake THEN
        PERFORM pg_notify('django_future', '');
    END IF;
END
$apply$;

-- ---- locks.sql

-- Locks and queue limits: the arbiter of the claim.
--
-- Both are held by the job rows themselves, and by nothing else. A job with a
-- lock (schedule_job(lock="user-42")) holds it while it is claimed or running.
-- A job of a queue with a limit of N (DJANGO_FUTURE_QUEUE_LIMITS, the table
-- django_future_queuelimit) holds one of the queue's slots 0 .. N-1 while it
-- runs: the claim that starts it writes the slot on its row (column "slot")
-- and on its "started" event ({"slot": 2}), so that the fold and a rebuild
-- give the same row. Two partial unique indexes make an overlap impossible,
-- whatever writes the rows: django_future_lock_held (lock) and
-- django_future_slot_held (queue, slot), both over claimed and running jobs.
--
-- So nothing is ever left to free. The update that ends a run ("completed",
-- "failed", "abandoned", "released", "cancelled", or the row's deletion)
-- gives up its lock and its slot with it; a runner killed with -9 keeps them
-- until a live runner's recovery appends "abandoned" to its job, once its
-- lease has run out. (Up to migration 0011 each held name was a row of a
-- table of its own, inserted and deleted: 6 WAL records a job for a lock, 12
-- for a lock and a slot, where an entry of a partial index is one.)
--
-- Why the claim needs an arbiter, and not the snapshot alone. The claim steps
-- over blocked jobs with a snapshot test (django_future_due, claim.sql: "no
-- running job has my lock", "my queue has a free slot"). Under READ COMMITTED
-- two runners claiming at the same moment have different snapshots, and
-- neither sees what the other is doing: each can find a *different* job of
-- lock L to be the first unblocked one (a job of L inserted meanwhile with a
-- higher priority, or the first one locked by the other's FOR UPDATE SKIP
-- LOCKED and so skipped), and both would start. The row locks of SKIP LOCKED
-- serialize claims of the same job row only. So the snapshot test is a
-- filter (blocked jobs are stepped over inside the claim's index scan, never
-- claimed and handed back), and django_future_acquire is the arbiter.
--
-- How it decides, without ever waiting. A name (the lock, or one slot) is
-- first taken with a transaction-scoped advisory lock,
-- pg_try_advisory_xact_lock, which never waits: a name that another claim is
-- taking is lost at once. Holding it, the function looks at the job rows with
-- a fresh snapshot (each statement of a VOLATILE function takes one, and sees
-- the rows its caller's UPDATE has already written, so a batch never gives
-- one name twice): every claim that took the name before has ended, since a
-- transaction ends before its advisory locks are released, so what it wrote
-- is visible. Of two runners racing for a name exactly one takes it; the
-- other's claim skips the job. A lost race is a skip, never an overlap, never
-- an error and never a wait (two claims that each held one name and waited
-- for the other's would deadlock). The advisory locks end with the claim's
-- transaction; none is held across a job's run (runners that sit behind
-- PgBouncer in transaction mode keep no session, and a dead runner's names
-- must go with its lease, not with its connection).
--
-- The slot reaches the row through the transaction-local setting
-- django_future.slot: the claim's UPDATE calls this function in its WHERE
-- clause and reads the setting in its SET list, for the same row, before it
-- reads the next (claim.sql). Were that order ever broken, the unique index
-- would refuse the claim, not let two jobs share a slot.
--
-- Both or neither. A job with a lock in a limited queue takes its lock
-- first, then a slot; if no slot is free, the claim skips the job, and what
-- it held was only the transaction's advisory lock.
--
-- A lost race adds the job's id to the transaction-local setting
-- django_future.lost ("12,15,"), which the claim reads when it started
-- nothing: it claims again, a few times at most, passing those jobs over
-- (claim.sql). They must be passed over by id: the loser still holds their
-- rows locked, and FOR UPDATE SKIP LOCKED skips only other transactions'
-- locks. So a runner does not take "nothing claimed" for "nothing to do" (a
-- cron pass would end early) because another runner was one statement ahead.

-- Note that the claim lost the race for job ``job``; false.
CREATE OR REPLACE FUNCTION django_future_lost(job bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $lost$
DECLARE
    flag text;  -- set_config's result, unused
BEGIN
    flag := set_config('django_future.lost',
                       COALESCE(current_setting('django_future.lost', true), '') || job || ',',
                       true);
    RETURN false;
END
$lost$;

-- Take what job ``job`` needs to start: its lock (if any), then a slot of its
-- queue (if the queue has a limit), which it leaves in django_future.slot ('' for
-- none). True when it may start (the caller's UPDATE then makes it running,
-- which holds them); false, with the job added to django_future.lost, when
-- another job holds or is taking one of them. Called by the claim (claim.sql,
-- complete.sql) for jobs that have a lock or a limited queue only.
CREATE OR REPLACE FUNCTION django_future_acquire(job bigint, lock_name text, queue_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE COST 1000 AS $acquire$
DECLARE
    -- The advisory locks' first key: the package's own space of names.
    space CONSTANT integer := hashtext('django_future.joblock');
    slots integer;
    chosen integer;
    flag text;  -- set_config's result, unused
BEGIN
    IF lock_name IS NOT NULL
       AND NOT pg_try_advisory_xact_lock(space, hashtext('lock:' || lock_name)) THEN
        RETURN django_future_lost(job);
    END IF;
    -- The queue's limit, if it has one, and the first slot that this snapshot shows
    -- free and that no other claim is taking: its advisory lock is taken here (and
    -- only its: the CASE tests the snapshot first).
    SELECT q.max_running,
           (SELECT n FROM generate_series(0, q.max_running - 1) n
            WHERE CASE WHEN EXISTS (SELECT FROM django_future_scheduledjob r
                                    WHERE r.queue = queue_name AND r.slot = n
                                      AND r.status IN ('claimed', 'running'))
                       THEN false
                       ELSE pg_try_advisory_xact_lock(
                                space, hashtext('queue:' || queue_name || '#' || n)) END
            -- No ORDER BY: a sort would test every slot, and take every free one's
            -- advisory lock; generate_series yields them in order, and LIMIT stops
            -- at the first.
            LIMIT 1)
    INTO slots, chosen
    FROM django_future_queuelimit q WHERE q.queue = queue_name;
    IF slots IS NOT NULL AND chosen IS NULL THEN
        -- No slot: the lock was only this transaction's advisory lock (both or neither).
        RETURN django_future_lost(job);
    END IF;
    -- Holding the names' advisory locks, look again with a fresh snapshot: a claim
    -- that took one before has ended, and what it wrote is visible now.
    IF (lock_name IS NOT NULL
        AND EXISTS (SELECT FROM django_future_scheduledjob r
                    WHERE r.lock = lock_name AND r.status IN ('claimed', 'running')))
       OR (chosen IS NOT NULL
           AND EXISTS (SELECT FROM django_future_scheduledjob r
                       WHERE r.queue = queue_name AND r.slot = chosen
                         AND r.status IN ('claimed', 'running'))) THEN
        RETURN django_future_lost(job);
    END IF;
    flag := set_config('django_future.slot', COALESCE(chosen::text, ''), true);
    RETURN true;
END
$acquire$;

-- ---- claim.sql

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
