-- Frozen for migration 0001_initial: the live files of django_future/sql/ below,
-- as they stood when it was written. Do not edit: the live files are where the
-- current definitions are (see django_future/sql/__init__.py).

-- ---- hash.sql

-- The hash chain: each event carries a hash chained to its job's previous event.
--
-- An event changed or removed behind the triggers' back breaks the chain, and
-- `manage.py ledger verify` (the verify_chain query) says where. Writers that
-- append through SQL functions compute the hash themselves, in the same
-- statement; a row that arrives without one (the INSERTs of queries.sql, the
-- ORM, psql) is stamped by the stamp_event trigger declared on JobEvent in
-- models.py, which calls django_future_stamp. The fold trigger
-- (fold_trigger.sql) checks every hash a writer brings, so that a writer can
-- neither forge one nor backdate an event.

-- STABLE, which is what its body is (concat_ws, extract and convert_to are
-- STABLE): its result does not change, but the planner inlines a SQL function
-- only when it is declared no stricter than its body, and the runner's step
-- relies on that inlining (see complete.sql).
CREATE OR REPLACE FUNCTION django_future_event_hash(
    prev text, job_id bigint, seq integer, kind text, at timestamptz, runner text, data jsonb
) RETURNS text
LANGUAGE sql STABLE AS $hash$
    SELECT encode(sha256(convert_to(concat_ws('|',
        coalesce(prev, ''), job_id, seq, kind,
        (extract(epoch FROM at) * 1000000)::bigint,  -- independent of the TimeZone setting
        coalesce(runner, ''), data::text), 'UTF8')), 'hex')
$hash$;


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

-- ---- types.sql

-- The composite types that the fold's transition functions (fold.sql) return.
--
-- Each is a type of its own rather than the table's row type, so that a column
-- added to the job table changes nothing here. A type cannot be replaced as a
-- function can (CREATE TYPE has no OR REPLACE): this is the one live file that
-- cannot run again over its previous version, and a migration that changes a
-- type writes its ALTER TYPE itself.

-- The columns of a job's row that its events change once it is scheduled: what
-- "started" and "completed" return.
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

-- The columns of a job's first row, all but its id: what "scheduled" sets.
CREATE TYPE django_future_created AS (
    callable_name varchar(255),
    content_type_id integer,
    object_id varchar(255),
    args jsonb,
    kwargs jsonb,
    time_slot_start timestamptz,
    time_slot_end timestamptz,
    atomic boolean,
    max_attempts integer,
    retry_delay interval,
    retry_max_delay interval,
    attempts integer,
    status varchar(20),
    created_at timestamptz,
    last_seq integer,
    last_hash varchar(64)
);

-- ---- fold.sql

-- The fold: the one definition of "a job's state after this event".
--
-- django_future_fold(state, event) is pure: it takes the job's row as it was
-- (all NULL before the first event) and returns the row as it must be after
-- the event, or a NULL id when the event removes the row. It raises on any
-- event that does not follow from the state (wrong sequence number, or a
-- transition the job's status does not allow). The fold trigger
-- (fold_trigger.sql), the writers that fold their own events (append.sql,
-- claim.sql, complete.sql, bulk.sql) and replay, verify, rebuild and time
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
-- * "scheduled" refuses a negative number of retries and a window that closes
--   before it opens, in the fold and in the bulk writer (bulk.sql);
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
-- their defaults (no content object, no arguments, not atomic, no retries):
-- schedule_job leaves them out when they have them. STABLE, not IMMUTABLE,
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
               0, 'scheduled', at, 1, hash)::django_future_created
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

-- ---- replay.sql

-- Replay: a job's history folded from nothing, with the same django_future_fold
-- (fold.sql) as live appends, so that verify, rebuild and time travel cannot
-- disagree with them.

-- A job as its events up to an instant fold to (all of them by default).
CREATE OR REPLACE FUNCTION django_future_replay(job bigint, until timestamptz DEFAULT 'infinity')
RETURNS django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $replay$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE job_id = job AND at <= until ORDER BY seq LOOP
        s := django_future_fold(s, e);
    END LOOP;
    RETURN s;
END
$replay$;


-- For verify: the replay, or why the events cannot be folded (a gap, a
-- transition that does not follow), without aborting the whole check.
CREATE OR REPLACE FUNCTION django_future_try_replay(
    job bigint, OUT folded django_future_scheduledjob, OUT error text
)
LANGUAGE plpgsql STABLE AS $try$
BEGIN
    folded := django_future_replay(job);
EXCEPTION WHEN OTHERS THEN
    error := SQLERRM;
END
$try$;


-- Time travel: every job as it stood at an instant, folded from the events up
-- to it (jobs deleted by then are absent; jobs not yet scheduled too).
CREATE OR REPLACE FUNCTION django_future_jobs_as_of(instant timestamptz)
RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $as_of$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
    current_job bigint;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE at <= instant ORDER BY job_id, seq LOOP
        IF current_job IS DISTINCT FROM e.job_id THEN
            IF s.id IS NOT NULL THEN
                RETURN NEXT s;
            END IF;
            s := NULL;
            current_job := e.job_id;
        END IF;
        s := django_future_fold(s, e);
    END LOOP;
    IF s.id IS NOT NULL THEN
        RETURN NEXT s;
    END IF;
END
$as_of$;

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
-- fold it.
CREATE OR REPLACE FUNCTION django_future_start_due(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text
) RETURNS void
LANGUAGE plpgsql AS $start_due$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
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
          AND j.time_slot_start <= cutoff
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
              AND j.time_slot_start <= cutoff
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
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $claim$
BEGIN
    PERFORM django_future_start_due(claim_at, runner_name, runner_pk, how_many, event_kind);
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
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer
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
    PERFORM django_future_start_due(claim_at, runner_name, runner_pk, how_many, 'started');
    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.time_slot_start, j.id;
END
$complete_and_claim_many$;


-- The runner's step ("complete_and_claim" in queries.sql); see the top of this file.
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

-- ---- bulk.sql

-- Bulk scheduling: one chunk of schedule_jobs() per call.
--
-- schedule_jobs sends a few hundred jobs at a time in pipeline mode, one call
-- of django_future_schedule_lines each, and prepares the next chunk while the
-- database writes this one. The database assigns the ids. The function appends
-- the "scheduled" events with their hashes and creates the jobs' rows in one
-- statement, folding them itself (see append.sql for the django_future.folded
-- setting). What "scheduled" makes of a job is django_future_scheduled
-- (fold.sql), which the INSERT inlines, and the new rows are checked as the
-- fold checks them (fold.sql, "checked when its events make them").

-- Schedule one chunk: "lines" holds one job per line, each the JSON data of its
-- "scheduled" event (JSON text has no raw newline). Returns the new ids in the
-- order of the lines ("schedule_lines" in queries.sql).
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
    EXISTS (
        SELECT 1 FROM django_future_runnerprocess p
        WHERE p.identity = a.runner AND p.stopped_at IS NULL
          AND p.lease_expires_at >= statement_timestamp()
    ) AS alive
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
) a;


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
