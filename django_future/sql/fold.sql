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
