-- The package's own hot writers fold their events themselves.
--
-- Until 0003 every event reached the projection through the fold_events
-- statement trigger (0002). On the runner's path that trigger was most of the
-- database's work per job: pgtrigger's entry check, a transition table turned
-- into an array, the job row read and locked a second time, the hash computed a
-- second time to check it, all to fold one event whose writer had just locked
-- the row and computed the hash itself. Measured with pgbench (4 clients, one
-- claim and one completion per job, embedded PostgreSQL 18), the server spent
-- about 1,300-1,450 us per job through the trigger and 850-900 us with the
-- writer folding; see the commit that added this file.
--
-- From 0003 the runner's claim and completion and bulk scheduling append their
-- events and fold them in the same statement, with the same django_future_fold
-- (still the one definition of a job's next state). While they do, they set
-- the transaction-local setting django_future.folded to 'on', which the
-- fold_events trigger and the projection's guard read in their WHEN clauses,
-- and they set it back to '' before they return. If they fail, the
-- transaction or savepoint rolls back and the setting with it.
--
-- Everything else (schedule_job, retries, expiry, recovery, cancelling, the
-- ORM, psql) appends through the trigger exactly as before. Setting
-- django_future.folded by hand skips the fold and the stamp check for what one
-- then inserts: unsupported, and what `manage.py ledger verify` would report.

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


-- Start up to how_many due jobs for this runner: append "started" (event_kind)
-- to each and fold it. One job is started with plain statements, a batch with
-- one set-based statement: each is the faster way for its size (pgbench, 4
-- clients: a single claim and completion took about 10% less server time the
-- plain way; a batch of 50 about 35% less the set-based way).
CREATE OR REPLACE FUNCTION django_future_start_due(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text
) RETURNS void
LANGUAGE plpgsql AS $start_due$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
    payload jsonb := jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid());
    cur django_future_scheduledjob;
BEGIN
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
        CROSS JOIN LATERAL django_future_fold(due.job, a.e) f
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


-- Record the completions of jobs this runner ran (as in 0002: each only if its
-- job is still running at the seq the runner saw), folding them as they are
-- appended: one with plain statements, several with one set-based statement.
-- Returns the ids recorded.
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
        CROSS JOIN LATERAL django_future_fold(mine.job, a.e) f
        WHERE j.id = (mine.job).id
        RETURNING j.id;
    END IF;
    PERFORM set_config('django_future.folded', '', true);
END
$complete$;


-- The runner's one statement per job: record the completions of the jobs it ran
-- (as django_future_complete), then claim (as django_future_claim, "started").
-- One statement rather than two in one transaction: it is prepared once and
-- sent alone. The completions come as one JSON array of [id, seq, return value,
-- seconds] (cheaper for the runner to send than four typed arrays). Returns the
-- jobs it claimed, preceded by the current row of each job whose completion it
-- refused (recovered elsewhere meanwhile); in the normal case there is none.
CREATE OR REPLACE FUNCTION django_future_complete_and_claim(
    done jsonb, claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $complete_and_claim$
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
$complete_and_claim$;


-- The "scheduled" events of schedule_jobs(), from the scratch table
-- django_future_bulk (job_id bigint, data jsonb) that its COPY filled in this
-- transaction: appended with their hashes and folded into new job rows in one
-- statement. Returns how many jobs it created.
CREATE OR REPLACE FUNCTION django_future_schedule_bulk()
RETURNS bigint
LANGUAGE plpgsql AS $bulk$
DECLARE
    created bigint;
BEGIN
    PERFORM set_config('django_future.folded', 'on', true);
    WITH appended AS (
        INSERT INTO django_future_jobevent AS e (job_id, seq, kind, at, data, hash)
        SELECT b.job_id, 1, 'scheduled', statement_timestamp(), b.data,
               django_future_event_hash(NULL, b.job_id, 1, 'scheduled',
                                        statement_timestamp(), NULL, b.data)
        FROM django_future_bulk b
        ORDER BY b.job_id
        RETURNING e
    )
    INSERT INTO django_future_scheduledjob
    SELECT f.*
    FROM appended a
    CROSS JOIN LATERAL django_future_fold(NULL::django_future_scheduledjob, a.e) f;
    GET DIAGNOSTICS created = ROW_COUNT;
    PERFORM set_config('django_future.folded', '', true);
    IF created > 0 THEN
        PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
    END IF;
    RETURN created;
END
$bulk$;
